"""A real PACS for tests: Debian's Orthanc with its DICOMweb plugin, on loopback.

A pytest plugin (``pytest_plugins = [..., "tests.pacs"]`` in tests/conftest.py)
with one fixture, ``orthanc``: it writes an Orthanc configuration into the test's
temporary folder (free HTTP and DICOM ports on 127.0.0.1, storage in that folder,
the DICOMweb plugin at ``/dicom-web/``, no authentication, no remote access),
starts ``/usr/sbin/Orthanc``, waits until ``/system`` answers, and kills it at
teardown. A failed test shows Orthanc's log in its report.

    def test_something(orthanc):
        ids = [orthanc.upload(make_dicom(...))]                 # POST /instances
        orthanc.add_modality("us", "HIPSTUDY", "127.0.0.1", port)
        orthanc.store_to("us", ids)                             # C-STORE to our listener
        orthanc.add_dicomweb_server("us", url, headers={...})
        orthanc.stow_to("us", ids)                              # STOW-RS to our endpoint
        call_command("pull_dicomweb", url=orthanc.dicomweb_url, ...)

Remote modalities and DICOMweb servers are set through Orthanc's REST API
(``PUT /modalities/{name}``, ``PUT /dicom-web/servers/{name}``), as an
administrator of a running PACS would, rather than baked into the configuration.

Without Orthanc installed the tests are skipped, except in CI (``CI`` set), where
a missing Orthanc is a failure: CI installs it (``.ci/run``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.processes import free_port, stop

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
HTTP_TIMEOUT = 60.0


class OrthancError(RuntimeError):
    """Orthanc did not start, or answered an API call with an error."""


class Orthanc:
    """One Orthanc process and the REST calls the tests need."""

    def __init__(self, folder: Path, *, aet: str = "ORTHANC") -> None:
        self.folder = folder
        self.aet = aet
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb_url = f"{self.http_url}/dicom-web"
        self.log_path = folder / "orthanc.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()

    def config(self) -> dict[str, Any]:
        return {
            "Name": "hipstudy-test-pacs",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": False,
            # Accept the stores of any AE; remote modalities are added by the tests.
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "DicomModalitiesInDatabase": False,
            "DicomModalities": {},
            "HttpTimeout": 60,
            "StableAge": 1,
            "ConcurrentJobs": 2,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {
                "Enable": True,
                "Root": "/dicom-web/",
                "EnableWado": False,
                "Servers": {},
            },
        }

    def start(self) -> None:
        (self.folder / "storage").mkdir(parents=True, exist_ok=True)
        config_path = self.folder / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        log = self.log_path.open("wb")
        try:
            # --logdir would split the log by date; stdout and stderr into one file are simpler to print.
            self.process = subprocess.Popen(
                [str(ORTHANC), "--verbose", str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise OrthancError(f"Orthanc exited with status {self.process.returncode}:\n{self.log()}")
            try:
                if self.session.get(f"{self.http_url}/system", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise OrthancError(f"Orthanc did not answer /system within {START_TIMEOUT:.0f} s:\n{self.log()}")

    def stop(self) -> None:
        """Kill it: its storage is the test's and thrown away, and a clean shutdown takes 3 s."""
        if self.process is not None:
            stop(self.process, first=signal.SIGKILL, timeout=STOP_TIMEOUT)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"

    # --- REST API -----------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """One REST call; an error answer raises with Orthanc's message."""
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        response = self.session.request(method, f"{self.http_url}{path}", **kwargs)
        if not response.ok:
            raise OrthancError(f"{method} {path}: HTTP {response.status_code}: {response.text[:2000]}")
        if "json" in response.headers.get("Content-Type", ""):
            return response.json()
        return response.content

    def upload(self, data: bytes) -> str:
        """Store one DICOM file (``POST /instances``); returns Orthanc's instance ID."""
        answer = self.api("POST", "/instances", data=data, headers={"Content-Type": "application/dicom"})
        return answer["ID"]

    def instances(self) -> list[str]:
        return self.api("GET", "/instances")

    def add_modality(self, name: str, aet: str, host: str, port: int) -> None:
        """Declare a remote DICOM node (``PUT /modalities/{name}``) that Orthanc may send to."""
        self.api("PUT", f"/modalities/{name}", json={"AET": aet, "Host": host, "Port": port})

    def echo(self, modality: str) -> None:
        """C-ECHO the remote node (``POST /modalities/{name}/echo``)."""
        self.api("POST", f"/modalities/{modality}/echo", json={})

    def store_to(self, modality: str, instance_ids: Iterable[str]) -> Any:
        """C-STORE instances to a remote node, waiting for the end (``POST /modalities/{name}/store``)."""
        body = {"Resources": list(instance_ids), "Synchronous": True}
        return self.api("POST", f"/modalities/{modality}/store", json=body)

    def add_dicomweb_server(self, name: str, url: str, *, headers: dict[str, str] | None = None) -> None:
        """Declare a remote DICOMweb server (``PUT /dicom-web/servers/{name}``).

        Chunked transfers are off: a WSGI server (Django's test server among them)
        cannot read a request body without a Content-Length."""
        body: dict[str, Any] = {"Url": url, "ChunkedTransfers": False}
        if headers:
            body["HttpHeaders"] = headers
        self.api("PUT", f"/dicom-web/servers/{name}", json=body)

    def stow_to(self, server: str, instance_ids: Iterable[str]) -> Any:
        """STOW-RS instances to a remote DICOMweb server, waiting for the end
        (``POST /dicom-web/servers/{name}/stow``)."""
        body = {"Resources": list(instance_ids), "Synchronous": True}
        return self.api("POST", f"/dicom-web/servers/{server}/stow", json=body)


def _skip_or_fail(reason: str) -> None:
    """Skip on a developer's machine; in CI (``CI`` set) a missing Orthanc is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is not skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used Orthanc shows Orthanc's log beside its own output."""
    report = yield
    server = getattr(item, "funcargs", {}).get("orthanc")
    if report.failed and report.when == "call" and isinstance(server, Orthanc):
        report.sections.append((f"Orthanc log ({server.log_path})", server.log()[-20000:]))
    return report


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    if not ORTHANC.exists() or not DICOMWEB_PLUGIN.exists():
        _skip_or_fail(
            f"Orthanc is not installed ({ORTHANC}, {DICOMWEB_PLUGIN}); apt-get install orthanc orthanc-dicomweb"
        )
    folder = tmp_path / "orthanc"
    folder.mkdir()
    server = Orthanc(folder)
    try:
        server.start()  # a failed start raises with Orthanc's log in the message
        yield server
    finally:
        server.stop()
