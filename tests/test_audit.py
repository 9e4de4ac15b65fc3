"""The access log: who viewed which radiograph and which reader-study case, and nothing else.

What is logged (annotate.audit): authenticated requests to the URLs of its table that were
answered (< 400) or refused with 403/404; not anonymous ones, not pages outside the table.
Rows are append-only: read-only in the admin, and on PostgreSQL the database refuses
UPDATE and DELETE.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from accounts.tokens import token_create
from annotate.audit import AccessLog
from common.audit import audited_urls
from tests.readerstudy.helpers import study_with_model

pytestmark = pytest.mark.django_db


def test_a_researcher_viewing_a_radiograph_leaves_one_row_per_request(client_as, users, radiograph):
    client = client_as("researcher")
    assert client.get("/", HTTP_USER_AGENT="Firefox/140").status_code == 200  # not patient data: not logged
    assert client.get("/radiographs/").status_code == 200  # the list: not in the table
    assert not AccessLog.objects.exists()

    response = client.get(f"/radiographs/{radiograph.pk}/", HTTP_USER_AGENT="Firefox/140 " + "x" * 400)
    assert response.status_code == 200
    row = AccessLog.objects.get()
    assert (row.user_id, row.username, row.action, row.object_type, row.object_id) == (
        users["researcher"].pk, "alice", "view", "radiograph", str(radiograph.pk),
    )  # fmt: skip
    assert (row.url_name, row.method, row.status_code, row.ip_address) == ("radiograph_detail", "GET", 200, "127.0.0.1")
    assert row.user_agent.startswith("Firefox/140") and len(row.user_agent) == 200
    assert timezone.now() - row.created_at < dt.timedelta(minutes=1)

    assert client.get(f"/api/radiographs/{radiograph.pk}/pixels/").status_code == 200
    pixels = AccessLog.objects.latest("id")
    assert (pixels.url_name, pixels.object_type, pixels.object_id) == (
        "radiograph-pixels",
        "radiograph",
        str(radiograph.pk),
    )
    assert AccessLog.objects.count() == 2


def test_exports_are_logged_with_their_query(client_as):
    assert client_as("researcher").get("/api/ground-truth/?format=csv").status_code == 200
    row = AccessLog.objects.get()
    assert (row.action, row.object_type, row.query, row.username) == ("export", "ground_truth", "format=csv", "alice")


def test_a_token_client_is_logged_under_its_account(users, radiograph, client):
    _, token = token_create(user=users["adjudicator"])
    response = client.get(f"/api/radiographs/{radiograph.pk}/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    row = AccessLog.objects.get()
    assert (row.username, row.url_name, row.object_id) == ("adam", "radiograph-detail", str(radiograph.pk))


def test_anonymous_requests_are_not_logged_and_refusals_are(client_as, radiograph):
    anonymous = client_as(None).get(f"/radiographs/{radiograph.pk}/")
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    assert not AccessLog.objects.exists()

    # A labeller trying a radiograph's page is refused, and the attempt is kept.
    assert client_as("labeler").get(f"/radiographs/{radiograph.pk}/").status_code == 403
    refused = AccessLog.objects.get()
    assert (refused.username, refused.object_id, refused.status_code) == ("lena", str(radiograph.pk), 403)
    # So is a reader asking the pixels API for it, and an id that does not exist.
    assert client_as("reader").get(f"/api/radiographs/{radiograph.pk}/pixels/").status_code == 403
    assert client_as("researcher").get(f"/radiographs/{radiograph.pk + 1000}/").status_code == 404
    assert list(AccessLog.objects.order_by("id").values_list("username", "status_code")) == [
        ("lena", 403), ("rita", 403), ("alice", 404),
    ]  # fmt: skip


def test_a_reader_fetching_a_case_leaves_a_reader_case_row(dicom_bytes, tiny_bundle, data_dir, users, client_as):
    from readerstudy import services as study_services

    study = study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=2, radiographs=24, patients=18)
    study_services.reader_add(study=study, user=users["reader"], group="resident", training="emergency_resident")
    client = client_as("reader")

    response = client.get(f"/api/reader/studies/{study.pk}/current/")
    assert response.status_code == 200, response.content
    case_id = response.json()["case"]["id"]
    row = AccessLog.objects.get()
    assert (row.username, row.action, row.object_type, row.object_id, row.url_name) == (
        "rita", "view", "reader_case", str(case_id), "reader-current",
    )  # fmt: skip

    assert client.get(f"/api/reader/cases/{case_id}/crop.png").status_code == 200
    crop = AccessLog.objects.latest("id")
    assert (crop.object_type, crop.object_id, crop.url_name) == ("reader_case", str(case_id), "reader-case-crop")

    condition = response.json()["case"]["condition"]
    answered = client.post(
        f"/api/reader/studies/{study.pk}/answers/",
        {"case": case_id, "condition": condition, "answer": "normal"},
        content_type="application/json",
    )
    assert answered.status_code == 201, answered.content
    answer = AccessLog.objects.latest("id")
    assert (answer.action, answer.object_type, answer.object_id, answer.method) == (
        "change", "reader_case", str(case_id), "POST",
    )  # fmt: skip
    # Another user asking for that case's crop is refused, and logged as refused.
    assert client_as("researcher").get(f"/api/reader/cases/{case_id}/crop.png").status_code in (403, 404)
    assert AccessLog.objects.latest("id").username == "alice"


def test_the_admin_shows_the_log_read_only(client, users, radiograph, django_user_model):
    auditor = django_user_model.objects.create_superuser("auditor", password="x-long-password-1")
    client.force_login(auditor)
    client.get(f"/radiographs/{radiograph.pk}/")
    row = AccessLog.objects.get()

    assert client.get("/admin/annotate/accesslog/").status_code == 200
    assert client.get(f"/admin/annotate/accesslog/{row.pk}/change/").status_code == 200  # viewable
    assert client.post(f"/admin/annotate/accesslog/{row.pk}/change/", {"username": "someone"}).status_code == 403
    assert client.get(f"/admin/annotate/accesslog/{row.pk}/delete/").status_code == 403
    assert client.post(f"/admin/annotate/accesslog/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/annotate/accesslog/add/").status_code == 403
    bulk = client.post("/admin/annotate/accesslog/", {"action": "delete_selected", "_selected_action": [row.pk]})
    assert bulk.status_code in (200, 302)
    row.refresh_from_db()
    assert row.username == "auditor" and AccessLog.objects.filter(pk=row.pk).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the append-only trigger is PostgreSQL's")
def test_the_database_refuses_to_change_or_delete_a_row(client_as, radiograph):
    client_as("researcher").get(f"/radiographs/{radiograph.pk}/")
    row = AccessLog.objects.get()
    for change in (lambda: AccessLog.objects.filter(pk=row.pk).update(username="x"), row.delete):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            change()
    assert AccessLog.objects.get(pk=row.pk).username == "alice"


def test_audit_export_writes_csv_filtered_and_logs_itself(client_as, radiograph, tmp_path):
    client_as("researcher").get(f"/radiographs/{radiograph.pk}/")
    client_as("adjudicator").get(f"/radiographs/{radiograph.pk}/preview.jpg")
    AccessLog.objects.create(
        created_at=timezone.now() - dt.timedelta(days=40), username="old", action="view", object_type="radiograph",
        object_id="1", url_name="radiograph_detail", method="GET", status_code=200,
    )  # fmt: skip
    since = (timezone.now() - dt.timedelta(days=1)).date().isoformat()

    out = tmp_path / "access.csv"
    call_command("audit_export", "--since", since, "--out", str(out), "--no-progress", stderr=io.StringIO())
    rows = list(csv.DictReader(out.open()))
    assert [(r["username"], r["url_name"], r["object_id"]) for r in rows] == [
        ("alice", "radiograph_detail", str(radiograph.pk)), ("adam", "radiograph_preview", str(radiograph.pk)),
    ]  # fmt: skip
    assert rows[0]["ip_address"] == "127.0.0.1" and rows[0]["status_code"] == "200"

    call_command("audit_export", "--since", since, "--user", "adam", "--out", str(out), "--no-progress")
    assert [r["username"] for r in csv.DictReader(out.open())] == ["adam"]
    exports = AccessLog.objects.filter(object_type="access_log")
    assert exports.count() == 2 and exports.first().username.startswith("cli:")

    with pytest.raises(Exception, match="not a date"):
        call_command("audit_export", "--since", "last tuesday", "--out", str(out))


def test_every_audited_url_name_exists():
    from django.urls import NoReverseMatch, reverse

    for name in audited_urls():
        try:
            reverse(name)
        except NoReverseMatch as exc:
            # Present, but needs arguments (an unknown name says "not a valid view function").
            assert "not a valid view function or pattern name" not in str(exc), name
