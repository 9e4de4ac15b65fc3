"""annotate.labelling.formats: COCO, VIA 2 and CSV, pure Python (no database)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO

from annotate.labelling import formats
from annotate.labelling.formats import FormatError, Hip, Image, coco, tabular, via
from annotate.labels import CLASSES, Exclusion, HipClass, Side

UID = "1.2.826.0.1.3680043.8.498.12345"
THIRD = 1 / 3  # floats that only survive with full precision
TENTH = 0.1 + 0.2

IMAGES = [
    Image(
        sop_instance_uid=UID,
        file_name=f"{UID}.dcm",
        width=240,
        height=256,
        file_size=12345,
        radiograph_id=7,
        patient="P-0123456789",
        accession="A-9876543210",
        hips=(
            Hip("right", "fn_displaced", 10 + THIRD, 20.5, 100 + TENTH, 90.25, labeler="lena"),
            Hip("left", "normal", 130.0, 21.0, 99.0, 88.0, labeler="lena"),
            Hip("right", "fn_displaced", 11.0, 20.0, 100.0, 90.0, labeler="luke"),
        ),
        excluded_by={},
    ),
    Image(
        sop_instance_uid="1.2.3.4",
        file_name="1.2.3.4.dcm",
        width=300,
        height=200,
        file_size=999,
        radiograph_id=8,
        patient="P-aaaaaaaaaa",
        accession="A-bbbbbbbbbb",
        excluded_by={"lena": "cross_table_lateral", "luke": "cross_table_lateral"},
    ),
]


def _key(image: Image) -> tuple:
    return (
        image.sop_instance_uid, image.file_name, image.width, image.height, image.exclude, dict(image.excluded_by),
        [(h.side, h.hip_class, h.x, h.y, h.width, h.height, h.labeler) for h in image.hips],
    )  # fmt: skip


def test_vocabulary_matches_the_models() -> None:
    assert formats.CLASSES == CLASSES
    assert formats.CLASS_NAMES == {value: str(label) for value, label in HipClass.choices}
    assert set(formats.SIDES) == set(Side.values)
    assert set(formats.EXCLUSIONS) == set(Exclusion.values)


@pytest.mark.parametrize("module", [coco, via])
def test_write_then_parse_gives_back_every_hip_exactly(module) -> None:
    parsed = module.parse(module.write(IMAGES).encode())
    assert [_key(image) for image in parsed] == [_key(image) for image in IMAGES]
    assert parsed[0].hips[0].x == 10 + THIRD and parsed[0].hips[0].width == 100 + TENTH


def test_coco_export_loads_in_pycocotools(tmp_path: Path) -> None:
    path = tmp_path / "labels.coco.json"
    path.write_text(coco.write(IMAGES))
    api = COCO(str(path))
    assert sorted(api.getImgIds()) == [7, 8]
    assert [c["name"] for c in api.loadCats(api.getCatIds())] == list(CLASSES)
    annotations = api.loadAnns(api.getAnnIds(imgIds=[7]))
    assert [a["bbox"] for a in annotations][0] == [10 + THIRD, 20.5, 100 + TENTH, 90.25]
    assert annotations[0]["attributes"] == {
        "side": "right", "patient": "P-0123456789", "accession": "A-9876543210", "labeler": "lena"
    }  # fmt: skip
    assert api.imgs[7]["file_name"] == f"{UID}.dcm" and api.imgs[7]["sop_instance_uid"] == UID
    assert api.imgs[8]["excluded_by"] == {"lena": "cross_table_lateral", "luke": "cross_table_lateral"}


def test_coco_reads_the_phantoms_file_layout() -> None:
    document = {
        "info": {}, "licenses": [],
        "categories": [{"id": i + 1, "name": name, "supercategory": "hip"} for i, name in enumerate(CLASSES)],
        "images": [
            {"id": 1, "file_name": "p00001/s00001/1.dcm", "width": 2000, "height": 1800, "sop_instance_uid": UID,
             "patient": "MRN1", "accession": "A1", "view": "ap", "scanner": "x"},
            {"id": 2, "file_name": "p00001/s00001/2.dcm", "width": 1500, "height": 1500, "sop_instance_uid": "1.2",
             "exclude": "cross_table_lateral"},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 5, "bbox": [1, 2, 300, 400], "area": 120000.0, "iscrowd": 0,
             "attributes": {"side": "left", "patient": "MRN1", "accession": "A1", "subtype": ""}},
        ],
    }  # fmt: skip
    first, second = coco.parse(json.dumps(document))
    assert first.hips == (Hip("left", "orif", 1.0, 2.0, 300.0, 400.0, where="annotations[0]"),)
    assert (first.width, first.height, first.exclude) == (2000, 1800, "")
    assert second.exclude == "cross_table_lateral" and second.hips == ()


def _coco_doc() -> dict:
    return json.loads(coco.write(IMAGES))


def _broken(change) -> str:
    document = _coco_doc()
    change(document)
    return json.dumps(document, indent=1)


COCO_BROKEN = [
    (lambda d: d["annotations"][1].update(bbox=[1, 2, 3]), "annotations[1].bbox: expected 4 numbers"),
    (lambda d: d["annotations"][2]["bbox"].__setitem__(2, "wide"), "annotations[2].bbox[2]: expected a number"),
    (lambda d: d["annotations"][0]["bbox"].__setitem__(0, True), "annotations[0].bbox[0]: expected a number"),
    (lambda d: d["annotations"][0].update(category_id=99), "annotations[0].category_id: no category has id 99"),
    (lambda d: d["categories"][1].update(name="fracture"), "annotations[0].category_id: category 'fracture'"),
    (lambda d: d["annotations"][1]["attributes"].pop("side"), "annotations[1].attributes.side: missing"),
    (lambda d: d["annotations"][1]["attributes"].update(side="middle"), "annotations[1].attributes.side: expected"),
    (lambda d: d["annotations"][2].update(image_id=42), "annotations[2].image_id: no image has id 42"),
    (lambda d: d["annotations"][2].update(attributes=[]), "annotations[2].attributes: expected an object"),
    (lambda d: d["images"][1].update(id=7), "images[1].id: 7 is used twice"),
    (lambda d: d["images"][1].update(exclude="blurry"), "images[1].exclude: expected one of"),
    (lambda d: d["images"][1].update(width=-3), "images[1].width: expected a positive whole number"),
    (lambda d: d["images"][0].update(sop_instance_uid="", file_name=""), "images[0]: needs a sop_instance_uid"),
    (lambda d: d["images"][1]["excluded_by"].update(lena="bored"), "images[1].excluded_by.lena: expected one of"),
    (lambda d: d.pop("annotations"), "annotations: missing"),
    (lambda d: d.update(images={}), "images: expected a list"),
]


@pytest.mark.parametrize("change, message", COCO_BROKEN)
def test_coco_refuses_a_malformed_file_naming_the_key(change, message) -> None:
    with pytest.raises(FormatError) as caught:
        coco.parse(_broken(change))
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_json_syntax_error_names_line_and_column() -> None:
    text = coco.write(IMAGES)
    lines = text.splitlines()
    lines[5] = lines[5] + ","  # a trailing comma before the next key
    with pytest.raises(FormatError, match=r"JSON syntax error at line \d+, column \d+"):
        coco.parse("\n".join(lines))
    with pytest.raises(FormatError, match="line 1, column 1"):
        via.parse(b"")
    with pytest.raises(FormatError, match="top level: expected an object"):
        coco.parse(b"[1, 2]")
    with pytest.raises(FormatError, match="not UTF-8"):
        coco.parse(b'{"images": "\xff"}')


def test_via_project_has_the_vgg_layout() -> None:
    document = json.loads(via.write(IMAGES))
    assert set(document) >= {"_via_settings", "_via_img_metadata", "_via_attributes", "_via_data_format_version"}
    key = f"{UID}.dcm12345"
    entry = document["_via_img_metadata"][key]
    assert document["_via_image_id_list"][0] == key
    assert entry["filename"] == f"{UID}.dcm" and entry["size"] == 12345
    assert entry["regions"][0] == {
        "shape_attributes": {"name": "rect", "x": 10 + THIRD, "y": 20.5, "width": 100 + TENTH, "height": 90.25},
        "region_attributes": {"class": "fn_displaced", "side": "right", "labeler": "lena"},
    }
    assert entry["file_attributes"]["sop_instance_uid"] == UID
    region = document["_via_attributes"]["region"]
    assert region["class"]["type"] == "dropdown" and list(region["class"]["options"]) == list(CLASSES)
    assert region["side"]["type"] == "radio" and set(region["side"]["options"]) == {"right", "left"}
    assert set(document["_via_attributes"]["file"]["exclude"]["options"]) == set(formats.EXCLUSIONS)


def test_via_reads_a_bare_export_checkboxes_and_old_region_dicts() -> None:
    bare = {
        "x.png100": {
            "filename": "scan.png", "size": 100, "file_attributes": [],
            "regions": {"0": {"shape_attributes": {"name": "rect", "x": 1, "y": 2, "width": 30, "height": 40},
                              "region_attributes": {"class": {"orif": True}, "side": "left"}}},
        }
    }  # fmt: skip
    (image,) = via.parse(json.dumps(bare))
    assert image.hips == (Hip("left", "orif", 1.0, 2.0, 30.0, 40.0, where='["x.png100"].regions[0]'),)


def _region(m: dict, i: int, part: str) -> dict:
    return m["regions"][i][f"{part}_attributes"]


VIA_BROKEN = [
    (lambda m: _region(m, 0, "shape").update(name="polygon"), 'regions[0].shape_attributes.name: expected "rect"'),
    (lambda m: _region(m, 1, "region").update({"class": "broken"}), "regions[1].region_attributes.class: expected"),
    (lambda m: _region(m, 1, "region").pop("side"), "regions[1].region_attributes.side: missing"),
    (lambda m: _region(m, 0, "shape").pop("width"), "regions[0].shape_attributes.width: expected a number"),
    (lambda m: _region(m, 0, "region").update(side={"left": True, "right": True}), "side: more than one ticked"),
    (lambda m: m.update(size="big"), ".size: expected a whole number"),
    (lambda m: m.update(filename=""), ".filename: expected a non-empty string"),
    (lambda m: m["file_attributes"].update(exclude="later"), ".file_attributes.exclude: expected one of"),
    (lambda m: m["file_attributes"].update(width="wide"), ".file_attributes.width: expected a positive"),
]  # fmt: skip


@pytest.mark.parametrize("change, message", VIA_BROKEN)
def test_via_refuses_a_malformed_file_naming_the_key(change, message) -> None:
    document = json.loads(via.write(IMAGES))
    change(document["_via_img_metadata"][f"{UID}.dcm12345"])
    with pytest.raises(FormatError) as caught:
        via.parse(json.dumps(document))
    assert str(caught.value).startswith(f'_via_img_metadata["{UID}.dcm12345"]'), str(caught.value)
    assert message in str(caught.value)
    with pytest.raises(FormatError, match="_via_img_metadata: missing"):
        via.parse(json.dumps({"_via_settings": {}}))


def test_matching_keys_prefer_the_uid_then_the_file_name() -> None:
    assert Image(sop_instance_uid=UID, file_name="1.2.3.dcm").matching_keys() == (UID, "")
    assert Image(file_name=f"some/folder/{UID}.dcm").matching_keys() == (UID, "")
    assert Image(file_name=f"{UID}.PNG").matching_keys() == (UID, "")
    sha = "ab" * 32
    assert Image(file_name=f"originals/ab/{sha}.dcm").matching_keys() == ("", sha)
    assert Image(file_name="p00001/s00001/1.dcm").matching_keys() == ("", "")


def test_csv_has_one_row_per_hip_and_per_exclusion() -> None:
    rows = list(csv.DictReader(io.StringIO(tabular.write(IMAGES, ground_truth=False))))
    assert list(rows[0]) == list(tabular.COLUMNS)
    assert len(rows) == 5
    first = rows[0]
    assert (first["radiograph_id"], first["sop_instance_uid"], first["patient"], first["accession"]) == (
        "7", UID, "P-0123456789", "A-9876543210"
    )  # fmt: skip
    assert (first["labeler"], first["side"], first["class"], first["excluded"]) == ("lena", "right", "fn_displaced", "")
    assert float(first["x"]) == 10 + THIRD and float(first["width"]) == 100 + TENTH
    assert [(r["labeler"], r["excluded"], r["x"]) for r in rows[3:]] == [
        ("lena", "cross_table_lateral", ""), ("luke", "cross_table_lateral", "")
    ]  # fmt: skip
    truth = Image(sop_instance_uid="1.2", exclude="no_hip", truth_source="consensus")
    (row,) = csv.DictReader(io.StringIO(tabular.write([truth], ground_truth=True)))
    assert (row["labeler"], row["excluded"], row["truth_source"]) == ("ground_truth", "no_hip", "consensus")


def test_csv_keeps_usernames_from_becoming_formulas() -> None:
    image = Image(sop_instance_uid="1.2", hips=(Hip("left", "normal", 1, 2, 3, 4, labeler="@SUM"),))
    assert "'@SUM" in tabular.write([image], ground_truth=False)
