"""Receive radiographs from a PACS or a modality by DICOM C-STORE (``annotate.archive.dicomnet``).

Runs until SIGTERM or Ctrl-C, then lets running associations end; what still waits in the spool
is ingested at the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotate.archive.dicomnet import DicomListener

logger = logging.getLogger("annotate.archive.dicomnet")


class Command(BaseCommand):
    help = "Receive radiographs by DICOM C-STORE (and answer C-ECHO); each one goes through the usual ingest."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=settings.DICOM_PORT, help="TCP port (0: a free one)")
        parser.add_argument("--ae-title", default=settings.DICOM_AE_TITLE, help="our AE title (called AE)")
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
        parser.add_argument("--spool", type=Path, default=None, help="spool folder (default DICOM_SPOOL_DIR)")

    def handle(self, *args, port: int, ae_title: str, host: str, spool: Path | None, **options) -> None:
        if not 0 <= port <= 65535:
            raise CommandError("--port must be between 0 and 65535")
        if not 1 <= len(ae_title.strip()) <= 16 or "\\" in ae_title:
            raise CommandError("--ae-title must be 1 to 16 characters without a backslash")
        stop = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            logger.info("%s received: stopping", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        listener = DicomListener(ae_title=ae_title.strip(), host=host, port=port, spool_dir=spool)
        try:
            listener.start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        allowed = ", ".join(listener.allowed_calling_ae) or "any calling AE"
        logger.info("spool %s; accepting %s; %d associations at most", listener.spool_dir, allowed,
                    listener.max_associations)  # fmt: skip
        logger.info("listening on %s:%d as %s", host, listener.port, listener.ae_title)
        try:
            while not stop.wait(1.0):
                pass
        finally:
            listener.stop()
            counts = ", ".join(f"{key} {value}" for key, value in listener.counts.items())
            logger.info("stopped (%s)", counts)
