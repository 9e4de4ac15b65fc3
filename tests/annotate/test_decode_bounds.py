"""Bounded decoding (issue 14, item 1): decompression bombs refused on every route.

The bombs (``tests.bombs``) are 0.5 MB (16-bit) and 1 MB (32-bit) Deflated Explicit VR Little
Endian files of 16384 x 16384 zero pixels: 512 MiB and 1 GiB decoded. Each route refuses them
with a reason before any large allocation: the import command (in a subprocess, its peak memory
read from the kernel), the browser upload form and the API upload (the real views, then the
job as the worker runs it), STOW-RS, ``/api/predict/``, and DCMTK's ``storescu`` to the
``manage.py dicom_listener`` process, whose peak memory growth is read from /proc.
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

import pydicom
import pytest
from django.conf import settings
from django.urls import reverse
from pydicom.data import get_testdata_file

from annotate import services
from annotate.archive.dicom import DecodeLimits, DicomRejected, check_inflated_size, decode_dicom, read_meta
from annotate.models import ImportJob, Radiograph
from devtools.processes import stop
from tests.bombs import deflate_bomb
from tests.celery_worker import site_env, skip_or_fail

DECLARED = "declared image 16384x16384 is 268 Mpx, over MAX_DECODED_PIXELS"
COMMAND_PEAK_LIMIT = 400 * 1024**2  # the bound for the import command refusing the bombs
LISTENER_GROWTH_LIMIT = 64 * 1024**2  # an eighth of what inflating the 16-bit bomb alone would take
AE_TITLE = "HIPBOMB"


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {"bomb16.dcm": deflate_bomb(16), "bomb32.dcm": deflate_bomb(32)}


@pytest.fixture
def bomb_dir(tmp_path: Path, bombs: dict[str, bytes]) -> Path:
    folder = tmp_path / "bombs"
    folder.mkdir()
    for name, data in bombs.items():
        (folder / name).write_bytes(data)
    return folder


def stored_files() -> list[Path]:
    """Every file the platform keeps under DATA_DIR (originals, pixels, previews, uploads, spool)."""
    root = Path(settings.DATA_DIR)
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1))


def subprocess_env(**extra: str) -> dict[str, str]:
    """A site command's environment; the listener's spool is the default, DATA_DIR/spool."""
    return site_env(what="the subprocess", unset=("DICOM_SPOOL_DIR",), **extra)


# --- the decode module --------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [16, 32])
def test_a_bomb_is_refused_for_its_declared_size(bits: int) -> None:
    data = deflate_bomb(bits)
    assert len(data) < 1.1 * 1024**2  # 0.5 MB (16-bit), 1 MB (32-bit)
    for read in (read_meta, decode_dicom):
        with pytest.raises(DicomRejected, match=DECLARED):
            read(data)


def test_a_bomb_whose_header_lies_is_refused_by_the_inflate_cap() -> None:
    # The header declares 512 x 512; the deflated data set still inflates to 512 MiB.
    data = deflate_bomb(16, declared_side=512, seed="liar")
    for check in (read_meta, decode_dicom, check_inflated_size):
        with pytest.raises(DicomRejected, match="deflated data set inflates past 72 MiB"):
            check(data)


def test_a_real_deflated_image_within_the_bounds_decodes() -> None:
    data = deflate_bomb(16, side=600, seed="small")
    check_inflated_size(data)
    image = decode_dicom(data)
    assert image.pixels.shape == (600, 600) and read_meta(data).transfer_syntax_uid == "1.2.840.10008.1.2.1.99"


def test_the_declared_size_bounds_native_files_too(dicom_bytes: Callable[..., bytes]) -> None:
    data = dicom_bytes(rows=256, columns=240)
    assert decode_dicom(data).pixels.shape == (256, 240)
    with pytest.raises(DicomRejected, match=r"declared image 240x256 is 0 Mpx, over MAX_DECODED_PIXELS"):
        read_meta(data, limits=DecodeLimits(max_pixels=60_000))
    with pytest.raises(DicomRejected, match=r"at 16 bits decodes to 0 MiB, over MAX_DECODED_BYTES"):
        decode_dicom(data, limits=DecodeLimits(max_bytes=100_000))


def test_a_codestream_larger_than_its_header_is_refused_before_decoding() -> None:
    # A JPEG whose own frame header (SOF) says more than the DICOM header: the decoder would
    # allocate what the codestream says.
    ds = pydicom.dcmread(get_testdata_file("JPGExtended.dcm"))
    rows, columns = int(ds.Rows), int(ds.Columns)
    ds.Rows, ds.Columns = rows // 2, columns // 2
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with pytest.raises(DicomRejected, match=rf"compressed pixel data is {columns}x{rows}, the header says"):
        decode_dicom(buffer.getvalue())


# --- the import command, in a subprocess: its peak memory ---------------------------------------


REPORT_PEAK = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    status = open("/proc/self/status").read()
    print("PEAK_KB", next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), flush=True)
"""


@pytest.mark.django_db(transaction=True)
def test_import_command_refuses_the_bombs_in_bounded_memory(bomb_dir: Path) -> None:
    liar = bomb_dir / "liar.dcm"
    liar.write_bytes(deflate_bomb(16, declared_side=512, seed="liar"))
    # The command reports its own high-water mark (VmHWM) as it ends. Not wait4's ru_maxrss: a
    # child started from this process begins with this process's (pytest's, TensorFlow loaded)
    # high-water mark folded in at exec, so it measured pytest, not the command.
    process = subprocess.Popen(
        [sys.executable, "-c", REPORT_PEAK, "manage.py", "import_dicom", "--no-progress", str(bomb_dir)],
        cwd=settings.BASE_DIR,
        env=subprocess_env(INGEST_WORKERS="2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = process.communicate()
    reported = re.search(r"^PEAK_KB (\d+)$", out, re.MULTILINE)
    assert reported, out
    peak = int(reported.group(1)) * 1024
    print(f"import_dicom peak RSS refusing 3 bombs: {peak / 1024**2:.0f} MB")

    assert process.returncode == 0, out
    assert re.search(rf"rejected {re.escape(str(bomb_dir / 'bomb16.dcm'))}: {DECLARED}", out), out
    assert re.search(rf"rejected {re.escape(str(bomb_dir / 'bomb32.dcm'))}: {DECLARED}", out), out
    assert f"rejected {liar}: deflated data set inflates past 72 MiB" in out, out
    assert "imported: 0, already present: 0, rejected: 3" in out
    assert peak < COMMAND_PEAK_LIMIT, f"peak RSS {peak / 1024**2:.0f} MB"
    assert not Radiograph.objects.exists() and stored_files() == []


# --- upload: the browser form and the API, then the job as the worker runs it -------------------


def _uploads(bombs: dict[str, bytes]) -> list[io.BytesIO]:
    files = []
    for name, data in bombs.items():
        upload = io.BytesIO(data)
        upload.name = name
        files.append(upload)
    return files


def _assert_job_refused_the_bombs(job: ImportJob) -> None:
    services.import_job_run(job_id=job.id)  # what the worker does
    job.refresh_from_db()
    assert job.status == "done" and job.counts() == {"imported": 0, "present": 0, "rejected": 2}
    assert all(DECLARED in item.reason for item in job.items.all())
    assert not Radiograph.objects.exists()
    assert stored_files() == []  # the uploaded bombs are gone with their job folder


@pytest.mark.django_db
def test_browser_upload_refuses_the_bombs(
    client_as: Callable[..., Any], bombs: dict[str, bytes], django_capture_on_commit_callbacks: Any
) -> None:
    client = client_as("researcher")
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("import_list"), {"files": _uploads(bombs)})
    assert response.status_code == 302
    job = ImportJob.objects.get()
    _assert_job_refused_the_bombs(job)
    page = client.get(reverse("import_detail", args=[job.id])).content.decode()
    assert page.count("declared image 16384x16384") == 2


@pytest.mark.django_db
def test_api_upload_refuses_the_bombs(
    client_as: Callable[..., Any], bombs: dict[str, bytes], django_capture_on_commit_callbacks: Any
) -> None:
    client = client_as("researcher")
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/api/imports/", {"files": _uploads(bombs)})
    assert response.status_code == 202, response.content
    job = ImportJob.objects.get(id=response.json()["id"])
    _assert_job_refused_the_bombs(job)
    rejected = client.get(f"/api/imports/{job.id}/").json()["rejected"]
    assert len(rejected) == 2 and all(DECLARED in item["reason"] for item in rejected)


# --- STOW-RS and predict ------------------------------------------------------------------------


@pytest.mark.django_db
def test_stow_refuses_the_bombs(client_as: Callable[..., Any], bombs: dict[str, bytes], caplog: Any) -> None:
    boundary = "bomb-boundary-7c1e"
    body = (
        b"".join(
            b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n"
            for data in bombs.values()
        )
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )
    response = client_as("researcher").post(
        "/api/dicomweb/studies",
        data=body,
        content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )
    assert response.status_code == 409, response.content
    failed = json.loads(response.content)["00081198"]["Value"]
    assert [item["00081197"]["Value"] for item in failed] == [[0xC000], [0xC000]]
    assert caplog.text.count(DECLARED) == 2
    assert not Radiograph.objects.exists() and stored_files() == []


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["bomb16.dcm", "bomb32.dcm"])
def test_predict_refuses_the_bombs(client_as: Callable[..., Any], bombs: dict[str, bytes], name: str) -> None:
    upload = io.BytesIO(bombs[name])
    upload.name = name
    boxes = json.dumps([{"side": "right", "box": [100, 100, 400, 400]}])
    response = client_as("researcher").post("/api/predict/", {"file": upload, "boxes": boxes})
    assert response.status_code == 400 and DECLARED in response.json()["detail"]


# --- C-STORE: DCMTK storescu to the listener process, its peak memory growth --------------------


class Listener:
    """``manage.py dicom_listener`` in a subprocess, on the test database and data folder."""

    def __init__(self, log: Path, **env: str) -> None:
        self.log = log
        with open(log, "ab") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "dicom_listener", "--port", "0", "--ae-title", AE_TITLE],
                cwd=settings.BASE_DIR,
                env=subprocess_env(LOG_LEVEL="INFO", DICOM_ALLOWED_CALLING_AE="", **env),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while (found := re.search(rf"listening on 127\.0\.0\.1:(\d+) as {AE_TITLE}", self.text())) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"the listener did not get ready\n{self.text()}")
            time.sleep(0.1)
        self.port = int(found.group(1))

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        stop(self.process, first=signal.SIGKILL, timeout=10)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    for tool in ("storescu",):
        if shutil.which(tool) is None:
            skip_or_fail(f"DCMTK's {tool} is not installed (Debian package dcmtk)")
    process = Listener(tmp_path / "listener.log")
    yield process
    process.close()


@pytest.mark.dicom
@pytest.mark.django_db(transaction=True)
def test_storescu_bombs_are_refused_by_the_listener_in_bounded_memory(listener: Listener, bomb_dir: Path) -> None:
    pid = listener.process.pid
    time.sleep(1.0)  # let the start settle (imports, threads) before the baseline
    before = status_kb(pid, "VmRSS") * 1024
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM (peak RSS) to the current RSS
    # -xd: propose Deflated Explicit VR Little Endian, so the bombs travel deflated (0.5 and 1 MB).
    sent = ""
    for path in (bomb_dir / "bomb16.dcm", bomb_dir / "bomb32.dcm"):
        command = ["storescu", "-v", "-xd", "-aet", "MODALITY", "-aec", AE_TITLE, "127.0.0.1", str(listener.port)]
        result = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=300)
        sent += result.stdout + result.stderr
    deadline = time.monotonic() + 60
    while listener.text().count("refused a C-STORE") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    growth = status_kb(pid, "VmHWM") * 1024 - before
    print(
        f"dicom_listener peak RSS growth receiving 2 bombs: {growth / 1024**2:.1f} MB "
        f"(RSS before {before / 1024**2:.0f} MB)"
    )

    log = listener.text()
    assert "Deflated Explicit VR Little Endian" in sent, sent  # the bombs went deflated
    assert sent.count("Received Store Response (Error: CannotUnderstand)") == 2, sent
    assert log.count("with status 0xC000: " + DECLARED) == 2, log
    assert growth < LISTENER_GROWTH_LIMIT, f"listener peak RSS grew by {growth / 1024**2:.0f} MB"
    spool = Path(settings.DATA_DIR) / "spool"
    assert [path for path in spool.rglob("*") if path.is_file()] == []  # never written, not even rejected/
    assert not Radiograph.objects.exists()


LARGE_LIMIT = 40 * 1024**2  # MAX_DICOM_BYTES for the listener below: between the two files


@pytest.mark.dicom
@pytest.mark.django_db(transaction=True)
def test_storescu_large_files_are_received_to_disk_not_memory(
    tmp_path: Path, dicom_bytes: Callable[..., bytes]
) -> None:
    """A data set arrives in a file in the spool's incoming/ folder (pynetdicom's chunked
    receipt), never whole in the listener's memory: a 46 MB file over MAX_DICOM_BYTES is refused
    for its size and a 39 MB one is stored, each with the listener's peak RSS growth far below
    the file's size. No temporary file is left, in incoming/ or in the system's temporary folder."""
    if shutil.which("storescu") is None:
        skip_or_fail("DCMTK's storescu is not installed (Debian package dcmtk)")
    import tempfile

    over = tmp_path / "over.dcm"
    over.write_bytes(dicom_bytes(seed=21, rows=4800, columns=4800))  # 46 MB, 23 Mpx: within the decode bounds
    within = tmp_path / "within.dcm"
    within.write_bytes(dicom_bytes(seed=22, rows=4400, columns=4400))  # 39 MB
    assert over.stat().st_size > LARGE_LIMIT > within.stat().st_size
    system_tmp = Path(tempfile.gettempdir())
    tmp_before = set(system_tmp.glob("tmp*.dcm"))
    incoming = Path(settings.DATA_DIR) / "spool" / "incoming"
    listener = Listener(tmp_path / "listener.log", MAX_DICOM_BYTES=str(LARGE_LIMIT))
    try:
        pid = listener.process.pid
        time.sleep(1.0)  # let the start settle (imports, threads) before the baseline
        assert incoming.is_dir() and incoming.stat().st_mode & 0o777 == 0o700

        def send(path: Path, done: str) -> tuple[int, str, bool]:
            """Peak RSS growth (VmHWM, reset first) until the log shows `done`, storescu's output,
            and whether a file was seen in incoming/ meanwhile. The drain ingests a stored file
            at once (it reads and decodes it whole): the peak is read just before the log line
            appears, the receipt and the handler's checks and copy are in it, the ingest is not."""
            before = status_kb(pid, "VmRSS") * 1024
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM (peak RSS) to the current RSS
            command = ["storescu", "-v", "-aet", "MODALITY", "-aec", AE_TITLE, "127.0.0.1", str(listener.port)]
            sender = subprocess.Popen(
                [*command, str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            peak, seen, count = before, False, listener.text().count(done)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                hwm = status_kb(pid, "VmHWM") * 1024
                seen = seen or any(incoming.iterdir())
                if listener.text().count(done) > count:
                    break
                peak = hwm
                time.sleep(0.002)
            else:
                raise AssertionError(f"no {done!r} in the log\n{listener.text()}")
            out, _ = sender.communicate(timeout=60)
            return peak - before, out, seen

        refused, out_refused, seen_refused = send(over, "refused a C-STORE")
        stored, out_stored, seen_stored = send(within, "stored ")
        deadline = time.monotonic() + 120
        while "imported radiograph" not in listener.text() and time.monotonic() < deadline:
            time.sleep(0.1)
        print(
            f"dicom_listener peak RSS growth receiving {over.stat().st_size / 1024**2:.0f} MB (refused, over "
            f"MAX_DICOM_BYTES): {refused / 1024**2:.1f} MB; receiving and spooling "
            f"{within.stat().st_size / 1024**2:.0f} MB (stored): {stored / 1024**2:.1f} MB"
        )
        log = listener.text()
        assert "Received Store Response (Refused: OutOfResources)" in out_refused, out_refused
        assert "with status 0xA700: file too large (43 MB; limit 40 MB)" in log, log
        assert "Received Store Response (Success)" in out_stored, out_stored
        assert "imported radiograph" in log, log
        assert seen_refused and seen_stored  # each arrived in incoming/
        assert refused < 0.5 * over.stat().st_size, f"peak RSS grew by {refused / 1024**2:.0f} MB"
        assert stored < 0.5 * within.stat().st_size, f"peak RSS grew by {stored / 1024**2:.0f} MB"
        assert list(incoming.iterdir()) == []
        assert set(system_tmp.glob("tmp*.dcm")) <= tmp_before
        assert Radiograph.objects.count() == 1
    finally:
        listener.close()
