"""Helpers for the processes that tests, benchmarks and scripts start (a web server, a worker, the
DICOM listener, Orthanc, Redis): a free port to give them, waiting for a line in their log or for
their URL to answer, and stopping them (their whole process group when they lead one)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_line(log: Path, pattern: str, process: subprocess.Popen, timeout: float = 120.0) -> re.Match:
    """The first match of ``pattern`` in the file ``log`` (re-read every 50 ms); exits with the log
    when ``process`` ends or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while (found := re.search(pattern, log.read_text(errors="replace"))) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"no {pattern!r} in {log}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    return found


def wait_for_url(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    """Return once a GET of ``url`` succeeds (re-tried every 0.2 s); stops ``process`` and exits
    with its log when it ends or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:  # refused, reset, or an HTTP error status
            if process.poll() is not None or time.monotonic() > deadline:
                stop(process)
                raise SystemExit(f"{url} did not answer:\n{log.read_text(errors='replace')}") from None
            time.sleep(0.2)


def stop(*processes: subprocess.Popen, timeout: float = 20.0, first: int = signal.SIGTERM) -> None:
    """Stop ``processes`` and reap them: ``first`` to each (SIGTERM: a warm shutdown; SIGKILL:
    at once), then SIGKILL to those still running ``timeout`` seconds later. A process that leads
    its own process group (started with ``start_new_session=True``: gunicorn, a Celery worker,
    with their children) gets the signals as a group."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        _signal(process, first)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(process, signal.SIGKILL)
            process.wait(10)


def _signal(process: subprocess.Popen, signum: int) -> None:
    # Only while the process is not yet reaped: its pid, and the group's id when it leads one,
    # cannot have been given to another process.
    if process.poll() is not None:
        return
    try:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    except ProcessLookupError:
        pass
