"""Helpers for the processes that tests, benchmarks and scripts start (a web server, a worker, the
DICOM listener, Orthanc): a free port to give them, and waiting for a line in their log."""

from __future__ import annotations

import re
import socket
import subprocess
import time
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
