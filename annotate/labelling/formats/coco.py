"""COCO object-detection JSON, as ``devtools.phantoms`` writes and pycocotools reads.

One category per class (CLASSES order), one image per radiograph (named by its SOP Instance UID,
with pseudonyms and exclusions), one annotation per hip with its side and labeller in
``attributes``. Reads the same, and the phantoms' file.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from annotate.labelling.formats import (
    CLASSES,
    EXCLUSIONS,
    SIDES,
    FormatError,
    Hip,
    Image,
    describe,
    dumps,
    expect_choice,
    expect_excluded_by,
    expect_list,
    expect_number,
    expect_object,
    expect_size,
    expect_str,
    load_json,
)

CONTENT_TYPE = "application/json"
SUFFIX = ".coco.json"


def to_document(images: Sequence[Image], *, description: str = "Hip labels") -> dict[str, Any]:
    category_ids = {name: index + 1 for index, name in enumerate(CLASSES)}
    document: dict[str, Any] = {
        "info": {"description": description, "version": "1"},
        "licenses": [],
        "categories": [{"id": category_ids[name], "name": name, "supercategory": "hip"} for name in CLASSES],
        "images": [],
        "annotations": [],
    }
    for index, image in enumerate(images):
        image_id = image.radiograph_id if image.radiograph_id is not None else index + 1
        entry: dict[str, Any] = {
            "id": image_id,
            "file_name": image.file_name,
            "width": image.width,
            "height": image.height,
            "sop_instance_uid": image.sop_instance_uid,
            "patient": image.patient,
            "accession": image.accession,
        }
        if image.exclude:
            entry["exclude"] = image.exclude
        if image.excluded_by:
            entry["excluded_by"] = dict(image.excluded_by)
        if image.truth_source:
            entry["truth_source"] = image.truth_source
        document["images"].append(entry)
        for hip in image.hips:
            attributes = {"side": hip.side, "patient": image.patient, "accession": image.accession}
            if hip.labeler:
                attributes["labeler"] = hip.labeler
            document["annotations"].append(
                {
                    "id": len(document["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": category_ids[hip.hip_class],
                    "bbox": [hip.x, hip.y, hip.width, hip.height],
                    "area": hip.width * hip.height,
                    "iscrowd": 0,
                    "attributes": attributes,
                }
            )
    return document


def write(images: Sequence[Image], *, description: str = "Hip labels") -> str:
    return dumps(to_document(images, description=description))


def _categories(document: dict) -> dict[Any, tuple[str, str]]:
    """category id -> (name, where)."""
    categories: dict[Any, tuple[str, str]] = {}
    for i, raw in enumerate(expect_list(document.get("categories"), "categories")):
        where = f"categories[{i}]"
        entry = expect_object(raw, where)
        category_id = entry.get("id")
        if isinstance(category_id, bool) or not isinstance(category_id, (int, str)):
            raise FormatError(f"{where}.id: expected a number, got {describe(category_id)}")
        if category_id in categories:
            raise FormatError(f"{where}.id: {category_id} is used twice")
        categories[category_id] = (expect_str(entry.get("name"), f"{where}.name"), where)
    return categories


def _key(value: Any) -> Any:
    # Only numbers and strings can be ids; anything else (a list) matches nothing.
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None


def parse(data: bytes | str) -> list[Image]:
    """Every image of a COCO file with its hips, or FormatError."""
    document = expect_object(load_json(data), "top level")
    for key in ("images", "annotations", "categories"):
        if key not in document:
            raise FormatError(f"{key}: missing (not a COCO file?)")
    categories = _categories(document)

    images: dict[Any, dict[str, Any]] = {}
    for i, raw in enumerate(expect_list(document["images"], "images")):
        where = f"images[{i}]"
        entry = expect_object(raw, where)
        image_id = entry.get("id")
        if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
            raise FormatError(f"{where}.id: expected a number, got {describe(image_id)}")
        if image_id in images:
            raise FormatError(f"{where}.id: {image_id} is used twice (first at {images[image_id]['where']})")
        fields: dict[str, Any] = {
            "where": where,
            "file_name": expect_str(entry.get("file_name", ""), f"{where}.file_name"),
            "sop_instance_uid": expect_str(entry.get("sop_instance_uid", ""), f"{where}.sop_instance_uid"),
            "width": expect_size(entry.get("width"), f"{where}.width"),
            "height": expect_size(entry.get("height"), f"{where}.height"),
            "exclude": expect_choice(entry.get("exclude"), f"{where}.exclude", EXCLUSIONS, allow_empty=True),
            "excluded_by": expect_excluded_by(entry.get("excluded_by"), f"{where}.excluded_by"),
            "patient": str(entry.get("patient", "") or ""),
            "accession": str(entry.get("accession", "") or ""),
            "truth_source": str(entry.get("truth_source", "") or ""),
            "hips": [],
        }
        if not fields["file_name"] and not fields["sop_instance_uid"]:
            raise FormatError(f"{where}: needs a sop_instance_uid or a file_name to be matched by")
        images[image_id] = fields

    for j, raw in enumerate(expect_list(document["annotations"], "annotations")):
        where = f"annotations[{j}]"
        entry = expect_object(raw, where)
        image = images.get(_key(entry.get("image_id")))
        if image is None:
            raise FormatError(f"{where}.image_id: no image has id {describe(entry.get('image_id'))}")
        category = categories.get(_key(entry.get("category_id")))
        if category is None:
            raise FormatError(f"{where}.category_id: no category has id {describe(entry.get('category_id'))}")
        name, category_where = category
        if name not in CLASSES:
            raise FormatError(
                f"{where}.category_id: category {name!r} ({category_where}) is not one of {', '.join(CLASSES)}"
            )
        bbox = entry.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise FormatError(f"{where}.bbox: expected 4 numbers [x, y, width, height], got {describe(bbox)}")
        x, y, width, height = (expect_number(value, f"{where}.bbox[{k}]") for k, value in enumerate(bbox))
        attributes = expect_object(entry.get("attributes", {}), f"{where}.attributes")
        if "side" not in attributes:
            raise FormatError(f"{where}.attributes.side: missing (right or left, the patient's side)")
        side = expect_choice(attributes["side"], f"{where}.attributes.side", SIDES)
        labeler = expect_str(attributes.get("labeler", ""), f"{where}.attributes.labeler")
        image["hips"].append(Hip(side, name, x, y, width, height, labeler=labeler, where=where))

    return [Image(**{**fields, "hips": tuple(fields["hips"])}) for fields in images.values()]
