"""Every URL of the site, as an anonymous visitor and as each role, against an explicit table.

The URL conf is walked (``django.urls.get_resolver()``, recursively; the whole ``admin/``
namespace is one entry, staff only). Each URL is built with real object ids (a radiograph
assigned to lena, an adjudication, a dataset, a model version, a training run, a prediction,
a reader study with rita as its reader, a report, an import job) and requested with GET, or
with POST and an empty body where the URL takes POST only: a role without access must be
refused before its input is validated. The answer is compared with ``PERMISSIONS``:

- ``ok``: answered (2xx, a redirect not to a login page, or a 4xx that is about the input or
  the object: 400, 404, 405, 409, 415...; never 401/403, never 5xx);
- ``login``: sent to a login page, or 401/403 for an anonymous visitor;
- ``forbidden``: 403 or 404.

A URL name missing from the table fails with "add it to the permission table".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from devtools.dicom import make_dicom
from tests.accounts.factories import UserFactory
from tests.annotate.factories import ImportJobFactory
from tests.ml.factories import HipPredictionFactory, TrainingRunFactory
from tests.readerstudy.factories import StudyReportFactory
from tests.support import ROLE_USERS

ROLES = ("anonymous", *ROLE_USERS)  # anonymous, researcher, adjudicator, labeler, reader, norole, staff
LOGGED_IN = tuple(ROLE_USERS)


@dataclass(frozen=True)
class Rule:
    expected: dict[str, str]
    method: str = "GET"
    # URL parameter -> the object of ``world`` (or a literal, for names) it is filled with.
    kwargs: dict[str, str] = field(default_factory=dict)


def allow(*roles: str, anonymous: str = "login", method: str = "GET", **kwargs: str) -> Rule:
    """``roles`` (and staff, who hold every role) get ``ok``, every other role ``forbidden``."""
    expected = {"anonymous": anonymous}
    for role in LOGGED_IN:
        expected[role] = "ok" if role in roles or role == "staff" else "forbidden"
    return Rule(expected, method, kwargs)


def everyone(anonymous: str = "ok", method: str = "GET", logged_in: str = "ok", **kwargs: str) -> Rule:
    return Rule({"anonymous": anonymous, **dict.fromkeys(LOGGED_IN, logged_in)}, method, kwargs)


def readers_of_the_study(method: str = "GET", reader: str = "ok", **kwargs: str) -> Rule:
    """Reader-study API: only a reader of that study, staff included (staff read no study)."""
    return Rule({"anonymous": "login", **dict.fromkeys(LOGGED_IN, "forbidden"), "reader": reader}, method, kwargs)


def assigned_labeller_only(method: str = "GET", **kwargs: str) -> Rule:
    """Labelling is blind: lena's assignment is hers alone, staff included."""
    return Rule({"anonymous": "login", **dict.fromkeys(LOGGED_IN, "forbidden"), "labeler": "ok"}, method, kwargs)


RESEARCHER, ADJUDICATOR, LABELER, READER = "researcher", "adjudicator", "labeler", "reader"
RID = {"pk": "radiograph"}

PERMISSIONS: dict[str, Rule] = {
    # Site, accounts, admin.
    "home": everyone(anonymous="login"),
    "health": everyone(),  # for load balancers: service state, no patient data
    "health-live": everyone(),
    "login": everyone(),
    "logout": everyone(method="POST", anonymous="login", logged_in="login"),  # logs out, then the login page
    "password_change": everyone(anonymous="login"),
    "password_change_done": everyone(anonymous="login"),
    "password_reset": everyone(),
    "password_reset_done": everyone(),
    "password_reset_confirm": everyone(uidb64="MQ", token="set-password"),
    "password_reset_complete": everyone(),
    "account_tokens": everyone(anonymous="login"),  # each user's own API tokens
    "account_token_revoke": everyone(method="POST", anonymous="login"),  # 400 without a token's key
    "admin": Rule({"anonymous": "login", **dict.fromkeys(LOGGED_IN, "login"), "staff": "ok"}),
    # The archive.
    "radiograph_list": allow(RESEARCHER, ADJUDICATOR),
    "radiograph_detail": allow(RESEARCHER, ADJUDICATOR, **RID),
    "radiograph_preview": allow(RESEARCHER, ADJUDICATOR, LABELER, **RID),  # lena: assigned to her
    "radiograph-pixels": allow(RESEARCHER, ADJUDICATOR, LABELER, **RID),
    "radiograph-list": allow(RESEARCHER, ADJUDICATOR),
    "radiograph-detail": allow(RESEARCHER, ADJUDICATOR, **RID),
    "radiograph-preview": allow(RESEARCHER, ADJUDICATOR, **RID),
    "import_list": allow(RESEARCHER),
    "import_detail": allow(RESEARCHER, pk="import_job"),
    "import-list": allow(RESEARCHER),
    "import-detail": allow(RESEARCHER, pk="import_job"),
    "dicomweb-stow": allow(RESEARCHER, method="POST"),
    "api-root": everyone(anonymous="login"),  # the API's index: links only
    "api_token": everyone(method="POST"),  # credentials are its input (400 without them)
    "api_schema": everyone(),
    "api_docs": everyone(),
    # Labelling and adjudication.
    "label_start": allow(LABELER),
    "label_page": assigned_labeller_only(pk="assignment"),
    "labelling-next": allow(LABELER, method="POST"),
    "assignment-detail": assigned_labeller_only(pk="assignment"),
    "assignment-submit": assigned_labeller_only(method="POST", pk="assignment"),
    "adjudication_queue": allow(ADJUDICATOR),
    "adjudicate_page": allow(ADJUDICATOR, pk="adjudication"),
    "adjudication-list": allow(ADJUDICATOR),
    "adjudication-detail": allow(ADJUDICATOR, pk="adjudication"),
    "adjudication-resolve": allow(ADJUDICATOR, method="POST", pk="adjudication"),
    "labelling_progress": allow(RESEARCHER),
    "labelling-progress": allow(RESEARCHER),
    "labelling_agreement": allow(RESEARCHER, ADJUDICATOR),
    "labelling-agreement": allow(RESEARCHER, ADJUDICATOR),
    "ground-truth": allow(RESEARCHER, ADJUDICATOR),
    "annotations-export": allow(RESEARCHER),
    "annotations-import": allow(RESEARCHER, method="POST"),
    "labelling_exchange": allow(RESEARCHER),
    # Models, datasets, the worklist, operations.
    "model_list": allow(RESEARCHER),
    "run_detail": allow(RESEARCHER, pk="training_run"),
    "run_cancel": allow(RESEARCHER, method="POST", pk="training_run"),
    "model_detail": allow(RESEARCHER, pk="model_version"),
    "model_activate": allow(RESEARCHER, method="POST", pk="model_version"),
    "radiograph_predictions": allow(RESEARCHER, **RID),
    "dataset_list": allow(RESEARCHER),
    "dataset_detail": allow(RESEARCHER, pk="dataset"),
    "dataset_flow_svg": allow(RESEARCHER, pk="dataset"),
    "dataset_flow_png": allow(RESEARCHER, pk="dataset"),
    "worklist": allow(RESEARCHER),
    "dataset-list": allow(RESEARCHER),
    "dataset-detail": allow(RESEARCHER, pk="dataset"),
    "dataset-hips-csv": allow(RESEARCHER, pk="dataset"),
    "training-run-list": allow(RESEARCHER),
    "training-run-detail": allow(RESEARCHER, pk="training_run"),
    "training-run-cancel": allow(RESEARCHER, method="POST", pk="training_run"),
    "model-list": allow(RESEARCHER),
    "model-detail": allow(RESEARCHER, pk="model_version"),
    "model-activate": allow(RESEARCHER, method="POST", pk="model_version"),
    "model-file": allow(RESEARCHER, pk="model_version", name="metrics.json"),
    "radiograph-predictions": allow(RESEARCHER, **RID),
    "prediction-heatmap": allow(RESEARCHER, pk="prediction"),
    "predict": allow(RESEARCHER, method="POST"),
    "worklist-api": allow(RESEARCHER),
    "ops": allow(RESEARCHER),
    "ops-api": allow(RESEARCHER),
    "results-download": allow(RESEARCHER, kind="sr", **RID),
    "results-send": allow(RESEARCHER, method="POST", **RID),
    "results-sendings": allow(RESEARCHER),
    # Reader studies: the researchers' side.
    "study_list": allow(RESEARCHER),
    "study_detail": allow(RESEARCHER, pk="study"),
    "study_add_reader": allow(RESEARCHER, method="POST", pk="study"),
    "study_export_file": allow(RESEARCHER, pk="study", name="responses.csv"),
    "study_report_start": allow(RESEARCHER, method="POST", pk="study"),
    "study_report_detail": allow(RESEARCHER, pk="study", report_pk="report"),
    "study_report_file": allow(RESEARCHER, pk="study", report_pk="report", name="summary.json"),
    "study-progress": allow(RESEARCHER, pk="study"),
    "study-report": allow(RESEARCHER, pk="study", report_pk="report"),
    "study_power_start": allow(RESEARCHER, method="POST", pk="study"),
    "study_power_detail": allow(RESEARCHER, pk="study", plan="0123456789ab"),
    "study_power_json": allow(RESEARCHER, pk="study", plan="0123456789ab"),
    "study_power_file": allow(RESEARCHER, pk="study", plan="0123456789ab", name="power.csv"),
    # Reader studies: the readers' side (rita reads the study; in phase 1 only crops are shown).
    "reader_home": allow(READER),
    "reading_page": allow(READER, pk="study"),
    "reader-studies": everyone(anonymous="login"),  # each user's own studies (none but rita's)
    "reader-current": readers_of_the_study(pk="study"),
    "reader-answer": readers_of_the_study(method="POST", pk="study"),
    "reader-case-crop": readers_of_the_study(pk="case"),
    "reader-case-pixels": readers_of_the_study(pk="case", reader="forbidden"),  # not in phase 1
    "reader-case-heatmap": readers_of_the_study(pk="case", reader="forbidden"),  # phase 3 only
}

# Pages that show radiographs, ground truth, labels or models: a reader never reaches them.
READER_NEVER = (
    "radiograph", "import", "label", "assignment", "adjudicat", "ground-truth", "annotations", "model", "run",
    "training-run", "dataset", "prediction", "predict", "worklist", "study_", "study-", "dicomweb", "ops",
)  # fmt: skip


def url_entries() -> list[tuple[str, str]]:
    """(id, url name) of every pattern: named patterns once each, DRF's format-suffix variants
    as ``name.json``; the admin as one entry."""
    entries: dict[str, str] = {}

    def walk(resolver: URLResolver) -> None:
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin":
                    entries["admin"] = "admin"
                else:
                    walk(pattern)
            elif isinstance(pattern, URLPattern):
                name = pattern.name or f"<unnamed {pattern.pattern}>"
                suffixed = "format" in pattern.pattern.regex.groupindex
                entries[f"{name}.json" if suffixed else name] = name

    walk(get_resolver())
    return sorted(entries.items())


ENTRIES = url_entries()


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tiny_bundle, tmp_path_factory):
    """One of everything, made once for the module and committed (each test then runs in its
    own transaction, rolled back); the database is flushed at the end."""
    from annotate.labels import Adjudication, Assignment
    from ml.models import DatasetVersion, HipPrediction, ModelVersion, TrainingRun
    from readerstudy import services as study_services
    from tests.readerstudy.helpers import study_with_model

    data = tmp_path_factory.mktemp("permissions-data")
    with django_db_blocker.unblock(), override_settings(DATA_DIR=data, MEDIA_ROOT=str(data / "media")):
        try:
            users = {}
            for role, (username, groups, staff) in ROLE_USERS.items():
                user = UserFactory(username=username, is_staff=staff)
                user.groups.set([Group.objects.get_or_create(name=group)[0] for group in groups])
                users[role] = user
            study = study_with_model(make_dicom, tiny_bundle, data, cases=2, radiographs=24, patients=18)
            reader = study_services.reader_add(
                study=study, user=users["reader"], group="resident", training="emergency_resident"
            )
            _, shown = study_services.case_show(
                reader=reader, ignore_washout=True
            )  # rita's first case is on her screen
            model_version = ModelVersion.objects.get()
            dataset = DatasetVersion.objects.get()
            assignment = Assignment.objects.order_by("id").first()
            Assignment.objects.filter(pk=assignment.pk).update(
                labeler=users["labeler"], status=Assignment.Status.IN_PROGRESS, taken_at=timezone.now()
            )
            radiograph = assignment.radiograph
            prediction = HipPrediction.objects.filter(radiograph=radiograph).first() or HipPredictionFactory(
                model_version=model_version, radiograph=radiograph
            )
            run = TrainingRunFactory(
                config_name="tiny", dataset=dataset, status=TrainingRun.Status.FAILED, created_by=users["researcher"]
            )
            report = StudyReportFactory(study=study, created_by=users["researcher"])
            job = ImportJobFactory(created_by=users["researcher"], folder="imports/none")
            objects = {
                "radiograph": radiograph.pk, "assignment": assignment.pk,
                "adjudication": Adjudication.objects.order_by("id").first().pk, "dataset": dataset.pk,
                "model_version": model_version.pk, "training_run": run.pk, "prediction": prediction.pk,
                "study": study.pk, "case": shown.pk, "report": report.pk,
                "import_job": job.pk,
            }  # fmt: skip
            yield {"users": users, "objects": objects, "data": data}
        finally:
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def data_dir(world, settings):
    """The module's data folder instead of conftest's empty one per test: files must be found."""
    settings.DATA_DIR = world["data"]
    settings.MEDIA_ROOT = str(world["data"] / "media")
    return world["data"]


def build_url(entry: str, name: str, world: dict[str, Any]) -> str:
    if name == "admin":
        return reverse("admin:index")
    rule = PERMISSIONS[name]
    kwargs = {param: world["objects"].get(value, value) for param, value in rule.kwargs.items()}
    if entry.endswith(".json"):
        kwargs["format"] = "json"
    return reverse(name, kwargs=kwargs)


LOGIN_PAGES = ("/accounts/login/", "/admin/login/")


def classify(response: Any, anonymous: bool) -> str:
    status = response.status_code
    location = response.get("Location", "")
    if 300 <= status < 400 and any(page in location for page in LOGIN_PAGES):
        return "login"
    if status == 401 or (status == 403 and anonymous):
        return "login"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "not found"
    if status == 503:
        return "unavailable"  # answered: e.g. /health/ without workers, or the queue is down
    if status >= 500:
        return "server error"
    return "ok"


ACCEPTED = {"ok": {"ok", "not found", "unavailable"}, "forbidden": {"forbidden", "not found"}, "login": {"login"}}


def test_every_url_is_in_the_permission_table():
    missing = sorted({name for _, name in ENTRIES} - set(PERMISSIONS))
    assert not missing, f"URL names without an expected access: {missing}; add it to the permission table"
    stale = sorted(set(PERMISSIONS) - {name for _, name in ENTRIES})
    assert not stale, f"the permission table names URLs that no longer exist: {stale}"


def test_readers_never_reach_radiographs_ground_truth_labelling_or_models():
    for name, rule in PERMISSIONS.items():
        if name.startswith(READER_NEVER) and not name.startswith(("reader", "reading")):
            assert rule.expected["reader"] != "ok", name
    assert all(rule.expected["norole"] != "ok" for name, rule in PERMISSIONS.items() if name.startswith(READER_NEVER))


def cases() -> list[Any]:
    return [pytest.param(entry, name, role, id=f"{entry}-{role}") for entry, name in ENTRIES for role in ROLES]


@pytest.mark.django_db
@pytest.mark.parametrize("entry,name,role", cases())
def test_url_answers_each_role_as_the_table_says(entry, name, role, world, data_dir):
    rule = PERMISSIONS.get(name)
    assert rule is not None, f"{name} ({entry}) has no expected access; add it to the permission table"
    url = build_url(entry, name, world)
    client = Client()
    if role != "anonymous":
        client.force_login(world["users"][role])
    if rule.method == "POST":
        response = client.post(url, {})
    else:
        response = client.get(url)
    got = classify(response, anonymous=role == "anonymous")
    expected = rule.expected[role]
    detail = response.content[:300] if got == "server error" or got not in ACCEPTED[expected] else b""
    assert got in ACCEPTED[expected], (
        f"{rule.method} {url} as {role}: {response.status_code} {response.get('Location', '')} "
        f"is {got!r}, the table says {expected!r} {detail!r}"
    )
