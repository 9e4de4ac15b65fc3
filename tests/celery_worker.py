"""A real Celery worker in a subprocess, for tests that need one.

A pytest plugin (``pytest_plugins = ["tests.celery_worker"]`` in tests/conftest.py)
with one fixture, ``celery_worker``: it starts ``python -m celery -A config worker``
against real Redis and the live test database, waits until the worker answers a
ping, points this process's Celery app at the same broker, and removes the
worker at teardown whatever happened.

    def test_something(celery_worker):
        services.import_job_create(...)      # queued on commit, run by the worker
        celery_worker.kill()                 # SIGKILL the whole worker
        celery_worker.start()                # a fresh worker on the same broker
        print(celery_worker.output())        # what every worker of this test logged

The worker shares with the test:
- the database: the fixture requires ``transactional_db``, so what the test
  writes is committed and visible to the worker and the other way round. A
  worker cannot share pytest-django's SQLite test database reliably, so on
  anything but PostgreSQL the test is skipped (and fails when ``CI`` is set);
- the data folder: ``DATA_DIR`` is the test's own (tests/conftest.py's
  ``data_dir``), and the worker's ``MEDIA_ROOT`` is derived from it exactly as the
  test's is;
- the broker: a Redis database of its own (the first free one of
  ``WORKER_REDIS_DBS``, on the host of ``REDIS_URL``), emptied before and after
  each test, so that nothing queued by another test, another pytest run or
  ``make demo`` reaches the worker.

The worker's visibility timeout is short (``VISIBILITY_TIMEOUT`` seconds): a
message delivered to a worker that dies before acknowledging it is put back on
its queue by the next worker once that much time has passed (see ``unacked``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import pytest

from devtools.processes import stop

# Redis databases for worker tests, tried in order: each test claims the first
# one no other test (of this or another pytest run) holds, so that two runs at
# once on one Redis do not empty each other's queues.
WORKER_REDIS_DBS = (14, 13, 12, 11)
CLAIM_KEY = "hipstudy:pytest-celery-worker:claim"
CLAIM_SECONDS = 600
VISIBILITY_TIMEOUT = 5  # seconds; see CeleryWorker.unacked
READY_TIMEOUT = 45.0
STOP_TIMEOUT = 30.0
QUEUES = "default,ml"
# This process only sends tasks and control messages. When it waits for a
# control reply (ping, inspect), kombu's Redis transport also sweeps the
# broker's unacknowledged messages back to their queues, using this process's
# visibility timeout: make it long, so that only a worker ever restores one.
SENDER_TRANSPORT_OPTIONS = {"visibility_timeout": 24 * 3600}


class CeleryWorkerError(RuntimeError):
    """The worker did not start, stop or answer as expected."""


def skip_or_fail(reason: str) -> None:
    """Skip on a developer's machine; in CI (``CI`` set) a missing service is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is not skipped)", pytrace=False)
    pytest.skip(reason)


def worker_broker_url(db: int) -> str:
    """``REDIS_URL`` (or the local default) with the database set to ``db``."""
    parts = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


def claim_redis_db() -> tuple[str, Any, str]:
    """Claim a free database of ``WORKER_REDIS_DBS``; return its URL, a client and the claim's token.

    Skips (fails in CI) when Redis does not answer.
    """
    import redis

    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    for db in WORKER_REDIS_DBS:
        url = worker_broker_url(db)
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
        try:
            claimed = client.set(CLAIM_KEY, token, nx=True, ex=CLAIM_SECONDS)
        except redis.RedisError as exc:
            client.close()
            skip_or_fail(f"a real Celery worker needs Redis; {urlsplit(url).netloc} does not answer: {exc}")
        if claimed:
            return url, client, token
        client.close()
    raise CeleryWorkerError(f"every Redis database of {WORKER_REDIS_DBS} is claimed by another test ({CLAIM_KEY})")


def empty_redis_db(client: Any) -> None:
    """Delete every key but the claim (FLUSHDB would give the database away)."""
    keys = [key for key in client.scan_iter(count=1000) if key != CLAIM_KEY.encode()]
    if keys:
        client.delete(*keys)


def site_env(*, what: str, unset: Iterable[str] = (), **values: str) -> dict[str, str]:
    """The environment of a process of the site (a worker, gunicorn, the listener, a command) on the
    test's PostgreSQL database and data folder, with this process's pseudonym key (so it writes the
    pseudonyms the test computes): ``unset`` removed, ``values`` added last (they win). Skips (fails
    in CI) when the test database is not PostgreSQL; ``what`` names who needs it."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        skip_or_fail(
            f"{what} needs the test database on PostgreSQL (set DATABASE_URL=postgres://...);"
            f" this run uses {db['ENGINE']}"
        )
    env = dict(os.environ)
    for name in unset:
        env.pop(name, None)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=database_url(db),
        DATA_DIR=str(Path(settings.DATA_DIR).resolve()),
        PSEUDONYM_KEY=settings.PSEUDONYM_KEY,
        PYTHONUNBUFFERED="1",
    )
    env.update(values)
    return env


def database_url(db: dict[str, Any]) -> str:
    """A ``DATABASE_URL`` (as config/settings.py parses it) for a PostgreSQL settings dict."""
    user = quote(str(db.get("USER") or ""), safe="")
    password = str(db.get("PASSWORD") or "")
    auth = user + (f":{quote(password, safe='')}" if password else "")
    host = str(db.get("HOST") or "")
    if host.startswith("/"):  # a Unix socket folder
        host = quote(host, safe="")
    elif ":" in host and not host.startswith("["):  # IPv6
        host = f"[{host}]"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    netloc = f"{auth}@{host}{port}" if auth else f"{host}{port}"
    options = {key: value for key, value in (db.get("OPTIONS") or {}).items() if isinstance(value, str | int)}
    query = f"?{urlencode(options)}" if options else ""
    return f"postgres://{netloc}/{quote(str(db['NAME']), safe='')}{query}"


class CeleryWorker:
    """One worker at a time, started and stopped by the test; see the module's docstring."""

    def __init__(self, *, app: Any, env: dict[str, str], log_dir: Path, broker_url: str, redis: Any) -> None:
        self.app = app
        self.env = env
        self.log_dir = log_dir
        self.broker_url = broker_url
        self.redis = redis  # a redis.Redis client of the worker's broker database
        self.visibility_timeout = VISIBILITY_TIMEOUT
        self.process: subprocess.Popen[bytes] | None = None
        self.hostname = ""
        self.starts = 0
        self._logs: list[tuple[str, Path]] = []

    # --- lifecycle ----------------------------------------------------------------

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--hostname", self.hostname,
            "--queues", QUEUES,
            "--concurrency", "1",
            "--pool", "prefork",
            "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Start a worker and return once it answers a ping through the broker."""
        if self.running:
            raise CeleryWorkerError(f"a worker is already running (pid {self.pid})")
        from django.conf import settings

        self.starts += 1
        self.hostname = f"pytest{self.starts}-{uuid.uuid4().hex[:8]}@localhost"
        log = self.log_dir / f"celery-worker-{self.starts}.log"
        self._logs.append((self.hostname, log))
        with open(log, "ab") as handle:
            self.process = subprocess.Popen(
                self.command(),
                cwd=settings.BASE_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                # Its own process group: kill() takes the pool processes with it.
                start_new_session=True,
            )
        self._wait_ready(log, timeout)

    def _wait_ready(self, log: Path, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        ready_line = f"{self.hostname} ready."
        last_error: Exception | None = None
        while True:
            code = self.process.poll()
            if code is not None:
                raise CeleryWorkerError(f"the worker exited with code {code} before it was ready\n{self.output()}")
            # The worker logs "ready." once it consumes its queues (and has swept
            # the broker's unacknowledged messages); the ping then proves that
            # this process and the worker talk through the same broker.
            if ready_line in log.read_text(errors="replace"):
                try:
                    if self.app.control.ping(destination=[self.hostname], timeout=1.0):
                        return
                except Exception as exc:  # noqa: BLE001 - reported below if it never answers
                    last_error = exc
            if time.monotonic() > deadline:
                self._kill_group()
                raise CeleryWorkerError(
                    f"the worker did not answer a ping on {self.broker_url} within {timeout:.0f} s (this process"
                    f" sends to {self.app.conf.broker_url}; last error: {last_error!r})\n{self.output()}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Warm shutdown (SIGTERM): the running task finishes, then the worker exits.

        Returns the worker's exit code (None when no worker was running).
        """
        if not self.running:
            return self.process.returncode if self.process is not None else None
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill_group()
            raise CeleryWorkerError(f"the worker did not stop within {timeout:.0f} s of SIGTERM\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once: nothing is acknowledged."""
        if not self.running:
            raise CeleryWorkerError(f"no worker is running\n{self.output()}")
        self._kill_group()

    def restart(self, timeout: float = READY_TIMEOUT) -> None:
        """Stop the worker (warm) if it runs, then start a new one."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Teardown: SIGKILL whatever still runs, pool processes included.

        No warm shutdown: it takes seconds even when idle, and nothing of the
        worker's is kept (the broker database is emptied; PostgreSQL rolls back
        the transaction of a connection that goes away).
        """
        if self.running:
            self._kill_group()

    def _kill_group(self) -> None:
        # Only while the main process is not yet reaped: its pid, which is
        # the group's id, cannot have been given to another process.
        assert self.process is not None
        stop(self.process, first=signal.SIGKILL, timeout=10)

    # --- pool processes ---------------------------------------------------------------

    def pool_pids(self, timeout: float = 3.0) -> list[int]:
        """The pids of the worker's pool processes, as the worker reports them."""
        replies = self.app.control.inspect(destination=[self.hostname], timeout=timeout).stats() or {}
        stats = replies.get(self.hostname)
        if not stats:
            raise CeleryWorkerError(f"the worker did not answer 'inspect stats'\n{self.output()}")
        return [int(pid) for pid in stats["pool"]["processes"]]

    def kill_pool_process(self) -> int:
        """SIGKILL the (only) pool process, leaving the main worker alive; returns its pid."""
        pids = self.pool_pids()
        if len(pids) != 1:
            raise CeleryWorkerError(f"expected one pool process, the worker reports {pids}")
        os.kill(pids[0], signal.SIGKILL)
        return pids[0]

    # --- the broker ---------------------------------------------------------------

    def queued(self, queue: str = "default") -> int:
        """How many messages wait in ``queue`` (kombu keeps a Redis list per queue)."""
        return int(self.redis.llen(queue))

    def unacked(self) -> list[dict[str, Any]]:
        """The messages delivered to a worker and not yet acknowledged.

        kombu's Redis transport emulates acknowledgements: on delivery it keeps
        the message in the hash ``unacked`` (delivery tag -> [message, exchange,
        routing key]) and the delivery time in the sorted set ``unacked_index``;
        an ack removes both. A worker that dies first (SIGKILL, power loss) leaves
        them there. Every worker's transport runs ``QoS.restore_visible`` once
        when its event loop starts (before it logs "ready.") and then every
        ``unacked_restore_interval`` x ``unacked_restore_throttle`` seconds
        (10 x 10 by default): it moves each message delivered more than
        ``visibility_timeout`` seconds ago (``unacked_restore_limit`` at most)
        back to its queue, under the ``unacked_mutex`` lock. A warm shutdown
        restores its own unacked messages at once (``restore_at_shutdown``); a
        pool process killed under a living worker is handled by Celery instead
        (``reject_on_worker_lost``: the message is rejected with requeue).
        """
        delivered = {
            (tag.decode() if isinstance(tag, bytes) else tag): score
            for tag, score in self.redis.zrange("unacked_index", 0, -1, withscores=True)
        }
        messages = []
        for tag, payload in self.redis.hgetall("unacked").items():
            tag = tag.decode() if isinstance(tag, bytes) else tag
            message, exchange, routing_key = json.loads(payload)
            headers = message.get("headers") or {}
            messages.append(
                {
                    "delivery_tag": tag,
                    "delivered_at": delivered.get(tag),
                    "task": headers.get("task"),
                    "id": headers.get("id"),
                    "kwargsrepr": headers.get("kwargsrepr"),
                    "exchange": exchange,
                    "routing_key": routing_key,
                }
            )
        return messages

    # --- output -------------------------------------------------------------------

    def output(self) -> str:
        """What every worker started by this test wrote (stdout and stderr), in order."""
        parts = []
        for number, (hostname, log) in enumerate(self._logs, start=1):
            text = log.read_text(errors="replace") if log.exists() else ""
            parts.append(f"===== worker {number}: {hostname} ({log}) =====\n{text}")
        return "\n".join(parts)

    def wait_for_output(self, text: str, *, count: int = 1, timeout: float = 30.0) -> str:
        """Wait until ``text`` occurs ``count`` times in ``output()``; return the output."""
        deadline = time.monotonic() + timeout
        while True:
            output = self.output()
            if output.count(text) >= count:
                return output
            if time.monotonic() > deadline:
                raise CeleryWorkerError(f"{text!r} did not occur {count} time(s) within {timeout:.0f} s\n{output}")
            time.sleep(0.05)


def _point_sender_at(app: Any, broker_url: str) -> dict[str, Any]:
    """Send this process's tasks and control messages to ``broker_url``; return what to restore.

    app.conf reads the CELERY_* Django settings lazily, but the connection and
    producer pools are made once, from the URL of the time: drop them (as Celery
    itself does after a fork) so that the next task opens them on the new URL.
    """
    saved = {key: app.conf.changes.get(key, _MISSING) for key in ("broker_url", "broker_transport_options")}
    app.conf.broker_url = broker_url
    app.conf.broker_transport_options = dict(SENDER_TRANSPORT_OPTIONS)
    _drop_pools(app)
    return saved


def _restore_sender(app: Any, saved: dict[str, Any]) -> None:
    for key, value in saved.items():
        if value is _MISSING:
            app.conf.changes.pop(key, None)
        else:
            app.conf.changes[key] = value
    _drop_pools(app)


def _drop_pools(app: Any) -> None:
    # Not force_close_all(): kombu keeps these pools by URL for the whole
    # process, and a closed pool refuses every later acquire.
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


_MISSING = object()


@pytest.fixture
def celery_worker(transactional_db: None, settings: Any, tmp_path: Path, monkeypatch: Any) -> Iterator[CeleryWorker]:
    """A running Celery worker on the test database, the test's data folder and a Redis of its own."""
    import dj_database_url

    # CELERY_BROKER_URL would be preferred to REDIS_URL; the broker is set below, once claimed.
    env = site_env(
        what="a real Celery worker",
        unset=("CELERY_BROKER_URL",),
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
        LOG_LEVEL="INFO",
    )
    db = settings.DATABASES["default"]
    url = env["DATABASE_URL"]
    parsed = dj_database_url.parse(url)
    if (parsed["NAME"], parsed["HOST"], str(parsed["PORT"] or "")) != (db["NAME"], db["HOST"], str(db["PORT"] or "")):
        raise CeleryWorkerError(f"DATABASE_URL {url!r} does not give back the test database {db['NAME']!r}")

    data_dir = Path(settings.DATA_DIR).resolve()
    # config/settings.py makes the worker's MEDIA_ROOT DATA_DIR/media.
    if Path(settings.MEDIA_ROOT).resolve() != data_dir / "media":
        raise CeleryWorkerError(
            f"MEDIA_ROOT {settings.MEDIA_ROOT} is not DATA_DIR/media ({data_dir / 'media'}): the worker would store"
            " its files elsewhere than the test looks for them"
        )

    broker_url, client, token = claim_redis_db()
    env["REDIS_URL"] = broker_url

    from config.celery import app

    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # it would override app.conf.broker_url here too
    settings.CELERY_BROKER_URL = broker_url
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = dict(SENDER_TRANSPORT_OPTIONS)
    saved = _point_sender_at(app, broker_url)
    worker = CeleryWorker(app=app, env=env, log_dir=tmp_path, broker_url=broker_url, redis=client)
    try:
        empty_redis_db(client)
        worker.start()
        yield worker
    finally:
        try:
            worker.close()
        finally:
            _restore_sender(app, saved)
            empty_redis_db(client)
            if client.get(CLAIM_KEY) == token.encode():
                client.delete(CLAIM_KEY)
            client.close()
