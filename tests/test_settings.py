"""Production settings pass Django's deployment checks; bad values fail loudly."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_check_deploy(tmp_path):
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DEBUG="false", SECRET_KEY="k" * 20 + "-production-secret-key-0123456789-abcdefghij",
        ALLOWED_HOSTS="hip.example.org", DATA_DIR=str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_secret_key_fails_loudly(tmp_path):
    result = manage("check", DEBUG="false", SECRET_KEY="", DATA_DIR=str(tmp_path))
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_malformed_boolean_fails_loudly(tmp_path):
    result = manage("check", DEBUG="maybe", DATA_DIR=str(tmp_path))
    assert result.returncode != 0 and "DEBUG='maybe' is not a boolean" in result.stderr
