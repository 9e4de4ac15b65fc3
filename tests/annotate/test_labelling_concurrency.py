"""Two labellers at the same moment, and a double click, on a real PostgreSQL.

Threads with their own database connections, released together by a
barrier, so the row locks (SELECT ... FOR UPDATE SKIP LOCKED) are what keeps
them apart.
"""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import Group
from django.db import connection, connections
from django.test import Client

from annotate import services
from annotate.labelling import services as labelling
from annotate.labelling.services import HipInput
from annotate.labels import Assignment, HipLabel
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")


def run_together(functions):
    barrier = threading.Barrier(len(functions))
    results, errors = [None] * len(functions), []

    def target(index, function):
        try:
            barrier.wait()
            results[index] = function()
        except Exception as exc:  # reported below, with the others
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_labellers_asking_at_once_never_share_a_slot(dicom_bytes):
    for seed in range(3):
        services.radiograph_ingest(data=dicom_bytes(seed=seed), name=f"{seed}.dcm", source="cli")
    group, _ = Group.objects.get_or_create(name="labeler")
    labelers = [UserFactory(username=f"labeler{i}") for i in range(6)]
    for user in labelers:
        user.groups.add(group)
    for _ in range(3):  # several rounds, so the race has many chances
        taken = run_together([lambda u=u: labelling.assignment_next(user=u) for u in labelers])
        ids = [a.id for a in taken if a is not None]
        assert len(ids) == len(set(ids)), "two labellers got the same slot"
        for assignment in taken:
            if assignment is not None:
                labelling.assignment_submit(
                    assignment_id=assignment.id, user=assignment.labeler, excluded="no_hip", hips=[]
                )
    # Every slot went to one labeller, and no labeller read one radiograph twice.
    pairs = list(Assignment.objects.values_list("radiograph_id", "labeler_id"))
    assert all(labeler is not None for _, labeler in pairs)
    assert len(pairs) == len(set(pairs)) == 6


@pytest.mark.django_db(transaction=True)
def test_double_click_on_submit_stores_one_labelling(dicom_bytes, users):
    services.radiograph_ingest(data=dicom_bytes(seed=1), name="1.dcm", source="cli")
    lena = users["labeler"]
    assignment = labelling.assignment_next(user=lena)
    hips = [HipInput("right", "normal", 10, 20, 100, 100)]
    submit = lambda: labelling.assignment_submit(assignment_id=assignment.id, user=lena, hips=hips)  # noqa: E731
    first, second = run_together([submit, submit])
    assert first.submitted_at == second.submitted_at
    assert HipLabel.objects.filter(assignment=assignment).count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_labeller_asking_eight_times_at_once_holds_one_image(dicom_bytes, users):
    """Eight tabs (or a double-clicking script) ask for the next image at the same moment: the
    labeller ends with one image in progress, and every request is answered 200 with that image."""
    for seed in range(8):  # room for eight images each: only the lock keeps lena to one
        services.radiograph_ingest(data=dicom_bytes(seed=seed), name=f"{seed}.dcm", source="cli")
    lena = users["labeler"]
    clients = []
    for _ in range(8):
        client = Client()
        client.force_login(lena)
        clients.append(client)
    for _ in range(3):  # several rounds: take, submit, take again
        answers = run_together([lambda c=c: c.post("/api/labelling/next/") for c in clients])
        assert [answer.status_code for answer in answers] == [200] * 8, [a.content[:200] for a in answers]
        taken = {answer.json()["id"] for answer in answers}
        mine = Assignment.objects.filter(labeler=lena, status=Assignment.Status.IN_PROGRESS)
        assert mine.count() == 1, f"{mine.count()} images in progress"
        assert taken == {mine.get().id}
        labelling.assignment_submit(assignment_id=mine.get().id, user=lena, excluded="no_hip", hips=[])


@pytest.mark.django_db(transaction=True)
def test_the_service_called_at_once_by_one_labeller_gives_one_slot(dicom_bytes, users):
    for seed in range(8):
        services.radiograph_ingest(data=dicom_bytes(seed=seed), name=f"{seed}.dcm", source="cli")
    lena = users["labeler"]
    taken = run_together([lambda: labelling.assignment_next(user=lena)] * 8)
    assert {assignment.id for assignment in taken} == set(
        Assignment.objects.filter(labeler=lena, status=Assignment.Status.IN_PROGRESS).values_list("id", flat=True)
    )
    assert Assignment.objects.filter(labeler=lena).count() == 1
