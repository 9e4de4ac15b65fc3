"""The checklists and flow diagram of a model report, filled in from the records.

:func:`model_facts` gathers what the items read (data sources, de-identification, labelling and
its agreement, Table 1, the model's configuration, hash and training curve, its evaluation);
:func:`write_documents` writes each checklist as Markdown and HTML (a Django template) and the
flow diagram; :func:`write_model_documents` does it for a model version's evaluation folder.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Max, Min
from django.template.loader import render_to_string

from annotate.labelling import services as labelling
from annotate.labels import Adjudication, Assignment
from annotate.models import Radiograph
from common.atomicfile import write_atomic
from ml import services
from ml.core.checklists import Checklist, fill, to_markdown
from ml.core.checklists.claim import CLAIM
from ml.core.checklists.tripod_ai import TRIPOD_AI
from ml.core.configs import NetConfig
from ml.core.flow import FlowCounts, flow_files
from ml.flow import dataset_flow
from ml.models import DatasetHip, DatasetVersion, ModelVersion

MODEL_CHECKLISTS: tuple[Checklist, ...] = (CLAIM, TRIPOD_AI)
#: The files of a model's reporting documents in its evaluation folder (name -> content type).
MODEL_DOCUMENTS: dict[str, str] = {
    **{f"{c.key}.{kind}": f"text/{'html' if kind == 'html' else 'markdown'}" for c in MODEL_CHECKLISTS
       for kind in ("html", "md")},
    "flow.svg": "image/svg+xml",
    "flow.png": "image/png",
}  # fmt: skip
#: The files :func:`write_documents` writes besides the checklists' (``<key>.md``, ``<key>.html``).
FLOW_FILES = ("flow.svg", "flow.png")


def platform_version() -> str:
    """The platform's version, from pyproject.toml (the project is run from its checkout)."""
    import tomllib

    path = Path(settings.BASE_DIR) / "pyproject.toml"
    try:
        return str(tomllib.loads(path.read_text())["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def _version_of(package: str) -> str:
    try:
        return package_version(package)
    except PackageNotFoundError:
        return "not installed"


def data_facts(version: DatasetVersion) -> dict[str, Any]:
    """The dataset version's radiographs: counts, study dates, modalities, scanners, views."""
    ids = DatasetHip.objects.filter(dataset=version).values("radiograph_id")
    radiographs = Radiograph.objects.filter(id__in=ids)
    dates = radiographs.aggregate(first=Min("study__study_date"), last=Max("study__study_date"))
    has_model = any(f.name == "manufacturer_model" for f in Radiograph._meta.get_fields())
    scanner_fields = ["manufacturer", "manufacturer_model"] if has_model else ["manufacturer"]
    scanners = Counter(
        " ".join(part for part in row if part) or "not recorded" for row in radiographs.values_list(*scanner_fields)
    )
    return {
        "radiographs": radiographs.count(),
        "patients": radiographs.values("study__patient_id").distinct().count(),
        "date_first": dates["first"].isoformat() if dates["first"] else None,
        "date_last": dates["last"].isoformat() if dates["last"] else None,
        "modalities": dict(Counter(radiographs.values_list("modality", flat=True))),
        "scanners": dict(scanners),
        "views": dict(Counter(v or "not recorded" for v in radiographs.values_list("view_position", flat=True))),
    }


def labelling_facts() -> dict[str, Any]:
    """How the ground truth was made: labellers, the agreement rule, adjudication, κ, the tool."""
    agreement = labelling.agreement_statistics()
    labellers = (
        Assignment.objects.filter(status="submitted", labeler__isnull=False).values("labeler_id").distinct().count()
    )
    sources = Counter(
        Adjudication.objects.filter(status="resolved", excluded="").values_list("truth_source", flat=True)
    )
    return {
        "labellers": labellers,
        "per_radiograph": settings.LABELS_PER_RADIOGRAPH,
        "iou": settings.AGREEMENT_IOU,
        "agreed": agreement["agreed"],
        "adjudicated": agreement["adjudicated"],
        "truth_sources": dict(sources),
        "kappa_six_class": agreement["kappa_six_class"],
        "kappa_binary": agreement["kappa_binary"],
        "kappa_six_class_ci": agreement["kappa_six_class_ci"],
        "kappa_binary_ci": agreement["kappa_binary_ci"],
        "hips_compared": agreement["hips_compared"],
        "radiographs_double_read": agreement["radiographs_double_read"],
        "proposals_show_class": agreement["proposals_show_class"],
        "tool": f"this platform's labelling page (hipstudy {platform_version()})",
    }


def _curve(version: ModelVersion) -> dict[str, Any]:
    run = version.training_run
    history = list(run.history) if run is not None else []
    scored = [row for row in history if isinstance(row.get("val_accuracy"), float)]
    best = max(scored, key=lambda row: row["val_accuracy"], default=None)
    return {
        "epochs": len(history),
        "best": best["val_accuracy"] if best else None,
        "best_epoch": best["epoch"] if best else None,
    }


def model_part(version: ModelVersion) -> dict[str, Any]:
    """The model's facts: configuration (as its ``NetConfig`` reads it), hash, pretraining, curve."""
    # deferred: ml.evaluation imports this module for its one hook
    from ml.evaluation import training_facts

    config = NetConfig.from_dict(version.config).as_dict() if version.kind == "classifier" else dict(version.config)
    made = training_facts(version.kind, version.config)
    return {
        "version": version.pk,
        "config_name": version.config_name,
        "config": config,
        "bundle_sha256": version.bundle_sha256,
        "identity": version.identity,
        "pretraining": made["pretraining"],
        "curve": _curve(version),
        "frameworks": f"TensorFlow {_version_of('tensorflow')}, Keras {_version_of('keras')}",
        "deviations": made["deviations"],
    }


def model_facts(*, version: ModelVersion, evaluation: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything the model's checklists read. ``evaluation``: the report (metrics.json's dict);
    default the version's stored summary."""
    table = services.table1(version=version.dataset)
    flow = dataset_flow(version=version.dataset)
    part = model_part(version)
    return {
        "data": data_facts(version.dataset),
        "flow": flow.as_dict(),
        "deidentification": {
            "profile": "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile, keyed UIDs, "
            "free text blanked, private tags removed",
            "tool": f"dicognito {_version_of('dicognito')}",
            "dates": "kept" if settings.DICOM_DATE_SHIFT == "keep" else "shifted per patient",
        },
        "labelling": labelling_facts(),
        "provenance": table["provenance"]["total"],
        "table1": {**table, "seed": version.dataset.seed},
        "model": part,
        "evaluation": dict(evaluation) if evaluation is not None else version.evaluation,
        "deviations": part["deviations"],
    }


def write_documents(
    *,
    folder: Path,
    checklists: Sequence[Checklist],
    facts: Mapping[str, Any],
    subject: str,
    flow: FlowCounts | None = None,
) -> list[Path]:
    """Each checklist as ``<key>.md`` and ``<key>.html``, and the flow diagram (``flow.svg``,
    ``flow.png``) when given, into ``folder``; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for checklist in checklists:
        rows = fill(checklist, facts)
        html = render_to_string(
            "ml/checklist.html",
            {"checklist": checklist, "rows": rows, "subject": subject, "filled": sum(r["filled"] for r in rows)},
        )
        for name, text in ((f"{checklist.key}.md", to_markdown(checklist, rows, subject=subject)),
                           (f"{checklist.key}.html", html)):  # fmt: skip
            write_atomic(folder / name, text.encode("utf-8"), mode=0o644)
            written.append(folder / name)
    if flow is not None:
        for name, data in flow_files(flow).items():
            write_atomic(folder / name, data, mode=0o644)
            written.append(folder / name)
    return written


def write_model_documents(*, version: ModelVersion, folder: Path, evaluation: Mapping[str, Any]) -> list[Path]:
    """CLAIM and TRIPOD+AI for ``version`` and its dataset's flow diagram into ``folder`` (its
    evaluation folder, before it is renamed into place)."""
    facts = model_facts(version=version, evaluation=evaluation)
    return write_documents(
        folder=folder,
        checklists=MODEL_CHECKLISTS,
        facts=facts,
        subject=f"Model version {version.pk} ({version.config_name}) on dataset version {version.dataset_id}",
        flow=FlowCounts.from_dict(facts["flow"]),
    )
