"""The DICOM C-STORE listener against DCMTK, as a modality or a PACS would use it.

Real parts only: DCMTK's ``echoscu`` and ``storescu`` as the sender, the
listener in this process (``DicomListener`` on a free port, its spool under the
test's folder) or as the ``manage.py dicom_listener`` command in a subprocess on
the same test database (PostgreSQL), realistic phantom radiographs
(``devtools.phantoms``, some RLE-compressed) and small files built in memory.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from pydicom import dcmread
from pydicom.uid import DigitalXRayImageStorageForPresentation

from annotate.archive.dicomnet import DicomListener, received_at_of
from annotate.archive.pseudonyms import uid_pseudonym
from annotate.models import Radiograph
from devtools.phantoms import generate_phantoms
from devtools.processes import free_port, stop
from tests.celery_worker import database_url, site_env, skip_or_fail
from tests.support import CT_IMAGE_STORAGE

pytestmark = [pytest.mark.dicom, pytest.mark.django_db(transaction=True)]

AE_TITLE = "HIPTEST"
READY_TIMEOUT = 90.0  # a Django process starting on a busy machine


@pytest.fixture(autouse=True)
def dcmtk() -> None:
    for tool in ("echoscu", "storescu"):
        if shutil.which(tool) is None:
            skip_or_fail(f"DCMTK's {tool} is not installed (Debian package dcmtk)")


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def listen(spool: Path) -> Iterator[Callable[..., DicomListener]]:
    """Start listeners in this process on free ports; all are stopped at teardown."""
    started: list[DicomListener] = []

    def start(**kwargs: Any) -> DicomListener:
        kwargs.setdefault("spool_dir", spool)
        kwargs.setdefault("allowed_calling_ae", [])
        listener = DicomListener(ae_title=AE_TITLE, port=0, **kwargs)
        listener.start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.stop()


def echoscu(port: int, *, aet: str = "MODALITY", aec: str = AE_TITLE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["echoscu", "-v", "-aet", aet, "-aec", aec, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def storescu(port: int, *files: Path, aet: str = "MODALITY") -> subprocess.CompletedProcess[str]:
    """One association sending every file; ``-xr`` proposes RLE besides the uncompressed syntaxes."""
    return subprocess.run(
        ["storescu", "-v", "-xr", "-aet", aet, "-aec", AE_TITLE, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def with_changes(data: bytes, *, delete: tuple[str, ...] = (), **values: Any) -> bytes:
    ds = dcmread(io.BytesIO(data))
    for keyword in delete:
        delattr(ds, keyword)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def spooled(spool: Path) -> list[str]:
    """Files waiting in the spool (and half-written ones)."""
    return sorted(path.name for path in spool.iterdir() if path.is_file())


def test_echoscu_gets_success(listen: Callable[..., DicomListener], caplog: Any) -> None:
    listener = listen()
    result = echoscu(listener.port)
    assert result.returncode == 0, output(result)
    assert "Received Echo Response (Success)" in output(result)
    assert "C-ECHO from MODALITY" in caplog.text


def test_storescu_files_become_pseudonymised_radiographs(
    listen: Callable[..., DicomListener], spool: Path, tmp_path: Path, caplog: Any
) -> None:
    summary = generate_phantoms(tmp_path / "phantoms", studies=3, seed=11)
    files = sorted((tmp_path / "phantoms").rglob("*.dcm"))
    headers = [dcmread(path, stop_before_pixels=True) for path in files]
    assert len(files) == summary.radiographs >= 3
    assert any(h.file_meta.TransferSyntaxUID.is_compressed for h in headers), "no RLE phantom: pick another seed"
    listener = listen()

    result = storescu(listener.port, *files)

    assert result.returncode == 0, output(result)
    assert listener.wait_idle(120)
    radiographs = list(Radiograph.objects.order_by("received_at"))
    assert sorted(r.sop_instance_uid for r in radiographs) == sorted(uid_pseudonym(h.SOPInstanceUID) for h in headers)
    for radiograph in radiographs:
        assert radiograph.source == Radiograph.Source.DICOM_STORE
        assert radiograph.received_at <= radiograph.imported_at
    assert caplog.text.count("imported radiograph") == len(files)
    assert "from MODALITY" in caplog.text
    # Nothing left behind, and no patient's name or ID anywhere in the database.
    assert spooled(spool) == [] and list((spool / "rejected").iterdir()) == []
    dump = io.StringIO()
    call_command("dumpdata", "annotate", stdout=dump)
    for header in headers:
        for value in (str(header.PatientName), str(header.PatientID)):
            assert value and value not in dump.getvalue()


def test_same_file_sent_twice_is_one_radiograph(
    listen: Callable[..., DicomListener], dicom_bytes: Callable[..., bytes], tmp_path: Path, caplog: Any
) -> None:
    path = write(tmp_path / "one.dcm", dicom_bytes(seed=3))
    listener = listen()

    first, second = storescu(listener.port, path), storescu(listener.port, path)

    assert first.returncode == 0 and second.returncode == 0, output(first) + output(second)
    assert listener.wait_idle(60)
    assert Radiograph.objects.count() == 1
    radiograph = Radiograph.objects.get()
    assert f"imported radiograph {radiograph.id} from MODALITY" in caplog.text
    assert f"present radiograph {radiograph.id} from MODALITY" in caplog.text


def test_image_without_pixel_data_is_refused_with_a_reason(
    listen: Callable[..., DicomListener], dicom_bytes: Callable[..., bytes], spool: Path, tmp_path: Path, caplog: Any
) -> None:
    data = with_changes(
        dicom_bytes(seed=4), delete=("PixelData",), SOPClassUID=DigitalXRayImageStorageForPresentation, Modality="DX"
    )
    path = write(tmp_path / "no-pixels.dcm", data)
    listener = listen()

    result = storescu(listener.port, path)

    assert result.returncode != 0
    assert "Received Store Response (Error: CannotUnderstand)" in output(result)
    assert "with status 0xC000: no pixel data; not an image" in caplog.text
    assert listener.wait_idle(30)
    assert spooled(spool) == [] and not Radiograph.objects.exists()


def test_a_ct_image_is_refused_as_not_a_radiograph(
    listen: Callable[..., DicomListener], dicom_bytes: Callable[..., bytes], spool: Path, tmp_path: Path, caplog: Any
) -> None:
    path = write(tmp_path / "ct.dcm", with_changes(dicom_bytes(seed=5), SOPClassUID=CT_IMAGE_STORAGE, Modality="CT"))
    listener = listen()

    result = storescu(listener.port, path)

    assert result.returncode != 0
    assert "Received Store Response (Refused: SOPClassNotSupported)" in output(result), output(result)
    assert "with status 0x0122: CT Image Storage is not a radiograph" in caplog.text
    assert listener.wait_idle(30)
    assert spooled(spool) == [] and not Radiograph.objects.exists()


def test_a_file_the_ingest_rejects_is_kept_with_its_reason(
    listen: Callable[..., DicomListener], dicom_bytes: Callable[..., bytes], spool: Path, tmp_path: Path, caplog: Any
) -> None:
    # A header that passes the check at the door, pixel data no decoder can read.
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    ds = dcmread(io.BytesIO(dicom_bytes(seed=6)))
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([b"\x01\x00\x00\x00\x40\x00\x00\x00" + b"\x00" * 56 + b"not rle!" * 8])
    ds["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    path = write(tmp_path / "bad-rle.dcm", buffer.getvalue())
    listener = listen()

    result = storescu(listener.port, path)

    assert result.returncode == 0, output(result)  # stored, as a router would: the ingest decides later
    assert listener.wait_idle(30)
    assert not Radiograph.objects.exists()
    kept = sorted(path.name for path in (spool / "rejected").iterdir())
    assert len(kept) == 2 and kept[1] == kept[0] + ".reason.txt"
    reason = (spool / "rejected" / kept[1]).read_text()
    assert reason.startswith("cannot decode pixel data (RLE Lossless)")
    pseudonym = uid_pseudonym(ds.SOPInstanceUID)
    assert "calling AE: MODALITY" in reason and f"pseudonymous SOP Instance UID: {pseudonym}" in reason
    assert f"rejected {kept[0]} from MODALITY (pseudonymous SOP Instance UID {pseudonym}): cannot decode" in caplog.text
    # Kept de-identified only: the copy in rejected/ carries the pseudonymous UID, not the patient.
    copy = dcmread(spool / "rejected" / kept[0])
    assert copy.SOPInstanceUID == pseudonym and copy.PatientID != ds.PatientID and ds.SOPInstanceUID not in reason
    assert spooled(spool) == []


def test_calling_ae_outside_the_allowlist_is_refused(listen: Callable[..., DicomListener], caplog: Any) -> None:
    listener = listen(allowed_calling_ae=["PACS1", "CR_ROOM_2"])

    refused, allowed = echoscu(listener.port, aet="LAPTOP"), echoscu(listener.port, aet="CR_ROOM_2")

    assert refused.returncode != 0
    assert "Calling AE Title Not Recognized" in output(refused)
    assert "calling AE title not allowed: LAPTOP" in caplog.text
    assert allowed.returncode == 0, output(allowed)


def test_a_sender_calling_another_ae_title_is_refused(listen: Callable[..., DicomListener], caplog: Any) -> None:
    listener = listen()

    result = echoscu(listener.port, aec="PACS")

    assert result.returncode != 0
    assert "Called AE Title Not Recognized" in output(result)
    assert f"called AE title 'PACS', not '{AE_TITLE}'" in caplog.text


def test_associations_beyond_the_maximum_are_refused(listen: Callable[..., DicomListener], caplog: Any) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    listener = listen(max_associations=1)
    sender = AE(ae_title="HOLDER")
    sender.add_requested_context(Verification)
    held = sender.associate("127.0.0.1", listener.port, ae_title=AE_TITLE)
    assert held.is_established
    try:
        result = echoscu(listener.port)
    finally:
        held.release()

    assert result.returncode != 0
    assert "Local Limit Exceeded" in output(result), output(result)
    assert "too many associations (DICOM_MAX_ASSOCIATIONS=1): MODALITY" in caplog.text
    assert echoscu(listener.port).returncode == 0  # the held one is gone


def test_a_full_disk_answers_out_of_resources_and_leaves_no_partial_file(
    listen: Callable[..., DicomListener], dicom_bytes: Callable[..., bytes], spool: Path, tmp_path: Path, caplog: Any
) -> None:
    spool.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(spool)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs as the spool (needs root): {mounted.stderr.decode().strip()}")
    try:
        big = write(tmp_path / "big.dcm", dicom_bytes(seed=7, rows=1024, columns=1024))  # 2 MiB of pixels
        small = write(tmp_path / "small.dcm", dicom_bytes(seed=8))
        listener = listen()

        full = storescu(listener.port, big)

        assert full.returncode != 0
        assert "Received Store Response (Refused: OutOfResources)" in output(full)
        assert "with status 0xA700: cannot spool the file: No space left on device" in caplog.text
        assert spooled(spool) == []
        # The listener goes on receiving once there is room.
        fine = storescu(listener.port, small)
        assert fine.returncode == 0, output(fine)
        assert listener.wait_idle(30)
        assert Radiograph.objects.count() == 1
    finally:
        subprocess.run(["umount", str(spool)], check=True)


# --- the command, in a subprocess on the test database --------------------------------------------


class ListenerProcess:
    """``manage.py dicom_listener`` in a subprocess with the test's data folder."""

    def __init__(self, log: Path, database: str) -> None:
        self.log = log
        env = site_env(
            what="the listener",
            unset=("DICOM_SPOOL_DIR", "DICOM_ALLOWED_CALLING_AE"),  # the defaults: DATA_DIR/spool, any AE
            DATABASE_URL=database,
            LOG_LEVEL="INFO",
        )
        with open(log, "ab") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "dicom_listener", "--port", "0", "--ae-title", AE_TITLE],
                cwd=settings.BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        self.port = self._wait_ready()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def _wait_ready(self) -> int:
        deadline = time.monotonic() + READY_TIMEOUT
        while (found := re.search(rf"listening on 127\.0\.0\.1:(\d+) as {AE_TITLE}", self.text())) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"the listener did not get ready\n{self.text()}")
            time.sleep(0.1)
        return int(found.group(1))

    def wait_for(self, text: str, count: int = 1, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.text().count(text) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged {count} time(s)\n{self.text()}")
            time.sleep(0.1)

    def close(self) -> None:
        stop(self.process, first=signal.SIGKILL, timeout=10)


@pytest.fixture
def run_command(tmp_path: Path) -> Iterator[Callable[..., ListenerProcess]]:
    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        skip_or_fail(f"the listener subprocess needs the test database on PostgreSQL; this run uses {db['ENGINE']}")
    processes: list[ListenerProcess] = []

    def run(database: str | None = None) -> ListenerProcess:
        process = ListenerProcess(tmp_path / f"listener-{len(processes) + 1}.log", database or database_url(db))
        processes.append(process)
        return process

    yield run
    for process in processes:
        process.close()


def test_the_command_answers_echo_and_stops_on_sigterm(run_command: Callable[..., ListenerProcess]) -> None:
    listener = run_command()

    result = echoscu(listener.port)
    listener.process.send_signal(signal.SIGTERM)

    assert result.returncode == 0, output(result) + listener.text()
    assert listener.process.wait(60) == 0, listener.text()
    assert "SIGTERM received: stopping" in listener.text()
    assert "stopped (stored 0, refused 0, imported 0, present 0, rejected 0)" in listener.text()


def test_files_spooled_by_a_killed_listener_are_ingested_by_the_next(
    run_command: Callable[..., ListenerProcess], dicom_bytes: Callable[..., bytes], tmp_path: Path
) -> None:
    files = [write(tmp_path / f"{i}.dcm", dicom_bytes(seed=20 + i, patient_id=f"MRN{i}")) for i in range(3)]
    spool = Path(settings.DATA_DIR) / "spool"
    # The first listener's database is down: it acknowledges what it spooled and cannot ingest it ...
    nowhere = f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"
    first = run_command(nowhere)
    result = storescu(first.port, *files)
    assert result.returncode == 0, output(result) + first.text()
    first.wait_for("it stays in the spool")
    # ... and is killed (no chance to tidy up).
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(30)
    names = spooled(spool)
    assert len(names) == 3 and not Radiograph.objects.exists()

    second = run_command()
    second.wait_for("imported radiograph", count=3)

    assert "3 file(s) left in the spool" in second.text()
    assert spooled(spool) == []
    radiographs = list(Radiograph.objects.order_by("received_at"))
    assert [r.received_at for r in radiographs] == [received_at_of(name) for name in names]
    assert all(r.source == Radiograph.Source.DICOM_STORE for r in radiographs)
    assert json.dumps([r.study.patient.pseudo_id for r in radiographs]).count("MRN") == 0
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(60) == 0, second.text()
