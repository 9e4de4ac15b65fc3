"""`manage.py deidentify_stored`: radiographs stored before the ingest de-identified them (full
headers, original UIDs in their rows) end as a fresh ingest would store them, and a second run
changes nothing."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pydicom
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from annotate import services
from annotate.archive.pseudonyms import pacs_link_open, uid_pseudonym
from annotate.models import Radiograph, Study
from tests.annotate.helpers import IDENTIFIERS, PRIVATE_VALUE, identifying_dicom, uids_of

pytestmark = pytest.mark.django_db


def stored_the_old_way(received: list[bytes]) -> list[Radiograph]:
    """What an ingest before de-identification left: each file as it came, its own hash for a
    name, the original UIDs in the rows, no sealed link."""
    ids = [services.radiograph_ingest(data=d, name="1", source=Radiograph.Source.CLI).radiograph_id for d in received]
    for pk, data in zip(ids, received, strict=True):
        radiograph = Radiograph.objects.get(pk=pk)
        default_storage.delete(radiograph.original.name)
        sha = hashlib.sha256(data).hexdigest()
        name = default_storage.save(f"originals/{sha[:2]}/{sha}.dcm", ContentFile(data))
        study_uid, series_uid, sop_uid = uids_of(data)
        Study.objects.filter(pk=radiograph.study_id).update(study_instance_uid=study_uid)
        Radiograph.objects.filter(pk=pk).update(
            original=name, sha256=sha, sop_instance_uid=sop_uid, series_instance_uid=series_uid, pacs_link=""
        )
    return list(Radiograph.objects.filter(pk__in=ids).order_by("pk"))


def test_old_radiographs_are_de_identified_in_place_and_the_run_is_idempotent(
    django_capture_on_commit_callbacks,
) -> None:
    received = [identifying_dicom(seed) for seed in (1, 2)]  # one study, two radiographs
    old = stored_the_old_way(received)
    assert Study.objects.count() == 1
    old_files = [r.original.name for r in old]

    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("deidentify_stored", no_progress=True, stdout=out)
    assert out.getvalue().strip().splitlines()[-1] == "de-identified: 2, already de-identified: 0, skipped: 0"

    for data, before in zip(received, old, strict=True):
        radiograph = Radiograph.objects.select_related("study").get(pk=before.pk)
        study_uid, series_uid, sop_uid = uids_of(data)
        assert radiograph.sop_instance_uid == uid_pseudonym(sop_uid)
        assert radiograph.series_instance_uid == uid_pseudonym(series_uid)
        assert radiograph.study.study_instance_uid == uid_pseudonym(study_uid)
        assert pacs_link_open(radiograph.pacs_link)["sop_instance_uid"] == sop_uid
        with default_storage.open(radiograph.original.name) as handle:
            stored = handle.read()
        assert hashlib.sha256(stored).hexdigest() == radiograph.sha256
        for value in [*IDENTIFIERS.values(), PRIVATE_VALUE, sop_uid, study_uid]:
            assert value.encode() not in stored
        np.testing.assert_array_equal(
            pydicom.dcmread(io.BytesIO(stored)).pixel_array, pydicom.dcmread(io.BytesIO(data)).pixel_array
        )
        sha = radiograph.sha256  # its preview is rendered on first view, under the new file's name
        assert radiograph.preview.name == f"previews/{sha[:2]}/{sha}.jpg"
    assert Study.objects.count() == 1
    assert not any(default_storage.exists(name) for name in old_files)

    again = io.StringIO()
    call_command("deidentify_stored", no_progress=True, stdout=again)
    assert again.getvalue().strip().splitlines()[-1] == "de-identified: 0, already de-identified: 2, skipped: 0"
