"""gunicorn's settings for the web tier: ``gunicorn -c config/gunicorn.conf.py config.wsgi``.

Every value comes from the environment (README "Running in production"):
- GUNICORN_BIND (default 127.0.0.1:8000): behind a reverse proxy that ends TLS;
- GUNICORN_WORKERS (default 2 x CPUs + 1, at most 8) synchronous worker processes, each with
  GUNICORN_THREADS threads (default 4): uploads and the reader API are I/O-bound;
- GUNICORN_TIMEOUT (default 120 s): a request still running after it is killed and logged
  (an upload of a large zip streams to disk well within it); GUNICORN_GRACEFUL_TIMEOUT (30 s) on
  a restart; GUNICORN_KEEPALIVE (5 s) behind the proxy;
- GUNICORN_MAX_REQUESTS (default 2000, +/- 10% jitter): a worker is replaced after that many
  requests, which bounds any slow memory growth;
- the access log and the error log go to stdout/stderr (the service manager keeps them).
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = _int("GUNICORN_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 8))
threads = _int("GUNICORN_THREADS", 4)
worker_class = "gthread" if threads > 1 else "sync"
timeout = _int("GUNICORN_TIMEOUT", 120)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = max_requests // 10
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(D)sus "%(a)s"'
# The proxy in front sets X-Forwarded-For/-Proto; trust it only from these addresses.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Django is imported once in the master and shared by the workers (copy-on-write): faster
# restarts of a worker; the database connections are opened per worker, after the fork.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") not in {"0", "false", "no", "off"}


def when_ready(server: object) -> None:
    """The web tier starting removes the upload folders and temporary upload files that a killed
    worker left (annotate.archive.cleanup): received files that were never de-identified."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.db import connections

    from annotate.archive.cleanup import upload_orphans_remove  # deferred: after django.setup()

    try:
        upload_orphans_remove()
    finally:
        connections.close_all()  # no connection of the master's is shared with a forked worker
