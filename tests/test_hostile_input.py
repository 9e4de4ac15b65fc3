"""Hostile and clumsy input (issue 14, items 5 and 7): a 4xx with a reason, never a 500.

Through Django's test client and the real URL configuration: deep JSON to every JSON endpoint
(the anonymous token endpoint too), ids beyond 63 bits, a huge worklist page, a missing
adjudication, predict boxes larger than the image, long and odd upload file names, JSON errors
with DEBUG off, bodies over the anonymous bound (nothing of them read or spooled), and a
property-based sweep that posts generated JSON to every URL under /api/ as each role.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from annotate import services
from annotate.models import ImportJob
from config.parsers import json_depth
from ml.hips import BadBoxes, parse_boxes
from tests.accounts.factories import PASSWORD

HUGE = "9" * 30  # beyond 64 bits
MAX_ID = str(2**63 - 1)


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- JSON depth ------------------------------------------------------------------------------------


def test_json_depth_counts_outside_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[["}]}') == 3
    assert json_depth(b'"\\"[[[["') == 0 and json_depth(deep(5000)) == 5000 and json_depth(b"") == 0


@pytest.mark.django_db
def test_deep_json_to_the_anonymous_token_endpoint_is_a_400(client: Client) -> None:
    response = client.post("/api/token/", deep(3000), content_type="application/json")  # 6 KB: under the body bound
    assert response.status_code == 400
    assert "nested deeper than 64 levels (JSON_MAX_DEPTH)" in response.json()["detail"]
    shallow = client.post("/api/token/", {"username": "x", "password": "y"}, content_type="application/json")
    assert shallow.status_code == 400 and "non_field_errors" in shallow.json()


@pytest.mark.django_db
def test_deep_json_to_an_authenticated_endpoint_is_a_400(client_as: Callable[..., Client]) -> None:
    body = b'{"hips": ' + deep(100_000) + b"}"
    response = client_as("adjudicator").post("/api/adjudications/1/resolve/", body, content_type="application/json")
    assert response.status_code == 400 and "JSON_MAX_DEPTH" in response.json()["detail"]


# --- ids, pages, missing objects -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "url"),
    [
        ("researcher", "/radiographs/{}/preview.jpg"),
        ("researcher", "/radiographs/{}/"),
        ("labeler", "/api/radiographs/{}/pixels/"),
        ("researcher", "/api/radiographs/{}/"),
        ("researcher", "/api/radiographs/{}/preview/"),
        ("researcher", "/api/imports/{}/"),
        ("reader", "/api/reader/studies/{}/current/"),
        ("researcher", "/api/models/{}/"),
        ("researcher", "/studies/{}/"),
    ],
)
def test_ids_beyond_63_bits_are_404(client_as: Callable[..., Client], role: str, url: str) -> None:
    client = client_as(role)
    assert client.get(url.format(HUGE)).status_code == 404
    assert client.get(url.format(MAX_ID)).status_code == 404  # 19 digits: not an id either


@pytest.mark.django_db
@pytest.mark.parametrize("page", [HUGE, "100000001", "0", "-1", "²", "1e3", "9" * 5000])
def test_a_worklist_page_out_of_range_is_a_400(client_as: Callable[..., Client], page: str) -> None:
    response = client_as("researcher").get("/api/worklist/", {"page": page})
    assert response.status_code == 400 and "page must be a whole number from 1 to" in response.json()["detail"]


@pytest.mark.django_db
def test_resolving_a_missing_adjudication_is_a_404(client_as: Callable[..., Client]) -> None:
    body = {"hips": [], "truth_source": "ct", "excluded": "no_hip"}
    response = client_as("adjudicator").post(
        "/api/adjudications/987654/resolve/", body, content_type="application/json"
    )
    assert response.status_code == 404 and response.json()["detail"]


# --- predict boxes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "box",
    [[-9000, -9000, 9100, 9100], [-1e6, -1e6, 2e6, 2e6], [0, 0, 241, 10], [10, 10, 10, 257]],
)
def test_boxes_larger_than_the_image_are_refused(box: list[float]) -> None:
    with pytest.raises(BadBoxes, match="is larger than the 240 x 256 image"):
        parse_boxes(json.dumps([{"side": "right", "box": box}]), rows=256, columns=240)


def test_boxes_within_the_image_or_reaching_past_its_edge_are_taken() -> None:
    hips = parse_boxes([{"side": "left", "box": [-100, -50, 200, 200]}], rows=256, columns=240)
    assert hips[0].box == (-100.0, -50.0, 200.0, 200.0)
    with pytest.raises(BadBoxes, match="nested too deeply"):
        parse_boxes(deep(100_000).decode(), rows=256, columns=240)


@pytest.mark.django_db
def test_predict_with_a_box_larger_than_the_image_is_a_4xx(client_as: Callable[..., Client], dicom_bytes: Any) -> None:
    upload = io.BytesIO(dicom_bytes())
    upload.name = "x.dcm"
    boxes = json.dumps([{"side": "right", "box": [-9000, -9000, 9100, 9100]}])
    response = client_as("researcher").post("/api/predict/", {"file": upload, "boxes": boxes})
    assert 400 <= response.status_code < 500 and response.json()["detail"]


# --- file names ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_long_and_odd_upload_file_names_are_imported(
    client_as: Callable[..., Client], dicom_bytes: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # Built by hand, as a browser sends it: the name as raw UTF-8 (Django's test client would
    # percent-encode it past the multipart parser's 1 KB bound on a part's headers).
    names = ["é" * 200 + ".dcm", "骨" * 200, "tab\tand\x7fdel.dcm", "../../up.dcm", "a" * 300 + ".dcm"]
    boundary = "names-boundary"
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'.encode()
            + b"Content-Type: application/dicom\r\n\r\n"
            + dicom_bytes(seed=seed)
            + b"\r\n"
            for seed, name in enumerate(names)
        )
        + f"--{boundary}--\r\n".encode()
    )
    with django_capture_on_commit_callbacks(execute=False):
        response = client_as("researcher").post(
            "/api/imports/", body, content_type=f"multipart/form-data; boundary={boundary}"
        )
    assert response.status_code == 202, response.content
    job = ImportJob.objects.get()
    services.import_job_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == "done", job.error
    assert job.counts() == {"imported": len(names), "present": 0, "rejected": 0}


# --- JSON errors with DEBUG off --------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.urls("tests.hostile_urls")
def test_api_errors_are_json_with_debug_off(settings: Any, users: Any) -> None:
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.force_login(users["researcher"])
    failed = client.get("/api/test-fails/")
    assert failed.status_code == 500 and failed["Content-Type"] == "application/json"
    assert "Server error" in failed.json()["detail"]
    missing = client.get("/api/no-such-endpoint/")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and not page["Content-Type"].startswith("application/json")


# --- bounded anonymous bodies ----------------------------------------------------------------------


def _through_the_site(path: str, body: bytes, content_type: str) -> tuple[int, bytes, int]:
    """POST through Django's whole WSGI handler and middleware; (status, content, body bytes read)."""
    stream = io.BytesIO(body)
    environ = RequestFactory()._base_environ(
        PATH_INFO=path,
        REQUEST_METHOD="POST",
        CONTENT_TYPE=content_type,
        CONTENT_LENGTH=str(len(body)),
        **{"wsgi.input": stream},
    )
    answer: list[str] = []
    chunks = WSGIHandler()(environ, lambda status, headers: answer.append(status))
    content = b"".join(chunks)
    return int(answer[0].split()[0]), content, stream.tell()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/api/token/", "/accounts/login/", "/accounts/password_reset/"])
def test_anonymous_endpoints_refuse_large_bodies_unread(path: str, settings: Any, tmp_path: Any) -> None:
    # Uploads would be spooled to FILE_UPLOAD_TEMP_DIR past 1 KB; the folder does not exist, so any
    # attempt to write there fails the request: the 413 shows that nothing was written.
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "no-such-folder")
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    boundary = "anon-bound"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="username"\r\n\r\nalice\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b"x" * (4 * 1024**2)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, content, read = _through_the_site(path, body, f"multipart/form-data; boundary={boundary}")
    assert status == 413 and b"ANONYMOUS_BODY_MAX_BYTES" in content
    assert read == 0  # not a byte of the body was read
    if path.startswith("/api/"):
        assert json.loads(content)["detail"].startswith("the request body is over 8192 bytes")


@pytest.mark.django_db(transaction=True)
def test_small_bodies_still_reach_the_token_endpoint(users: Any) -> None:
    body = json.dumps({"username": "alice", "password": PASSWORD}).encode()
    status, content, read = _through_the_site("/api/token/", body, "application/json")
    assert status == 200 and json.loads(content)["token"] and read == len(body)


# --- property-based: generated JSON to every URL under /api/, as each role -------------------------


def _api_patterns(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _api_patterns(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and route.startswith("api/"):
            yield route


def _concrete(route: str) -> str:
    """A request path for a route: ids 1, names "x"; DRF's regex routes made plain."""
    import re

    path = re.sub(r"<id:\w+>", "1", route)
    path = re.sub(r"<str:\w+>", "x", path)
    path = re.sub(r"\(\?P<pk>[^)]*\)", "1", path)
    path = re.sub(r"\(\?P<format>[^)]*\)", "json", path)
    path = path.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")
    return "/" + path


API_PATHS = sorted(
    {_concrete(route) for route in _api_patterns(get_resolver().url_patterns)} - {"/api/dicomweb/studies"}
)
ROLES = [None, "researcher", "adjudicator", "labeler", "reader", "staff"]
FIELDS = ["hips", "side", "box", "x", "y", "width", "height", "hip_class", "truth_source", "excluded", "note",
          "username", "password", "dataset", "config", "seed", "model", "page", "answers", "probability",
          "condition", "files", "active_seconds", "source", "format"]  # fmt: skip
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


def test_the_sweep_covers_the_api() -> None:
    assert len(API_PATHS) > 30 and "/api/token/" in API_PATHS and "/api/labelling/next/" in API_PATHS


@pytest.mark.django_db
@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    path=st.sampled_from(API_PATHS),
    role=st.sampled_from(ROLES),
    body=json_values,
    method=st.sampled_from(["post", "put", "patch"]),
)
def test_generated_json_to_every_api_endpoint_is_never_a_5xx(
    client_as: Callable[..., Client], path: str, role: str | None, body: Any, method: str
) -> None:
    client = client_as(role)
    data = json.dumps(body, allow_nan=True)
    response = getattr(client, method)(path, data, content_type="application/json")
    assert response.status_code < 500, (path, role, data[:200], response.content[:300])
