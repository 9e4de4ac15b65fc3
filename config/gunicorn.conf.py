"""gunicorn's settings for the web tier: ``gunicorn -c config/gunicorn.conf.py config.wsgi``.

Every value comes from the environment (GUNICORN_BIND, _WORKERS, _THREADS, _TIMEOUT,
_GRACEFUL_TIMEOUT, _KEEPALIVE, _MAX_REQUESTS); the logs go to stdout/stderr.
Design: docs/architecture/design-site.md
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
