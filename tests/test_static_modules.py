"""The pages' ES modules: every module that another one imports is in the one import map
(templates/_importmap.html), which sends its plain URL to the hashed name the deployed static
files have; without it a page would load a stale copy, or none, after a deploy. And no module
grows back into a grab-bag: none is over 620 lines."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

STATIC = Path(settings.BASE_DIR) / "static"
IMPORT = re.compile(r"""^\s*(?:import|export)\b[^"';]*?\bfrom\s+["'](\.{1,2}/[^"']+)["']""", re.M)


def modules() -> list[Path]:
    return sorted((STATIC / "js").rglob("*.js"))


def test_every_imported_module_is_in_the_import_map():
    importmap = (Path(settings.BASE_DIR) / "templates" / "_importmap.html").read_text()
    imported: set[str] = set()
    for path in modules():
        for specifier in IMPORT.findall(path.read_text()):
            target = (path.parent / specifier).resolve()
            assert target.is_file(), f"{path.relative_to(STATIC)} imports {specifier}, which is not there"
            imported.add(target.relative_to(STATIC).as_posix())
    assert "js/boxes/tool.js" in imported and "js/lib/http.js" in imported
    for name in sorted(imported):
        key, value = "{{ prefix }}" + name, "{% static '" + name + "' %}"
        assert f'"{key}": "{value}"' in importmap, f"{name} is not in the import map"


def test_no_module_is_over_620_lines():
    long = {path.name: n for path in modules() if (n := path.read_text().count("\n")) > 620}
    assert not long, long
