"""The demo's reader study: made as soon as the demo's classifier is active.

    python scripts/demo_study.py [--wait-minutes 60] [--poll-seconds 15]

Started by scripts/demo.py in the background once the training is queued. Waits (quietly) until a
classifier is active, then, idempotently (each step skipped when already done):
1. creates the study ``demo-study``: min(100, test hips) cases from the test split of the dataset the
   classifier was trained on, a 1-minute washout so a visitor can go through all three phases;
2. invites ten demo readers of every group and training (accounts made with the demo password)
   and simulates their answers, so the statistics report has data;
3. invites the demo account ``reader1`` (resident, emergency_resident), left unanswered for a person.
Uses the management commands (create_reader_study, add_reader, simulate_readers).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDY = "demo-study"
WASHOUT_DAYS = 1 / (24 * 60)  # one minute
DEMO_PASSWORD = "demo-password"  # create_demo_users' default, which scripts/demo.py uses
# (username, group, training): two readers per training so the report's margin has pairs.
SIMULATED = (
    ("ortho_attending1", "expert", "orthopedics_attending"),
    ("ortho_attending2", "expert", "orthopedics_attending"),
    ("radio_attending1", "expert", "radiology_attending"),
    ("radio_attending2", "expert", "radiology_attending"),
    ("ortho_resident1", "resident", "orthopedics_resident"),
    ("ortho_resident2", "resident", "orthopedics_resident"),
    ("radio_resident1", "resident", "radiology_resident"),
    ("radio_resident2", "resident", "radiology_resident"),
    ("emerg_resident1", "resident", "emergency_resident"),
    ("emerg_resident2", "resident", "emergency_resident"),
)
PERSON = ("reader1", "resident", "emergency_resident")  # made by manage.py create_demo_users


def _command(name: str, *args: str) -> str:
    from django.core.management import call_command

    out = StringIO()
    call_command(name, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def wait_for_classifier(wait_minutes: float, poll_seconds: float):  # type: ignore[no-untyped-def]
    """The active classifier, once there is one; None after ``wait_minutes``."""
    from django.db import close_old_connections

    from ml.models import Kind, ModelVersion

    deadline = time.monotonic() + wait_minutes * 60
    while True:
        model = ModelVersion.objects.filter(kind=Kind.CLASSIFIER, is_active=True).first()
        if model is not None or time.monotonic() >= deadline:
            return model
        time.sleep(poll_seconds)
        close_old_connections()  # an hour of polling: do not hold on to a dropped connection


def make_demo_study(model) -> str:  # type: ignore[no-untyped-def]
    """Create, populate and simulate the demo study (each step only if not done); a one-line summary."""
    from django.contrib.auth import get_user_model

    from ml.models import DatasetHip, Split
    from readerstudy.models import ReaderStudy

    study = ReaderStudy.objects.filter(name=STUDY).first()
    if study is None:
        tests = DatasetHip.objects.filter(dataset_id=model.dataset_id, split=Split.TEST).count()
        _command(
            "create_reader_study", "--name", STUDY, "--cases", str(min(100, tests)), "--seed", "2020",
            "--dataset", str(model.dataset_id), "--washout-days", repr(WASHOUT_DAYS), "--model", str(model.pk),
            "--description", "The demo's study: simulated readers, and reader1 for you to try.", "--no-progress",
        )  # fmt: skip
        study = ReaderStudy.objects.get(name=STUDY)
    elif study.status != ReaderStudy.Status.OPEN:  # a run stopped while freezing: finish it
        from readerstudy import services

        study = services.study_prepare(study_id=study.pk)
    invited = set(study.readers.values_list("user__username", flat=True))
    User = get_user_model()
    for username, group, training in SIMULATED:
        if username not in invited:
            create = (
                () if User.objects.filter(username=username).exists() else ("--create", "--password", DEMO_PASSWORD)
            )
            _command("add_reader", "--study", STUDY, "--user", username, "--group", group, "--training", training,
                     *create)  # fmt: skip
    users = [arg for username, _, _ in SIMULATED for arg in ("--user", username)]
    _command("simulate_readers", "--study", STUDY, "--seed", "2020", *users)
    username, group, training = PERSON
    if username not in invited and User.objects.filter(username=username).exists():
        _command("add_reader", "--study", STUDY, "--user", username, "--group", group, "--training", training)
    return (
        f"Reader study {STUDY} is ready: {study.case_count} cases, {len(SIMULATED)} simulated readers; "
        f"log in as {username} / {DEMO_PASSWORD} to read it (1-minute washout)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait-minutes", type=float, default=60.0, help="how long to wait for a classifier")
    parser.add_argument("--poll-seconds", type=float, default=15.0)
    args = parser.parse_args(argv)

    # The same environment as scripts/demo.py. DATA_DIR is left to the settings (the environment,
    # then the .env that make demo wrote, then ./var), so that a run by hand finds the demo's data.
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import CommandError

    model = wait_for_classifier(args.wait_minutes, args.poll_seconds)
    if model is None:
        print(f"demo study: no classifier became active in {args.wait_minutes:g} minutes; not made.", file=sys.stderr)
        return 1
    try:
        print(make_demo_study(model), flush=True)
    except CommandError as exc:
        print(f"demo study: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the demo stopped before the classifier was ready
        sys.exit(130)
