"""annotate.labelling.exchange and its commands: exports, imports as a labeller, the demo's labels."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from pycocotools.coco import COCO

from annotate.archive.pseudonyms import uid_pseudonym
from annotate.labelling import exchange
from annotate.labelling import services as labelling
from annotate.labelling.formats import FormatError
from annotate.labelling.services import HipInput
from annotate.labels import Adjudication, Assignment, GroundTruthHip, HipLabel
from annotate.models import Radiograph
from devtools.phantoms import generate_phantoms
from tests.annotate.helpers import labeller, submit

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
THIRD = 1 / 3  # as in the labelled fixture (tests/conftest.py)
IDENTIFIERS = ("MRN00", "TESTPERSON", "VERYSPECIFIC", "ACC9988", "19410203", "Saint Specific")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # seed 9, 3 studies: three AP films and one cross-table lateral (~2 s)
    out = tmp_path_factory.mktemp("phantoms")
    generate_phantoms(out, studies=3, seed=9)
    return out


def _forget_labels() -> None:
    """A database holding the same radiographs and no labels (as a fresh one would)."""
    GroundTruthHip.objects.all().delete()
    Adjudication.objects.all().delete()
    HipLabel.objects.all().delete()
    Assignment.objects.update(
        labeler=None, status="open", taken_at=None, last_saved_at=None, submitted_at=None, excluded="",
        active_seconds=0,
    )  # fmt: skip


def _boxes(data: bytes) -> dict:
    """sop uid -> (exclusion, sorted (labeler, side, class, bbox)) of a COCO export."""
    document = json.loads(data)
    classes = {c["id"]: c["name"] for c in document["categories"]}
    result = {
        image["sop_instance_uid"]: [image.get("exclude", ""), image.get("excluded_by", {}), []]
        for image in document["images"]
    }
    uid = {image["id"]: image["sop_instance_uid"] for image in document["images"]}
    for a in document["annotations"]:
        result[uid[a["image_id"]]][2].append(
            (a["attributes"].get("labeler"), a["attributes"]["side"], classes[a["category_id"]], a["bbox"])
        )
    return {key: (exclude, by, sorted(hips)) for key, (exclude, by, hips) in result.items()}


def _state() -> tuple:
    """Everything an import may write."""
    return (
        list(Assignment.objects.values_list("id", "labeler_id", "status", "excluded")),
        HipLabel.history.count(), Adjudication.objects.count(), GroundTruthHip.objects.count(),
        Assignment.history.count(),
    )  # fmt: skip


# --- Exports ------------------------------------------------------------------------------------


def test_coco_exports_load_in_pycocotools(labelled, tmp_path) -> None:
    everyone = exchange.annotations_export(fmt="coco", ground_truth=False)
    truth = exchange.annotations_export(fmt="coco", ground_truth=True)
    assert everyone.content_type == "application/json" and everyone.filename.endswith(".coco.json")
    assert "ground-truth" in truth.filename
    for export in (everyone, truth):
        (tmp_path / export.filename).write_bytes(export.data)
        api = COCO(str(tmp_path / export.filename))
        assert len(api.getCatIds()) == 6
    api = COCO(str(tmp_path / truth.filename))
    r0, _, r2, _ = labelled
    assert sorted(api.getImgIds()) == [r0.id, r2.id]  # only decided radiographs
    image = api.imgs[r0.id]
    assert image["file_name"] == f"{r0.sop_instance_uid}.dcm" and image["sop_instance_uid"] == r0.sop_instance_uid
    assert (image["width"], image["height"], image["truth_source"]) == (240, 256, "agreement")
    assert image["patient"] == r0.study.patient.code and image["accession"] == r0.study.accession_code
    right = next(a for a in api.loadAnns(api.getAnnIds(imgIds=[r0.id])) if a["attributes"]["side"] == "right")
    assert right["bbox"][0] == (10 + THIRD + 12.2) / 2  # the mean box, full precision
    assert api.imgs[r2.id]["exclude"] == "cross_table_lateral" and not api.getAnnIds(imgIds=[r2.id])
    # every labeller's: submitted labellings only, each hip with its labeller
    assert (everyone.images, everyone.hips) == (4, 7)
    api = COCO(str(tmp_path / everyone.filename))
    assert {a["attributes"]["labeler"] for a in api.loadAnns(api.getAnnIds(imgIds=[r0.id]))} == {"lena", "luke"}
    assert api.imgs[r2.id]["excluded_by"] == {"lena": "cross_table_lateral", "luke": "cross_table_lateral"}


def test_exports_hold_pseudonyms_never_identifiers(labelled) -> None:
    codes = {r.study.patient.code for r in labelled} | {r.study.accession_code for r in labelled}
    for fmt in exchange.EXPORT_FORMATS:
        for ground_truth in (False, True):
            text = exchange.annotations_export(fmt=fmt, ground_truth=ground_truth).data.decode()
            assert not [word for word in IDENTIFIERS if word in text], (fmt, ground_truth)
            assert any(code in text for code in codes)


def test_csv_export_rows(labelled) -> None:
    r0, r1, r2, r3 = labelled
    export = exchange.annotations_export(fmt="csv", ground_truth=False)
    assert export.content_type.startswith("text/csv") and export.filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(export.data.decode())))
    assert [(int(r["radiograph_id"]), r["labeler"], r["side"], r["class"], r["excluded"]) for r in rows] == [
        (r0.id, "lena", "left", "normal", ""), (r0.id, "lena", "right", "fn_displaced", ""),
        (r0.id, "luke", "left", "normal", ""), (r0.id, "luke", "right", "fn_displaced", ""),
        (r1.id, "lena", "right", "orif", ""), (r1.id, "luke", "right", "normal", ""),
        (r2.id, "lena", "", "", "cross_table_lateral"), (r2.id, "luke", "", "", "cross_table_lateral"),
        (r3.id, "lena", "left", "arthroplasty", ""),
    ]  # fmt: skip
    assert float(rows[1]["x"]) == 10 + THIRD and float(rows[1]["height"]) == 90 + THIRD
    assert rows[0]["sop_instance_uid"] == r0.sop_instance_uid and rows[0]["patient"].startswith("P-")
    truth = list(csv.DictReader(io.StringIO(exchange.annotations_export(fmt="csv", ground_truth=True).data.decode())))
    assert [(r["labeler"], r["side"], r["excluded"], r["truth_source"]) for r in truth] == [
        ("ground_truth", "left", "", "agreement"), ("ground_truth", "right", "", "agreement"),
        ("ground_truth", "", "cross_table_lateral", "agreement"),
    ]  # fmt: skip


def test_export_command_writes_the_file(labelled, tmp_path) -> None:
    out = io.StringIO()
    call_command("export_annotations", "--format", "via", "--out", str(tmp_path / "x.json"), "--ground-truth",
                 stdout=out)  # fmt: skip
    assert out.getvalue().strip() == f"wrote ground truth of 2 radiographs (2 hips) to {tmp_path / 'x.json'}"
    assert "_via_img_metadata" in json.loads((tmp_path / "x.json").read_text())
    with pytest.raises(CommandError, match="is a folder"):
        call_command("export_annotations", "--format", "csv", "--out", str(tmp_path))


# --- Round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["coco", "via"])
def test_ground_truth_round_trips_exactly(labelled, lena, luke, fmt) -> None:
    first = exchange.annotations_export(fmt=fmt, ground_truth=True).data
    first_coco = exchange.annotations_export(fmt="coco", ground_truth=True).data
    _forget_labels()
    for user in (lena, luke):
        report = exchange.annotations_import(fmt=fmt, data=first, username=user.username)
        assert (report.matched, report.submitted, report.hips, report.excluded) == (2, 2, 2, 1)
    assert report.agreed == 2
    again = exchange.annotations_export(fmt=fmt, ground_truth=True).data
    assert again == first  # same radiographs here, so even the ids agree
    assert _boxes(exchange.annotations_export(fmt="coco", ground_truth=True).data) == _boxes(first_coco)


@pytest.mark.parametrize("fmt", ["coco", "via"])
def test_every_labellers_labels_round_trip_one_labeller_at_a_time(labelled, lena, luke, fmt) -> None:
    first = exchange.annotations_export(fmt=fmt, ground_truth=False).data
    _forget_labels()
    lenas = exchange.annotations_import(fmt=fmt, data=first, username="lena", labeler="lena")
    assert (lenas.submitted, lenas.hips, lenas.excluded, lenas.without_labels) == (4, 4, 1, 0)
    lukes = exchange.annotations_import(fmt=fmt, data=first, username="luke", labeler="luke")
    assert (lukes.submitted, lukes.without_labels, lukes.agreed, lukes.to_adjudicate) == (3, 1, 2, 1)
    assert exchange.annotations_export(fmt=fmt, ground_truth=False).data == first


def test_a_file_of_several_labellers_needs_one_chosen(labelled, lena) -> None:
    data = exchange.annotations_export(fmt="coco", ground_truth=False).data
    _forget_labels()
    with pytest.raises(FormatError, match=r"annotations\[2\]: a second left hip .*--labeler"):
        exchange.annotations_import(fmt="coco", data=data, username="lena")


# --- Imports ------------------------------------------------------------------------------------


def _coco_of(radiographs, hips_by_index, excluded=None) -> dict:
    excluded = excluded or {}
    document = {
        "images": [
            {"id": i + 1, "file_name": f"{r.sop_instance_uid}.dcm", "width": r.columns, "height": r.rows,
             "sop_instance_uid": r.sop_instance_uid, **({"exclude": excluded[i]} if i in excluded else {})}
            for i, r in enumerate(radiographs)
        ],
        "categories": [{"id": 1, "name": "normal"}, {"id": 2, "name": "orif"}],
        "annotations": [],
    }  # fmt: skip
    for i, hips in hips_by_index.items():
        for side, category, bbox in hips:
            annotation = {"image_id": i + 1, "category_id": category, "bbox": list(bbox), "attributes": {"side": side}}
            document["annotations"].append({"id": len(document["annotations"]) + 1, **annotation})
    return document


GOOD = {0: [("right", 1, [10, 10, 50, 60]), ("left", 2, [120, 10, 50, 60])], 1: [("left", 1, [100, 100, 40, 40])]}


def _bad(document_change):
    def make(radiographs):
        document = _coco_of(radiographs, GOOD, excluded={2: "no_hip"})
        document_change(document)
        return json.dumps(document)

    return make


BAD_FILES = [
    # found by the database checks, after the first image was seen to be fine
    (_bad(lambda d: d["annotations"][2]["bbox"].__setitem__(0, 230)), "annotations[2]: the left hip's box reaches "
     "outside the image"),
    (_bad(lambda d: d["annotations"][1]["attributes"].update(side="right")), "annotations[1]: a second right hip "
     "(first at annotations[0])"),
    (_bad(lambda d: d["annotations"][2].update(image_id=3)), "annotations[2]: the image is excluded (no_hip)"),
    (_bad(lambda d: d["images"][1].update(width=2000)), "images[1]: image is 2000x256 but radiograph"),
    (_bad(lambda d: d["annotations"][2]["bbox"].__setitem__(3, 0.5)), "annotations[2]: a box must be at least"),
    (_bad(lambda d: d["images"][2].update(sop_instance_uid=d["images"][0]["sop_instance_uid"])),
     "images[2]: a second entry for radiograph"),
    # found by the parser
    (_bad(lambda d: d["annotations"][2].update(bbox=[1, 2, 3])), "annotations[2].bbox: expected 4 numbers"),
    (lambda radiographs: json.dumps(_coco_of(radiographs, GOOD))[:-30], "JSON syntax error at line 1, column"),
]  # fmt: skip


@pytest.mark.parametrize("make, message", BAD_FILES)
def test_a_malformed_file_is_refused_whole(radiographs, lena, make, message) -> None:
    before = _state()
    with pytest.raises(FormatError) as caught:
        exchange.annotations_import(fmt="coco", data=make(radiographs).encode(), username="lena")
    assert str(caught.value).startswith(message), str(caught.value)
    assert _state() == before


def test_the_command_refuses_a_malformed_file_and_imports_nothing(radiographs, lena, tmp_path) -> None:
    path = tmp_path / "bad.via.json"
    path.write_text('{"_via_img_metadata": {"a.png1": {"filename": "a.png", "regions": [{"shape_attributes": '
                    '{"name": "polygon"}}]}}}')  # fmt: skip
    with pytest.raises(CommandError) as caught:
        call_command("import_annotations", str(path), "--format", "via", "--as", "lena")
    assert str(caught.value) == (
        f'{path}: _via_img_metadata["a.png1"].regions[0].shape_attributes.name: expected "rect" (hips are boxes), '
        'got "polygon"; nothing imported'
    )
    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("import_annotations", str(path), "--format", "via", "--as", "nobody")


def test_import_refuses_users_who_are_not_labellers(radiographs, users) -> None:
    data = json.dumps(_coco_of(radiographs, GOOD)).encode()
    with pytest.raises(ValueError, match="not a labeller"):
        exchange.annotations_import(fmt="coco", data=data, username="rita")
    with pytest.raises(ValueError, match="cannot import 'csv'"):
        exchange.annotations_import(fmt="csv", data=data, username="lena")


def test_import_matches_by_uid_then_file_name_and_lists_the_rest(radiographs, lena) -> None:
    r0, r1, r2, r3 = radiographs
    metadata = {
        "a": {"filename": "whatever.png", "size": 1, "file_attributes": {"sop_instance_uid": r0.sop_instance_uid}},
        "b": {"filename": f"{r1.sop_instance_uid}.png", "size": 1},
        "c": {"filename": f"originals/{r2.sha256}.dcm", "size": 1},
        "d": {"filename": "p00001/s00001/1.dcm", "size": 1},
        "e": {"filename": "other.png", "size": 1, "file_attributes": {"sop_instance_uid": "1.2.3.999"}},
    }
    for entry in metadata.values():
        entry["regions"] = [{"shape_attributes": {"name": "rect", "x": 1, "y": 1, "width": 30, "height": 30},
                             "region_attributes": {"class": "normal", "side": "right"}}]  # fmt: skip
    report = exchange.annotations_import(fmt="via", data=json.dumps(metadata).encode(), username="lena")
    assert (report.images, report.matched, report.submitted) == (5, 3, 3)
    assert report.unmatched == ["p00001/s00001/1.dcm", "other.png"]
    assert set(Assignment.objects.filter(labeler=lena, status="submitted").values_list("radiograph", flat=True)) == {
        r0.id, r1.id, r2.id
    }  # fmt: skip
    assert set(HipLabel.objects.values_list("source", flat=True)) == {"import"}


def test_import_takes_a_free_slot_replaces_a_draft_and_skips_full_radiographs(radiographs, lena, luke) -> None:
    r0, r1, *_ = radiographs
    other = labeller("otto")
    submit(luke, r0, [HipInput("right", "normal", 10, 10, 50, 60)])
    submit(other, r0, [HipInput("right", "normal", 10, 10, 50, 60)])  # r0: both slots taken
    draft = Assignment.objects.filter(radiograph=r1).first()
    draft.labeler, draft.status = lena, "in_progress"
    draft.save()
    labelling.assignment_save(assignment_id=draft.id, user=lena, hips=[HipInput("left", "orif", 1, 1, 20, 20)])
    report = exchange.annotations_import(fmt="coco", data=json.dumps(_coco_of([r0, r1], GOOD)).encode(),
                                         username="lena")  # fmt: skip
    assert report.no_free_slot == [f"{r0.sop_instance_uid}.dcm"] and report.submitted == 1
    draft.refresh_from_db()
    assert draft.status == "submitted"
    live = draft.hips.filter(removed_at__isnull=True)
    assert [(h.side, h.hip_class, h.source) for h in live] == [("left", "normal", "import")]
    assert draft.hips.filter(removed_at__isnull=False, source="manual").count() == 1


# --- The phantoms: the demo's path ----------------------------------------------------------------


def _import_phantoms(phantoms: Path) -> None:
    call_command("import_dicom", str(phantoms), "--no-progress", stdout=io.StringIO())


def test_phantom_truth_as_two_labellers_agrees_and_excludes_the_laterals(phantoms, lena, luke) -> None:
    _import_phantoms(phantoms)
    path = phantoms / "annotations.coco.json"
    truth = json.loads(path.read_text())
    lines = []
    for username in ("lena", "luke"):
        out = io.StringIO()
        call_command("import_annotations", str(path), "--format", "coco", "--as", username, stdout=out)
        lines.append(out.getvalue().strip())
    assert lines[1] == (
        "images: 4, matched: 4, submitted: 4 (6 hips, 1 excluded), already submitted: 0, without labels: 0, "
        "no free slot: 0, unmatched: 0; agreed: 4, to adjudicate: 0"
    )
    by_uid = {r.sop_instance_uid: r for r in Radiograph.objects.all()}
    for image in truth["images"]:
        adjudication = by_uid[uid_pseudonym(image["sop_instance_uid"])].adjudication
        assert adjudication.status == "agreed"
        assert adjudication.excluded == image.get("exclude", "")
        expected = sorted(
            (a["attributes"]["side"], a["category_id"], a["bbox"]) for a in truth["annotations"]
            if a["image_id"] == image["id"]
        )  # fmt: skip
        hips = GroundTruthHip.objects.filter(adjudication=adjudication)
        assert sorted((h.side, h.hip_class, list(h.box)) for h in hips) == [
            (side, truth["categories"][c - 1]["name"], bbox) for side, c, bbox in expected
        ]
    # the same file again changes nothing
    before = _state()
    out = io.StringIO()
    call_command("import_annotations", str(path), "--format", "coco", "--as", "lena", stdout=out)
    assert "submitted: 0 (0 hips, 0 excluded), already submitted: 4" in out.getvalue()
    assert _state() == before
    # and the exports show none of the phantoms' patient IDs or accession numbers
    for fmt in exchange.EXPORT_FORMATS:
        text = exchange.annotations_export(fmt=fmt, ground_truth=False).data.decode()
        assert all(image["patient"] not in text and image["accession"] not in text for image in truth["images"])


def _demo_labels():
    spec = importlib.util.spec_from_file_location("demo_labels", ROOT / "scripts" / "demo_labels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # seed 9, 7 studies: nine films, one a cross-table lateral, of patients with spare films, so
    # that three disagreements can be planted where agreement remains (tests/test_demo.py)
    out = tmp_path_factory.mktemp("demo-phantoms")
    generate_phantoms(out, studies=7, seed=9)
    return out


def test_demo_labels_plant_disagreements_and_leave_work(demo_phantoms, settings) -> None:
    phantoms = demo_phantoms
    demo = _demo_labels()
    _import_phantoms(phantoms)
    settings.DEBUG = True  # as the demo runs (create_demo_users refuses otherwise)
    call_command("create_demo_users", stdout=io.StringIO())
    result = demo.seed_demo_labels(phantoms, disagreements=3, seed=0)
    kinds = [note.split(" hip ", 1)[1] for note in result["planted"]]
    assert kinds[0] == "dropped" and kinds[1] == "box shifted (IoU 0.25)" and " -> " in kinds[2]
    assert result["labeler1"].submitted == 8 and result["labeler2"].to_adjudicate == 3
    pending = Adjudication.objects.filter(status="pending")
    reasons = " ".join(" ".join(a.disagreements) for a in pending)
    assert pending.count() == 3 and "labelled by one labeller only" in reasons and "IoU" in reasons
    assert " / " in reasons  # a changed class
    unlabelled = Radiograph.objects.exclude(assignments__labeler__isnull=False)
    assert unlabelled.count() == 1  # the last image is left for the labellers
    assert Assignment.objects.filter(labeler__username="labeler1", status="in_progress").count() == 0
    # deterministic, and a second run changes nothing
    before = _state()
    again = demo.seed_demo_labels(phantoms, disagreements=3, seed=0)
    assert again["planted"] == result["planted"] and again["labeler2"].already_submitted == 8
    assert _state() == before
