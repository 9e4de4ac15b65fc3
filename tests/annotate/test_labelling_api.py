"""Labelling and adjudication endpoints: roles, blinding, and the JSON the pages use."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from django.contrib.auth.models import Group

from annotate import services
from annotate.archive.pixels import radiograph_pixels
from annotate.labelling import services as labelling
from annotate.labelling.services import HipInput
from annotate.labels import Adjudication
from annotate.models import Radiograph
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db
ALL = ["researcher", "adjudicator", "labeler", "reader", "norole", "staff"]
HIPS = [{"side": "right", "hip_class": "normal", "x": 10, "y": 20, "width": 100, "height": 100},
        {"side": "left", "hip_class": "orif", "x": 130, "y": 20, "width": 100, "height": 100}]  # fmt: skip


@pytest.fixture
def radiograph(dicom_bytes) -> Radiograph:
    outcome = services.radiograph_ingest(data=dicom_bytes(seed=3), name="x.dcm", source="cli")
    return Radiograph.objects.get(id=outcome.radiograph_id)


@pytest.fixture
def luke(users):
    user = UserFactory(username="luke")
    user.groups.add(Group.objects.get_or_create(name="labeler")[0])
    return user


def put(client, url, body):
    return client.put(url, json.dumps(body), content_type="application/json")


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def test_labeller_flow_through_the_api(client_as, radiograph):
    client = client_as("labeler")
    taken = client.post("/api/labelling/next/").json()
    url = f"/api/labelling/assignments/{taken['id']}/"
    assert taken["radiograph"]["rows"] == radiograph.rows and taken["hips"] == []
    saved = put(client, url, {"hips": HIPS, "note": "draft", "active_seconds": 12}).json()
    assert [h["side"] for h in saved["hips"]] == ["right", "left"]
    # Reload: the same state comes back, hips keep their ids for editing.
    again = client.get(url).json()
    assert again["hips"] == saved["hips"] and again["note"] == "draft"
    edited = [dict(saved["hips"][0], hip_class="fn_nondisplaced"), saved["hips"][1]]
    assert put(client, url, {"hips": edited}).json()["hips"][0]["id"] == saved["hips"][0]["id"]
    submitted = post(client, url + "submit/", {"hips": edited}).json()
    assert submitted["status"] == "submitted" and submitted["next_url"] == "/label/"
    # A submitted image can no longer change.
    late = put(client, url, {"hips": HIPS})
    assert late.status_code == 400 and "already submitted" in late.json()["detail"]


def test_invalid_input_is_a_clear_400(client_as, radiograph):
    client = client_as("labeler")
    taken = client.post("/api/labelling/next/").json()
    url = f"/api/labelling/assignments/{taken['id']}/"
    two_rights = [HIPS[0], dict(HIPS[0], x=50)]
    response = put(client, url, {"hips": two_rights})
    assert response.status_code == 400 and "one hip" in response.json()["detail"]
    response = put(client, url, {"hips": [dict(HIPS[0], hip_class="broken")]})
    assert response.status_code == 400 and "hip_class" in json.dumps(response.json())


def test_blinding_labellers_see_only_their_own_work(client_as, radiograph, luke):
    from django.test import Client

    lena = client_as("labeler")
    mine = lena.post("/api/labelling/next/").json()
    post(lena, f"/api/labelling/assignments/{mine['id']}/submit/", {"hips": HIPS})
    other = Client()
    other.force_login(luke)
    theirs = other.post("/api/labelling/next/").json()
    assert theirs["radiograph"]["id"] == radiograph.id and theirs["hips"] == []
    # Luke cannot open Lena's assignment, nor the adjudication or ground truth.
    assert other.get(f"/api/labelling/assignments/{mine['id']}/").status_code == 403
    assert put(other, f"/api/labelling/assignments/{mine['id']}/", {"hips": []}).status_code == 403
    for url in ["/api/adjudications/", "/api/ground-truth/", "/api/labelling/agreement/"]:
        assert other.get(url).status_code == 403
    assert "orif" not in other.get(f"/api/labelling/assignments/{theirs['id']}/").content.decode()


def test_pixels_for_whom_they_are_assigned(client_as, radiograph, luke):
    from django.test import Client

    assert client_as("labeler").get(f"/api/radiographs/{radiograph.id}/pixels/").status_code == 403
    client_as("labeler").post("/api/labelling/next/")
    response = client_as("labeler").get(f"/api/radiographs/{radiograph.id}/pixels/")
    assert response.status_code == 200 and response["Content-Encoding"] == "gzip"
    raw = gzip.decompress(b"".join(response.streaming_content))
    pixels = np.frombuffer(raw, "<u2").reshape(int(response["X-Rows"]), int(response["X-Columns"]))
    assert np.array_equal(pixels, radiograph_pixels(radiograph))
    for role in ["reader", "norole"]:
        assert client_as(role).get(f"/api/radiographs/{radiograph.id}/pixels/").status_code == 403
    other = Client()
    other.force_login(luke)
    assert other.get(f"/api/radiographs/{radiograph.id}/pixels/").status_code == 403


def test_adjudication_through_the_api(client_as, users, radiograph, luke):
    for user, hips in [(users["labeler"], [HipInput("right", "normal", 10, 20, 100, 100)]),
                       (luke, [HipInput("right", "arthroplasty", 10, 20, 100, 100)])]:  # fmt: skip
        taken = labelling.assignment_next(user=user)
        labelling.assignment_submit(assignment_id=taken.id, user=user, hips=hips)
    adjudication = Adjudication.objects.get()
    client = client_as("adjudicator")
    queue = client.get("/api/adjudications/").json()
    assert [a["id"] for a in queue] == [adjudication.id]
    detail = client.get(f"/api/adjudications/{adjudication.id}/").json()
    assert [ls["labeler"] for ls in detail["labellings"]] == ["lena", "luke"]
    assert detail["disagreements"] == ["right hip: normal / arthroplasty"]
    chosen = detail["labellings"][1]["hips"]
    refused = post(client, f"/api/adjudications/{adjudication.id}/resolve/", {"hips": chosen, "truth_source": ""})
    assert refused.status_code == 400
    body = {"hips": chosen, "truth_source": "postop", "note": "stem seen on follow-up"}
    resolved = post(client, f"/api/adjudications/{adjudication.id}/resolve/", body).json()
    assert resolved["status"] == "resolved" and resolved["truth"]["decided_by"] == "adam"
    truth = client_as("researcher").get("/api/ground-truth/").json()
    assert [(t["side"], t["hip_class"], t["truth_source"]) for t in truth] == [("right", "arthroplasty", "postop")]


ENDPOINTS = {
    ("post", "/api/labelling/next/"): ["labeler", "staff"],
    ("get", "/api/adjudications/"): ["adjudicator", "staff"],
    ("get", "/api/ground-truth/"): ["researcher", "adjudicator", "staff"],
    ("get", "/api/labelling/progress/"): ["researcher", "staff"],
    ("get", "/api/labelling/agreement/"): ["researcher", "adjudicator", "staff"],
}
PAGES = {
    "/label/": ["labeler", "staff"],
    "/adjudicate/": ["adjudicator", "staff"],
    "/labelling/progress/": ["researcher", "staff"],
    "/labelling/agreement/": ["researcher", "adjudicator", "staff"],
}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS), ids=lambda e: e[1])
def test_endpoints_by_role(endpoint, client_as, radiograph):
    method, url = endpoint
    assert getattr(client_as(None), method)(url).status_code == 403
    for role in ALL:
        code = getattr(client_as(role), method)(url).status_code
        assert (code < 400) == (role in ENDPOINTS[endpoint]), (role, url, code)


@pytest.mark.parametrize("url", list(PAGES))
def test_pages_by_role(url, client_as, radiograph):
    assert client_as(None).get(url).status_code == 302
    for role in ALL:
        code = client_as(role).get(url).status_code
        assert (code in (200, 302)) == (role in PAGES[url]), (role, url, code)


def test_assignment_and_adjudication_pages_refuse_others(client_as, users, radiograph, luke):
    taken = labelling.assignment_next(user=users["labeler"])
    assert client_as("labeler").get(f"/label/{taken.id}/").status_code == 200
    from django.test import Client

    other = Client()
    other.force_login(luke)
    assert other.get(f"/label/{taken.id}/").status_code == 404
    for role in ["labeler", "reader", "researcher"]:
        assert client_as(role).get("/adjudicate/1/").status_code == 403
        assert client_as(role).get("/api/adjudications/1/").status_code == 403


def test_export_and_import_through_the_web(client_as, users, radiograph, luke):
    import io

    taken = labelling.assignment_next(user=users["labeler"])
    labelling.assignment_submit(assignment_id=taken.id, user=users["labeler"],
                                hips=[HipInput("right", "orif", 10, 20, 100, 100)])  # fmt: skip
    researcher = client_as("researcher")
    response = researcher.get("/api/annotations/export/?format=coco")
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    coco = json.loads(response.content)
    assert [a["category_id"] for a in coco["annotations"]] == [5]  # orif
    for role in ["labeler", "reader", "adjudicator"]:
        assert client_as(role).get("/api/annotations/export/?format=coco").status_code == 403
    # The same file, loaded as luke's work, makes both labellers agree.
    upload = io.BytesIO(response.content)
    upload.name = "labels.coco.json"
    imported = researcher.post("/api/annotations/import/", {"file": upload, "format": "coco", "as_user": "luke"})
    assert imported.status_code == 200, imported.content
    assert Adjudication.objects.get().status == "agreed"
    broken = io.BytesIO(b'{"images": [}')
    broken.name = "broken.json"
    refused = researcher.post("/api/annotations/import/", {"file": broken, "format": "coco", "as_user": "luke"})
    assert refused.status_code == 400 and "line 1" in refused.json()["detail"]
    assert client_as("researcher").get("/labelling/exchange/").status_code == 200
    assert client_as("labeler").get("/labelling/exchange/").status_code == 403


def test_labeller_sees_the_preview_of_assigned_radiographs_only(client_as, radiograph):
    url = f"/radiographs/{radiograph.id}/preview.jpg"
    assert client_as("labeler").get(url).status_code == 403
    client_as("labeler").post("/api/labelling/next/")
    assert client_as("labeler").get(url).status_code == 200


def test_admin_never_deletes_labels(client_as, users, radiograph):
    taken = labelling.assignment_next(user=users["labeler"])
    labelling.assignment_save(assignment_id=taken.id, user=users["labeler"],
                              hips=[HipInput("right", "normal", 10, 20, 100, 100)])  # fmt: skip
    staff = client_as("staff")
    users["staff"].is_superuser = True
    users["staff"].save()
    hip = taken.hips.get()
    assert staff.get(f"/admin/annotate/hiplabel/{hip.id}/delete/").status_code == 403
    assert staff.get(f"/admin/annotate/hiplabel/{hip.id}/history/").status_code == 200
