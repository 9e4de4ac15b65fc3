"""CSV: one row per hip, for spreadsheets and statistics (export only).

Columns: radiograph, pseudonyms, labeller, side, class, the box in original pixels, an exclusion
reason (on a row of its own), truth_source and, last, provenance; rows follow the images, each
labeller's hips then their exclusion.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from annotate.labelling.formats import GROUND_TRUTH, Image
from common import csvfile

CONTENT_TYPE = "text/csv; charset=utf-8"
SUFFIX = ".csv"
COLUMNS = (
    "radiograph_id", "sop_instance_uid", "patient", "accession", "labeler", "side", "class",
    "x", "y", "width", "height", "excluded", "truth_source", "provenance",
)  # fmt: skip


def write(images: Sequence[Image], *, ground_truth: bool) -> str:
    buffer = io.StringIO()
    # common.csvfile: a username such as "@SUM(...)" or "=cmd" must not become a spreadsheet formula.
    writer = csvfile.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for image in images:
        head = ["" if image.radiograph_id is None else image.radiograph_id, image.sop_instance_uid,
                image.patient, image.accession]  # fmt: skip
        for hip in image.hips:
            # csv writes floats with repr: full precision, so the numbers read back exactly.
            writer.writerow([*head, hip.labeler, hip.side, hip.hip_class, hip.x, hip.y, hip.width,
                             hip.height, "", image.truth_source, hip.provenance])  # fmt: skip
        exclusions = dict(image.excluded_by)
        if image.exclude:
            exclusions[GROUND_TRUTH if ground_truth else ""] = image.exclude
        for labeler, reason in exclusions.items():
            writer.writerow([*head, labeler, "", "", "", "", "", "", reason, image.truth_source, ""])
    return buffer.getvalue()
