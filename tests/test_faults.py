"""Faults, each injected for real and each test named after its fault.

- ``test_redis_stopped_and_restarted``: a private redis-server (no persistence, as a default
  Redis after a crash) under a real Celery worker; while it is down labelling and reader answers
  work, starting a training run answers that the queue is unavailable (nothing kept), and
  /health/ says why it is unhealthy; once it is back, the job whose message Redis lost is queued
  again by the worker when it connects, and a newly queued task runs.
- ``test_postgresql_restarted``: a private PostgreSQL cluster under gunicorn; ``pg_ctl restart
  -m fast`` drops every connection; the same gunicorn answers again (no restart of its own).
- ``test_full_disk_while_storing_a_radiograph``: a small tmpfs as the data folder; a file that
  does not fit is rejected with a reason naming the full disk, with no row and no file left,
  and the next one is stored once there is room.
- ``test_worker_killed_mid_training_resumes``: SIGKILL of the worker after the first epoch; the
  next worker resumes from the checkpoint.

They start real processes (redis-server, initdb/pg_ctl as the ``postgres`` user, gunicorn,
mount): a machine without them, or not running as root, skips them (in CI they fail instead).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom import dcmread

from devtools.processes import free_port, stop
from tests.celery_worker import CeleryWorker, _point_sender_at, _restore_sender, site_env, skip_or_fail
from tests.support import wait_for

pytestmark = pytest.mark.faults

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


# --------------------------------------------------------------------------- Redis


class PrivateRedis:
    """A redis-server of this test on a free loopback port, without persistence: stopping it
    loses every queued message, as a Redis without AOF/RDB does when it crashes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        binary = shutil.which("redis-server")
        if binary is None:
            skip_or_fail("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_for(answers, what=f"redis-server on port {self.port}", timeout=15)
        client.close()

    def stop(self) -> None:
        """SIGKILL: Redis goes away at once, with what it held."""
        if self.process is not None:
            stop(self.process, first=signal.SIGKILL, timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_worker(transactional_db: None, settings: Any, tmp_path: Path, monkeypatch: Any, private_redis: PrivateRedis):
    """A real Celery worker (both queues) on the private Redis and the test database; this
    process sends to the same Redis with the production bounds on publishing."""
    import redis

    from config.celery import app

    env = site_env(
        what="the Redis fault test",
        unset=("CELERY_BROKER_URL",),
        REDIS_URL=private_redis.url,
        CELERY_VISIBILITY_TIMEOUT="5",
        LOG_LEVEL="INFO",
    )
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    settings.CELERY_BROKER_URL = private_redis.url
    saved = _point_sender_at(app, private_redis.url)
    # The bounded publishing of config/settings.py, and a long visibility timeout for this
    # sender (see tests/celery_worker.py's SENDER_TRANSPORT_OPTIONS).
    app.conf.broker_transport_options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "visibility_timeout": 86400}
    client = redis.Redis.from_url(private_redis.url, socket_connect_timeout=1, socket_timeout=5)
    worker = CeleryWorker(app=app, env=env, log_dir=tmp_path, broker_url=private_redis.url, redis=client)
    from common import health

    health._workers_cache.clear()
    try:
        worker.start()
        yield worker
    finally:
        worker.close()
        _restore_sender(app, saved)
        health._workers_cache.clear()
        client.close()


def _upload(data: bytes, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/dicom")


@pytest.mark.worker
def test_redis_stopped_and_restarted(
    redis_worker,
    private_redis,
    client_as,
    users,
    dicom_bytes,
    tiny_bundle,  # noqa: F811
    data_dir,
):
    from annotate.models import ImportJob, Radiograph
    from common import health as health_checks
    from ml.models import ModelVersion, TrainingRun
    from readerstudy import services as study_services
    from readerstudy.models import Response
    from tests.readerstudy.helpers import study_with_model

    worker = redis_worker
    # Before the outage: a reader study (its model already read its cases), a labeller's
    # radiograph, and an import queued while the default worker was down: its message waits
    # in Redis.
    study = study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=4, radiographs=24, patients=18)
    study_services.reader_add(study=study, user=users["reader"], group="resident", training="emergency_resident")
    ModelVersion.objects.update(is_active=False)  # no scoring of the dataset by the worker: not this test's subject
    dataset = study.dataset
    labeller = client_as("labeler")
    assignment = labeller.post("/api/labelling/next/").json()
    assert worker.stop() == 0
    missed = client_as("researcher").post("/api/imports/", {"files": [_upload(dicom_bytes(seed=501), "missed.dcm")]})
    assert missed.status_code == 202, missed.content
    missed_id = missed.json()["id"]
    assert worker.queued("default") == 1

    # --- the outage: Redis is killed, its queued message with it.
    private_redis.stop()

    # Labelling autosave and a reader's answer do not touch the broker.
    hips = [{"side": "right", "hip_class": "normal", "x": 10, "y": 20, "width": 100, "height": 100}]
    saved = labeller.put(
        f"/api/labelling/assignments/{assignment['id']}/",
        json.dumps({"hips": hips, "note": "during the outage", "active_seconds": 5}),
        content_type="application/json",
    )
    assert saved.status_code == 200, saved.content
    assert [h["side"] for h in saved.json()["hips"]] == ["right"]
    reader = client_as("reader")
    state = reader.get(f"/api/reader/studies/{study.pk}/current/").json()
    answered = reader.post(
        f"/api/reader/studies/{study.pk}/answers/",
        {"case": state["case"]["id"], "condition": state["step"]["condition"], "answer": "normal"},
        content_type="application/json",
    )
    assert answered.status_code == 201, answered.content
    assert Response.objects.filter(reader__user=users["reader"]).count() == 1

    # An ML action says clearly that the queue is unavailable, and keeps nothing.
    started = time.monotonic()
    refused = client_as("researcher").post(
        "/api/training-runs/",
        json.dumps({"dataset": dataset.pk, "config": "tiny", "kind": "classifier"}),
        content_type="application/json",
    )
    refused_seconds = time.monotonic() - started
    assert refused.status_code == 503, refused.content
    assert "The task queue is unavailable; try again when it is back." in refused.json()["detail"]
    assert refused_seconds < 10  # bounded publishing: an answer, not a hang
    assert TrainingRun.objects.count() == 0
    page = client_as("researcher").post(
        "/models/", {"dataset": dataset.pk, "config": "tiny", "kind": "classifier", "seed": 0}, follow=True
    )
    assert b"The task queue is unavailable; try again when it is back." in page.content
    health = client_as(None).get("/health/")
    assert health.status_code == 503 and health.json()["broker"].startswith("error: ")
    assert health.json()["database"] == "ok"
    assert ImportJob.objects.get(pk=missed_id).status == "queued"

    # --- Redis is back (empty): a worker that connects queues the missed job again.
    private_redis.start()
    assert worker.queued("default") == 0  # the message was lost with Redis
    worker.start()
    wait_for(
        lambda: ImportJob.objects.get(pk=missed_id).status in ("done", "failed"),
        what="the missed import job to run",
        output=worker.output,
        timeout=120,
    )
    job = ImportJob.objects.get(pk=missed_id)
    assert job.status == "done", (job.error, worker.output())
    assert job.items.get().status == "imported"
    assert "re-queued missed work" in worker.output()

    # A task queued now runs at once; the health check sees the worker on both queues.
    new = client_as("researcher").post("/api/imports/", {"files": [_upload(dicom_bytes(seed=502), "new.dcm")]})
    assert new.status_code == 202, new.content
    wait_for(
        lambda: ImportJob.objects.get(pk=new.json()["id"]).status == "done",
        what="the new import job to run",
        output=worker.output,
        timeout=120,
    )
    assert Radiograph.objects.filter(import_job_id__in=[missed_id, new.json()["id"]]).count() == 2
    health_checks._workers_cache.clear()
    healthy = client_as(None).get("/health/")
    assert healthy.status_code == 200, healthy.content
    assert healthy.json() == {"database": "ok", "broker": "ok", "workers": {"default": 1, "ml": 1}}

    # Redis killed again under the running worker: the worker reconnects by itself once Redis is
    # back (the same process, not restarted) and runs what is queued then.
    pid = worker.pid
    private_redis.stop()
    time.sleep(2)  # let the worker notice the lost connection
    private_redis.start()
    again = wait_for(
        lambda: _post_import(client_as("researcher"), dicom_bytes(seed=503)),
        what="an upload to be accepted again",
        output=worker.output,
        timeout=30,
    )
    wait_for(
        lambda: ImportJob.objects.get(pk=again).status == "done",
        what="the import queued after the second restart to run",
        output=worker.output,
        timeout=120,
    )
    assert worker.running and worker.pid == pid and worker.starts == 2


def _post_import(client: Any, data: bytes) -> int | None:
    response = client.post("/api/imports/", {"files": [_upload(data, "again.dcm")]})
    if response.status_code == 503:
        return None
    assert response.status_code == 202, response.content
    return response.json()["id"]


# --------------------------------------------------------------------------- PostgreSQL


class PrivatePostgres:
    """A PostgreSQL cluster of this test (initdb, pg_ctl as the ``postgres`` user) on a free port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "cluster"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/hipstudy"

    def _as_postgres(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, check=check, timeout=timeout
        )

    def pg_ctl(self, *args: str) -> None:
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "postgres.log"), "-w", "-t", "60",
            "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", *args,
        )  # fmt: skip

    def create(self) -> None:
        if os.geteuid() != 0 or not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
            skip_or_fail(f"a private PostgreSQL cluster needs root, runuser and {PG_BIN}/initdb")
        shutil.chown(self.folder, "postgres", "postgres")
        os.chmod(self.folder, 0o755)
        for parent in self.folder.parents:  # postgres must be able to reach its folder
            if parent == Path("/"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.pg_ctl("start")
        self._as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "hipstudy")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_postgres(
                str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False
            )


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[PrivatePostgres]:
    folder = tmp_path / "pg"
    folder.mkdir()
    server = PrivatePostgres(folder)
    try:
        server.create()
        yield server
    finally:
        server.destroy()


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@contextlib.contextmanager
def gunicorn(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "2"}
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"],
            cwd=django_settings.BASE_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _status(f"{base}/health/live/") == 200, what="gunicorn", timeout=60, output=log.read_text)
        yield process, base
    finally:
        stop(process, timeout=30)


def _status(url: str, opener: Any = None) -> int | None:
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def _login(base: str, username: str, password: str) -> Any:
    """An opener holding a session cookie, logged in through the login form as a browser does."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{base}/accounts/login/", timeout=10) as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
    request = urllib.request.Request(f"{base}/accounts/login/", data=data.encode(), headers={"Referer": base + "/"})
    with opener.open(request, timeout=10) as response:
        assert response.url.rstrip("/") == base, f"login failed: ended on {response.url}"
    return opener


def test_postgresql_restarted(private_postgres: PrivatePostgres, tmp_path: Path):
    env = dict(os.environ)
    for key in ("CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(key, None)
    password = secrets.token_urlsafe(12)
    env.update(
        DEBUG="1",  # this test is about the database; scripts/prod-smoke runs the production settings
        DATABASE_URL=private_postgres.url,
        DATA_DIR=str(tmp_path / "data"),
        SECRET_KEY=secrets.token_urlsafe(40),
        PYTHONUNBUFFERED="1",
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
    )
    _manage(env, "migrate", "--no-input", "-v", "0")
    _manage(
        env, "shell", "-c",
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_user('pat', password='{password}', is_staff=True)",
    )  # fmt: skip
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, log) as (process, base):
        opener = _login(base, "pat", password)

        def answers() -> bool:
            health = _json(f"{base}/health/")
            return (
                health is not None
                and health.get("database") == "ok"
                and _status(f"{base}/health/live/") == 200
                and _status(f"{base}/ops/", opener) == 200
            )

        assert answers(), log.read_text()
        private_postgres.pg_ctl("restart", "-m", "fast")  # every connection of gunicorn's workers is dropped
        wait_for(answers, what="the site to answer after the restart", timeout=30, output=log.read_text)
        # Several times: each gunicorn worker (and thread) had its own broken connection.
        for _ in range(8):
            assert answers(), log.read_text()
        assert process.poll() is None  # the same gunicorn, never restarted


def _json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read() or b"null")
    except (urllib.error.URLError, OSError, ValueError):
        return None


# --------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """A 12 MB tmpfs mounted as the data folder (root only)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m,mode=0755", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if result.returncode != 0:
        skip_or_fail(f"mounting a small tmpfs is not permitted here: {result.stderr.strip()}")
    settings.DATA_DIR = mount
    settings.MEDIA_ROOT = str(mount / "media")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def _free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


@pytest.mark.django_db
def test_full_disk_while_storing_a_radiograph(small_disk: Path, dicom_bytes, tmp_path: Path):
    from annotate import services
    from annotate.models import Radiograph

    media = small_disk / "media"
    media.mkdir()
    # A 1400 x 1400 16-bit film: 3.9 MB of original (the de-identified copy is as large). Leave
    # room for half of it, so that the original is partly written and must be removed again.
    data = dicom_bytes(rows=1400, columns=1400, bits_stored=16, seed=77)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (_free_bytes(small_disk) - len(data) // 2))

    outcome = services.radiograph_ingest(data=data, name="big.dcm", source="cli")
    assert outcome.status == "rejected" and outcome.radiograph_id is None
    assert "disk of the data folder is full" in outcome.reason and "No space left on device" in outcome.reason
    assert Radiograph.objects.count() == 0
    assert _files(media) == []  # no original, no .tmp left

    # The batch route (uploads, the import command) rejects the file with the same reason.
    source = tmp_path / "source"  # on the ordinary disk: the file to import, not the store
    source.mkdir()
    (source / "big.dcm").write_bytes(data)
    outcomes = list(services.ingest_sources(paths=[source], source="cli"))
    assert [(o.status, "disk of the data folder is full" in o.reason) for o in outcomes] == [("rejected", True)]
    assert Radiograph.objects.count() == 0 and _files(media) == []

    filler.unlink()  # room again: the same file is stored whole
    stored = services.radiograph_ingest(data=data, name="big.dcm", source="cli")
    assert stored.status == "imported", stored.reason
    radiograph = Radiograph.objects.get(pk=stored.radiograph_id)
    kept = dcmread(media / radiograph.original.name)
    assert kept.PixelData == dcmread(io.BytesIO(data)).PixelData  # whole: every pixel, de-identified header
    files = _files(media)
    assert len(files) == 1 and not files[0].endswith(".tmp")  # the original (previews: on first view)


# --------------------------------------------------------------------------- a worker killed


@pytest.fixture
def quick_heartbeat(monkeypatch):
    # Read by the worker processes (their settings come from the environment).
    monkeypatch.setenv("TRAINING_HEARTBEAT_SECONDS", "0.5")
    monkeypatch.setenv("BOOTSTRAP_ITERATIONS", "100")


@pytest.mark.worker
def test_worker_killed_mid_training_resumes(quick_heartbeat, celery_worker, dicom_bytes):
    """A training run on a real worker of the ml queue, queued from the page's code path; its
    worker is SIGKILLed after the first epoch; the next worker resumes from the checkpoint and
    finishes it with one model version."""
    from devtools.sample_data import truth_dataset
    from ml import training
    from ml.models import ModelVersion, TrainingRun
    from tests.support import wait_for_worker

    task = "ml.tasks.train_model"

    def run_state(pk: int) -> TrainingRun:
        return TrainingRun.objects.get(pk=pk)

    dataset = truth_dataset(dicom_bytes, radiographs=40, patients=30)
    run = training.training_start(dataset=dataset, config_name="tiny", seed=3)  # queued on commit

    wait_for_worker(lambda: run_state(run.pk).epoch >= 1, what="the first epoch", worker=celery_worker, timeout=180)
    celery_worker.kill()  # SIGKILL the worker and its pool process, mid-run
    killed = run_state(run.pk)
    assert killed.status == "running" and killed.attempts == 1, killed.log
    assert training.latest_checkpoint(run.pk) is not None

    # The message is either still unacknowledged or, when the first epoch outlasted the
    # (short) visibility timeout, already put back on the queue by the worker itself; a
    # training run outlasting the timeout is normal, and a second delivery must not train
    # twice. Either way it is due once the visibility timeout has passed.
    assert [m["task"] for m in celery_worker.unacked()] in ([task], [])
    visible_at = time.time() + celery_worker.visibility_timeout + 0.2
    wait_for_worker(lambda: time.time() > visible_at, what="the visibility timeout", worker=celery_worker, timeout=15)
    celery_worker.start()

    ended = lambda: run_state(run.pk).status not in TrainingRun.LIVE  # noqa: E731
    wait_for_worker(ended, what="the run to end", worker=celery_worker, timeout=240)
    done = run_state(run.pk)
    assert done.status == "succeeded", (done.error, done.log, celery_worker.output())
    assert done.attempts == 2 and "resumed after epoch" in done.log
    assert [h["epoch"] for h in done.history] == [1, 2]
    assert done.history[0] == killed.history[0]  # the first epoch was kept, not trained again
    version = ModelVersion.objects.get(training_run=done)
    assert version.evaluation["n_cases"] > 0
    # Any second delivery of the message ends without training (attempts stayed 2).
    wait_for_worker(
        lambda: celery_worker.unacked() == [] and celery_worker.queued("ml") == 0,
        what="the broker to be empty",
        worker=celery_worker,
        timeout=30,
    )
    assert run_state(run.pk).attempts == 2
