"""``manage.py deviations --model``: one model version's deviations, read as its config was made."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from ml.models import ModelVersion

pytestmark = pytest.mark.django_db


def deviation_keys(version_id: int) -> set[str]:
    out = io.StringIO()
    call_command("deviations", "--model", str(version_id), stdout=out)
    return {row["key"] for row in json.loads(out.getvalue())}


def test_a_version_lists_its_own_and_a_legacy_config_says_what_it_was(tiny_version):
    keys = deviation_keys(tiny_version.pk)
    assert {"random-init", "smaller-network"} <= keys
    assert "test-time-zoom-average" not in keys  # tiny reads the single crop, as the paper
    # A config stored before test_time and regime existed was averaged and trained online.
    legacy = {k: v for k, v in tiny_version.config.items() if k not in ("test_time", "regime")}
    ModelVersion.objects.filter(pk=tiny_version.pk).update(config=legacy)
    assert {"test-time-zoom-average", "online-random-regime"} <= deviation_keys(tiny_version.pk)


def test_an_unknown_version_is_refused() -> None:
    with pytest.raises(CommandError, match="no model version 999999"):
        call_command("deviations", "--model", "999999")
