"""The .env file in the repository root (make demo writes one): manage.py reads it in a shell with
nothing exported, the environment wins over it, production without secrets still refuses, and the
test suite never reads it.

Each test runs manage.py from a temporary copy of the checkout (config/ and manage.py copied, the
rest linked), so that the real checkout's .env, if a developer has one, plays no part."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Copied, because config/settings.py finds the .env beside its own (resolved) folder; the rest is linked.
COPIED = {"config", "manage.py"}
LEFT_OUT = {".env", ".git", ".venv", "var", ".pytest_cache", ".ruff_cache"}
PROBE = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps({'DEBUG': s.DEBUG, 'DATA_DIR': str(s.DATA_DIR), 'TIME_ZONE': s.TIME_ZONE, "
    "'SECRET_KEY': s.SECRET_KEY}))"
)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    copy = tmp_path / "checkout"
    copy.mkdir()
    for entry in ROOT.iterdir():
        if entry.name in LEFT_OUT:
            continue
        if entry.name in COPIED:
            if entry.is_dir():
                shutil.copytree(entry, copy / entry.name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(entry, copy / entry.name)
        else:
            (copy / entry.name).symlink_to(entry)
    return copy


def manage(checkout: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """manage.py in a new shell: nothing exported but PATH and HOME (and what ``env`` adds)."""
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(checkout.parent), **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=checkout, env=environment, capture_output=True, text=True, timeout=120
    )


def settings_seen(checkout: Path, **env: str) -> dict:
    result = manage(checkout, "shell", "-c", PROBE, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_env(checkout: Path, data_dir: Path) -> None:
    (checkout / ".env").write_text(
        "# as make demo writes it\n"
        f"DEBUG=true\nSECRET_KEY=dotenv-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz\nDATA_DIR={data_dir}\n"
        "TIME_ZONE=Europe/Oslo\n"
    )


def test_manage_py_reads_the_env_file_with_nothing_exported(checkout: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "demo-data"
    write_env(checkout, data_dir)
    check = manage(checkout, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "no issues" in check.stdout
    help_text = manage(checkout, "reader_report", "--help")
    assert help_text.returncode == 0, help_text.stdout + help_text.stderr
    seen = settings_seen(checkout)
    assert seen == {
        "DEBUG": True,
        "DATA_DIR": str(data_dir.resolve()),
        "TIME_ZONE": "Europe/Oslo",
        "SECRET_KEY": "dotenv-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    }


def test_the_environment_wins_over_the_env_file(checkout: Path, tmp_path: Path) -> None:
    write_env(checkout, tmp_path / "demo-data")
    other = tmp_path / "other-data"
    seen = settings_seen(checkout, TIME_ZONE="UTC", DATA_DIR=str(other))
    assert seen["TIME_ZONE"] == "UTC" and seen["DATA_DIR"] == str(other.resolve()) and seen["DEBUG"] is True
    # Set but empty is set: the .env does not fill it in, so production refuses as before.
    refused = manage(checkout, "check", DEBUG="false", SECRET_KEY="")
    assert refused.returncode != 0 and "SECRET_KEY must be set when DEBUG is off" in refused.stderr


def test_production_without_secrets_and_without_env_file_refuses(checkout: Path) -> None:
    assert not (checkout / ".env").exists()
    result = manage(checkout, "check")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_read_dotenv_false_ignores_the_file(checkout: Path, tmp_path: Path) -> None:
    write_env(checkout, tmp_path / "demo-data")
    result = manage(checkout, "check", READ_DOTENV="false")
    assert result.returncode != 0 and "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_the_test_settings_never_read_the_env_file(checkout: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "demo-data"
    write_env(checkout, data_dir)
    seen = settings_seen(checkout, DJANGO_SETTINGS_MODULE="tests.settings")
    assert seen["TIME_ZONE"] == "UTC"
    assert seen["DATA_DIR"] != str(data_dir.resolve()) and "hipstudy-test-" in seen["DATA_DIR"]
    assert "dotenv-secret-key" not in seen["SECRET_KEY"]


def test_this_test_run_does_not_read_a_env_file() -> None:
    """tests/settings.py puts the flag in this process' environment: every process a test starts
    inherits it, so none of them reads a developer's .env either."""
    assert os.environ["READ_DOTENV"] == "false"
