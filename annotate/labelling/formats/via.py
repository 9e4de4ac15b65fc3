"""VGG Image Annotator 2 (VIA 2.0.x) project JSON, the tool the paper's labellers used.

Writes a project VIA's "Project > Load" opens (images keyed by name and byte size, one rect region
per hip with class, side and labeller; the original's UID, size, pseudonyms and exclusion in
``file_attributes``) and reads such a project back.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from annotate.labelling.formats import (
    CLASS_NAMES,
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
SUFFIX = ".via.json"
FORMAT_VERSION = "2.0.10"

EXCLUSION_NAMES = {
    "cross_table_lateral": "Cross-table lateral",
    "no_hip": "No hip in view",
    "not_diagnostic": "Not diagnostic",
}


def _settings(name: str) -> dict[str, Any]:
    # VIA 2.0.x's default settings; the region label shows the class.
    return {
        "ui": {
            "annotation_editor_height": 25,
            "annotation_editor_fontsize": 0.8,
            "leftsidebar_width": 18,
            "image_grid": {
                "img_height": 80,
                "rshape_fill": "none",
                "rshape_fill_opacity": 0.3,
                "rshape_stroke": "yellow",
                "rshape_stroke_width": 2,
                "show_region_shape": True,
                "show_image_policy": "all",
            },
            "image": {
                "region_label": "class",
                "region_color": "class",
                "region_label_font": "10px Sans",
                "on_image_annotation_editor_placement": "NEAR_REGION",
            },
        },
        "core": {"buffer_size": 18, "filepath": {}, "default_filepath": ""},
        "project": {"name": name},
    }


def _attributes() -> dict[str, Any]:
    def text(description: str) -> dict[str, Any]:
        return {"type": "text", "description": description, "default_value": ""}

    return {
        "region": {
            "class": {
                "type": "dropdown",
                "description": "Hip class",
                "options": dict(CLASS_NAMES),
                "default_options": {},
            },
            "side": {
                "type": "radio",
                "description": "The patient's side (on an AP film the patient's left is on the image's right)",
                "options": {"right": "Right", "left": "Left"},
                "default_options": {},
            },
            "labeler": text("Who labelled the hip (username, or ground_truth)"),
        },
        "file": {
            "sop_instance_uid": text("DICOM SOP Instance UID"),
            "width": text("Width of the original image (pixels)"),
            "height": text("Height of the original image (pixels)"),
            "patient": text("Patient pseudonym"),
            "accession": text("Accession pseudonym"),
            "exclude": {
                "type": "dropdown",
                "description": "Why the radiograph is excluded (empty: not excluded)",
                "options": dict(EXCLUSION_NAMES),
                "default_options": {},
            },
        },
    }


def to_document(images: Sequence[Image], *, name: str = "hip-labels") -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for image in images:
        file_attributes: dict[str, Any] = {
            "sop_instance_uid": image.sop_instance_uid,
            "width": image.width,
            "height": image.height,
            "patient": image.patient,
            "accession": image.accession,
            "exclude": image.exclude,
        }
        if image.excluded_by:
            file_attributes["excluded_by"] = dict(image.excluded_by)
        if image.truth_source:
            file_attributes["truth_source"] = image.truth_source
        regions = []
        for hip in image.hips:
            region_attributes = {"class": hip.hip_class, "side": hip.side}
            if hip.labeler:
                region_attributes["labeler"] = hip.labeler
            regions.append(
                {
                    "shape_attributes": {"name": "rect", "x": hip.x, "y": hip.y, "width": hip.width,
                                         "height": hip.height},
                    "region_attributes": region_attributes,
                }
            )  # fmt: skip
        metadata[f"{image.file_name}{image.file_size}"] = {
            "filename": image.file_name,
            "size": image.file_size,
            "regions": regions,
            "file_attributes": file_attributes,
        }
    return {
        "_via_settings": _settings(name),
        "_via_img_metadata": metadata,
        "_via_attributes": _attributes(),
        "_via_data_format_version": FORMAT_VERSION,
        "_via_image_id_list": list(metadata),
    }


def write(images: Sequence[Image], *, name: str = "hip-labels") -> str:
    return dumps(to_document(images, name=name))


def _metadata(document: Any) -> tuple[dict, str]:
    """The image metadata and the name of its key, from a project or a bare export."""
    if isinstance(document, dict) and "_via_img_metadata" in document:
        return expect_object(document["_via_img_metadata"], "_via_img_metadata"), "_via_img_metadata"
    entries = document.values() if isinstance(document, dict) else ()
    if entries and all(isinstance(entry, dict) and "filename" in entry for entry in entries):
        return document, ""
    raise FormatError("_via_img_metadata: missing (not a VIA 2 project or VIA JSON export)")


def _region(raw: Any, where: str) -> Hip:
    region = expect_object(raw, where)
    shape = expect_object(region.get("shape_attributes"), f"{where}.shape_attributes")
    if shape.get("name") != "rect":
        raise FormatError(f"{where}.shape_attributes.name: expected \"rect\" (hips are boxes), got "
                          f"{describe(shape.get('name'))}")  # fmt: skip
    x, y, width, height = (
        expect_number(shape.get(key), f"{where}.shape_attributes.{key}") for key in ("x", "y", "width", "height")
    )
    attributes = expect_object(region.get("region_attributes", {}), f"{where}.region_attributes")
    for key in ("class", "side"):
        if key not in attributes:
            raise FormatError(f"{where}.region_attributes.{key}: missing")
    hip_class = expect_choice(attributes["class"], f"{where}.region_attributes.class", CLASSES)
    side = expect_choice(attributes["side"], f"{where}.region_attributes.side", SIDES)
    labeler = expect_str(attributes.get("labeler", ""), f"{where}.region_attributes.labeler")
    return Hip(side, hip_class, x, y, width, height, labeler=labeler, where=where)


def _size(value: Any, where: str) -> int | None:
    # VIA keeps text attributes as strings: "2048" once a person edited it.
    if value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return expect_size(value, where)


def parse(data: bytes | str) -> list[Image]:
    """Every image of a VIA 2 project (or VIA JSON export) with its hips, or FormatError."""
    metadata, prefix = _metadata(load_json(data))
    images = []
    for key, raw in metadata.items():
        where = f"{prefix}[{json.dumps(key)}]"
        entry = expect_object(raw, where)
        file_name = expect_str(entry.get("filename"), f"{where}.filename", allow_empty=False)
        size = entry.get("size", -1)
        if isinstance(size, str) and size.lstrip("-").isdigit():  # some tools write sizes as text
            size = int(size)
        if isinstance(size, bool) or not isinstance(size, int):
            raise FormatError(f"{where}.size: expected a whole number, got {describe(size)}")
        attributes = entry.get("file_attributes", {})
        if attributes == []:  # an empty JS object saved by some tools as a list
            attributes = {}
        attributes = expect_object(attributes, f"{where}.file_attributes")
        raw_regions = entry.get("regions", [])
        if isinstance(raw_regions, dict):  # VIA 1.x kept regions as {"0": {...}, "1": {...}}
            raw_regions = list(raw_regions.values())
        regions = expect_list(raw_regions, f"{where}.regions")
        images.append(
            Image(
                sop_instance_uid=expect_str(
                    attributes.get("sop_instance_uid", ""), f"{where}.file_attributes.sop_instance_uid"
                ).strip(),
                file_name=file_name,
                file_size=size,
                width=_size(attributes.get("width"), f"{where}.file_attributes.width"),
                height=_size(attributes.get("height"), f"{where}.file_attributes.height"),
                patient=str(attributes.get("patient", "") or ""),
                accession=str(attributes.get("accession", "") or ""),
                exclude=expect_choice(
                    attributes.get("exclude"), f"{where}.file_attributes.exclude", EXCLUSIONS, allow_empty=True
                ),
                excluded_by=expect_excluded_by(attributes.get("excluded_by"), f"{where}.file_attributes.excluded_by"),
                truth_source=str(attributes.get("truth_source", "") or ""),
                hips=tuple(_region(region, f"{where}.regions[{i}]") for i, region in enumerate(regions)),
                where=where,
            )
        )
    return images
