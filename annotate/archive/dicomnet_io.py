"""pynetdicom set up for the C-STORE receiver (``annotate.archive.dicomnet``): received data sets go to
temporary files in the listener's ``incoming/`` folder (never memory, never /tmp), write errors are
kept for the handler to answer 0xA700, and pynetdicom's log lines name instances by pseudonymous UIDs.
Design: docs/architecture/design-dicom.md
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from typing import Any

from pynetdicom import _config, dimse_messages

from annotate.archive.pseudonyms import uid_pseudonym

_UID_IN_LOG = re.compile(r"(Instance UID\s*:?\s*)([0-9]+(?:\.[0-9]+)+)")


class PseudonymiseUIDs(logging.Filter):
    """pynetdicom's DEBUG summaries of each C-STORE name the sender's Study/Series/SOP Instance
    UIDs: those lines are logged with the pseudonymous UIDs instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Instance UID" in message:
            record.msg, record.args = _UID_IN_LOG.sub(lambda m: m.group(1) + uid_pseudonym(m.group(2)), message), ()
        return True


def _pseudonymise_pynetdicom_logs() -> None:
    import pynetdicom  # noqa: F401 - its loggers exist once it is imported

    names = [name for name in logging.root.manager.loggerDict if name.startswith("pynetdicom")]
    for name in ["pynetdicom", *names]:
        logger_ = logging.getLogger(name)
        if not any(isinstance(f, PseudonymiseUIDs) for f in logger_.filters):
            logger_.addFilter(PseudonymiseUIDs())


_NamedTemporaryFile = dimse_messages.NamedTemporaryFile


class _IncomingFile:
    """pynetdicom's temporary file for a data set being received, whose write errors (a full
    disk) are kept for the C-STORE handler to answer 0xA700, instead of being raised in the
    association's reactor thread (which would end the association without an answer). After an
    error the file is emptied (the space it took is given back) and the rest is dropped."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.name = handle.name
        self.file = self  # pynetdicom flushes ``.file``
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        self._guarded(self._handle.write, data)
        return len(data)

    def flush(self) -> None:
        self._guarded(self._handle.flush)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._handle.close()

    def _guarded(self, call: Any, *args: Any) -> None:
        if self.error is not None:
            return
        try:
            call(*args)
        except OSError as exc:
            self.error = exc
            with contextlib.suppress(OSError):
                os.ftruncate(self._handle.fileno(), 0)


def _incoming_temporary_file(*args: Any, **kwargs: Any) -> Any:
    """pynetdicom's ``NamedTemporaryFile`` for a received data set, made in the receiving
    listener's ``incoming/`` folder instead of the system's temporary folder (/tmp): the data
    is identifiable until the ingest has pseudonymised it, so it stays in the spool, under
    DATA_DIR. pynetdicom creates the file in the association's DUL thread, which leads to the AE
    (``_incoming_dir`` is set on the listener's AE only); other AEs keep pynetdicom's default."""
    assoc = getattr(threading.current_thread(), "assoc", None)
    folder = getattr(getattr(assoc, "ae", None), "_incoming_dir", None)
    if folder is None:
        return _NamedTemporaryFile(*args, **kwargs)
    return _IncomingFile(_NamedTemporaryFile(*args, **{**kwargs, "dir": folder}))


def _receive_to_files() -> None:
    """Received C-STORE data sets go to temporary files (``event.dataset_path``), not memory.

    Both settings are pynetdicom's, process-wide: chunked receipt, and the patched temporary
    file (the module attribute ``pynetdicom.dimse_messages.NamedTemporaryFile``). Should a
    pynetdicom release rename either, the listener refuses to start rather than receive into
    memory or into /tmp."""
    if not hasattr(_config, "STORE_RECV_CHUNKED_DATASET") or dimse_messages.NamedTemporaryFile not in (
        _NamedTemporaryFile,
        _incoming_temporary_file,
    ):
        raise RuntimeError("this pynetdicom does not receive data sets into files as annotate.archive.dicomnet expects")
    _config.STORE_RECV_CHUNKED_DATASET = True
    dimse_messages.NamedTemporaryFile = _incoming_temporary_file
