"""Backup and restore as README "Backup and restore" says: pg_dump -Fc of the database and tar
of the data folder, restored into a new database and a new folder; ``verify_data`` finds
every radiograph's files there, and says what is missing when one is not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from annotate import services
from annotate.models import Radiograph

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not shutil.which("pg_dump"), reason="needs PostgreSQL and its tools"
    ),
]


def run(*command: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DEBUG", "DATA_DIR"}}
    return subprocess.run(
        command, cwd=ROOT, env={**environment, **env}, capture_output=True, text=True, timeout=300, check=False
    )


def test_pg_dump_and_tar_restore_into_a_new_database_and_folder(dicom_bytes, data_dir, tmp_path):
    for seed in range(3):
        services.radiograph_ingest(
            data=dicom_bytes(seed=seed, accession=f"ACC{seed}"), name=f"{seed}.dcm", source="cli"
        )
    stored = sorted(Radiograph.objects.values_list("sha256", "rows", "columns"))
    assert len(stored) == 3

    database = connection.settings_dict
    server = ["-h", database["HOST"] or "127.0.0.1", "-p", str(database["PORT"] or 5432), "-U", database["USER"]]
    dump, archive = tmp_path / "hipstudy.dump", tmp_path / "data.tar.gz"
    done = run("pg_dump", "-Fc", *server, "-d", database["NAME"], "-f", str(dump))
    assert done.returncode == 0, done.stderr
    done = run("tar", "-C", str(data_dir), "-czf", str(archive), ".")
    assert done.returncode == 0, done.stderr

    restored = f"{database['NAME']}_restored"
    run("dropdb", "--if-exists", *server, restored)
    try:
        assert run("createdb", *server, restored).returncode == 0
        done = run("pg_restore", "--no-owner", *server, "-d", restored, str(dump))
        assert done.returncode == 0, done.stderr
        new_data = tmp_path / "restored-data"
        new_data.mkdir()
        assert run("tar", "-C", str(new_data), "-xzf", str(archive)).returncode == 0

        url = f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{restored}"
        with psycopg.connect(url) as db:
            rows = db.execute("SELECT sha256, rows, columns FROM annotate_radiograph ORDER BY sha256").fetchall()
        assert sorted(rows) == stored

        env = {"DATABASE_URL": url, "DATA_DIR": str(new_data), "DEBUG": "1"}
        check = run(sys.executable, "manage.py", "verify_data", "--hashes", "--no-progress", **env)
        assert check.returncode == 0, check.stderr
        assert "OK: 3 radiographs" in check.stdout

        for preview in (new_data / "media").glob("previews/*/*.jpg"):
            preview.unlink()  # a cache: rendered again on first view, not a problem
        lost = next((new_data / "media" / "originals").rglob("*.dcm"))
        lost.unlink()
        check = run(sys.executable, "manage.py", "verify_data", "--no-progress", **env)
        assert check.returncode != 0
        assert "1 problems" in check.stderr and f"original {lost} is missing" in check.stderr
    finally:
        run("dropdb", "--if-exists", *server, restored)
