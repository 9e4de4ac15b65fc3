"""Pages of dataset versions, training runs, model versions and predictions (researchers only)."""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from annotate.models import Radiograph
from common.http import AuthenticatedHttpRequest
from common.queueing import QueueUnavailable
from common.roles import RESEARCHER, role_required
from ml import operations, scoring, services, training
from ml.api_serializers import (
    PredictionOutputSerializer,
    TrainingRunOutputSerializer,
    best_val_accuracy,
    evaluation_files,
)
from ml.core.flow import flow_files
from ml.evaluation import audit_context, training_facts
from ml.flow import dataset_flow
from ml.models import DatasetVersion, HipPrediction, Kind, ModelVersion, TrainingRun
from ml.training import available_configs


class FreezeForm(forms.Form):
    seed = forms.IntegerField(min_value=0, max_value=2**63 - 1, initial=0)
    name = forms.CharField(max_length=100, required=False)


@role_required(RESEARCHER)
def dataset_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = FreezeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            version, created = services.dataset_freeze(
                seed=form.cleaned_data["seed"], name=form.cleaned_data["name"], user=request.user
            )
        except ValueError as error:
            form.add_error(None, str(error))
        else:
            if created:
                messages.success(request, f"Dataset version {version.pk} frozen.")
            else:
                messages.info(
                    request, f"The ground truth and split are unchanged: this is dataset version {version.pk}."
                )
            return redirect("dataset_detail", pk=version.pk)
    versions = list(DatasetVersion.objects.select_related("created_by"))
    for version in versions:
        sizes = [sum(version.counts.get(split, {}).values()) for split in services.SPLITS]
        version.sizes = sizes  # type: ignore[attr-defined]  # for the template
    return render(request, "ml/dataset_list.html", {"versions": versions, "form": form})


@role_required(RESEARCHER)
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(DatasetVersion.objects.select_related("created_by"), pk=pk)
    table = services.table1(version=version)

    def cells(counts: list[int]) -> list[tuple[int, float | None]]:
        return [(n, 100 * n / h if h else None) for n, h in zip(counts, table["hips"], strict=True)]

    rows = [{"label": r["hip_class"], "cells": cells(r["counts"]), "total": r["total"]} for r in table["classes"]]
    binary = [
        {"label": r["label"].replace("_", " "), "cells": cells(r["counts"]), "total": r["total"]}
        for r in table["binary"]
    ]
    return render(
        request,
        "ml/dataset_detail.html",
        {
            "version": version,
            "table": table,
            "rows": rows,
            "binary": binary,
            "chi2": [("Six classes", table["chi2_multiclass"]), ("Fracture vs not", table["chi2_binary"])],
        },
    )


@role_required(RESEARCHER)
def dataset_flow_image(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    """The dataset version's participant flow diagram (``flow.svg`` or ``flow.png``), drawn from
    the records as they are now."""
    version = get_object_or_404(DatasetVersion, pk=pk)
    data = flow_files(dataset_flow(version=version))[f"flow.{kind}"]
    return HttpResponse(data, content_type="image/svg+xml" if kind == "svg" else "image/png")


# --------------------------------------------------------------------------- models


class TrainForm(forms.Form):
    dataset = forms.ModelChoiceField(
        queryset=DatasetVersion.objects.order_by("-created_at", "-id"), label="Dataset version", empty_label=None
    )
    kind = forms.ChoiceField(label="Model", choices=Kind.choices, initial=Kind.CLASSIFIER, required=False)
    config = forms.ChoiceField(label="Configuration", choices=())
    seed = forms.IntegerField(min_value=0, max_value=2**63 - 1, initial=0)
    activate = forms.BooleanField(required=False, label="Activate when done")
    random_init = forms.BooleanField(
        required=False,
        label="Train from random weights",
        help_text="without it, `paper` refuses to start when DENSENET169_WEIGHTS names no ImageNet weights file",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = sorted(set(available_configs("classifier")) | set(available_configs("detector")))
        cast(forms.ChoiceField, self.fields["config"]).choices = [(name, name) for name in names]
        self.fields["config"].initial = "cpu-small" if "cpu-small" in names else (names[0] if names else None)
        # A ModelChoiceField (fields[] is typed Field); Django lets an instance override label_from_instance.
        self.fields["dataset"].label_from_instance = (  # type: ignore[attr-defined]
            lambda v: f"{v.pk}{f' {v.name}' if v.name else ''} (seed {v.seed})"
        )


def fmt_ci(figure: Any) -> str:
    """ "0.912 (0.88–0.94)" from {"mean", "ci_low", "ci_high"}; "–" where undefined."""
    if not isinstance(figure, dict) or figure.get("mean") is None:
        return "–"
    text = f"{figure['mean']:.3f}"
    if figure.get("ci_low") is not None and figure.get("ci_high") is not None:
        text += f" ({figure['ci_low']:.2f}–{figure['ci_high']:.2f})"
    return text


HEADLINE_LABELS = (
    ("binary_accuracy", "Binary accuracy (fracture vs not)"),
    ("binary_sensitivity", "Binary sensitivity"),
    ("binary_specificity", "Binary specificity"),
    ("binary_auc", "Binary AUC"),
    ("binary_kappa", "Binary Cohen's kappa"),
    ("multiclass_accuracy", "Multiclass accuracy (six classes)"),
    ("multiclass_kappa", "Multiclass Cohen's kappa"),
)


def _version_figures(version: ModelVersion) -> dict[str, str]:
    evaluation = version.evaluation or {}
    return {key: fmt_ci(evaluation.get(key)) for key, _ in HEADLINE_LABELS}


@role_required(RESEARCHER)
def model_list(request: HttpRequest) -> HttpResponse:
    form = TrainForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = operations.training_queue(
                dataset=data["dataset"],
                config_name=data["config"],
                kind=data["kind"] or Kind.CLASSIFIER,
                user=request.user,
                seed=data["seed"],
                activate=data["activate"],
                random_init=data["random_init"],
            )
        except (training.TrainingRefused, QueueUnavailable) as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Training run {run.pk} queued.")
            return redirect("run_detail", pk=run.pk)
    runs = list(TrainingRun.objects.select_related("dataset", "model_version", "created_by")[:100])
    for run in runs:
        run.best_val = best_val_accuracy(run)  # type: ignore[attr-defined]  # for the template
    versions = list(ModelVersion.objects.select_related("dataset"))
    for version in versions:
        version.figures = _version_figures(version)  # type: ignore[attr-defined]  # for the template
    return render(request, "ml/model_list.html", {"form": form, "runs": runs, "versions": versions})


# The figures of each epoch that a run's page shows, by kind (key, heading).
HISTORY_COLUMNS = {
    "classifier": [("loss", "Loss"), ("accuracy", "Accuracy"), ("val_loss", "Validation loss"),
                   ("val_accuracy", "Validation accuracy")],
    "detector": [("loss", "Loss"), ("cls_logits_loss", "Class loss"), ("bbox_regression_loss", "Box loss"),
                 ("val_mean_iou", "Validation mean IoU"), ("val_min_iou", "Lowest IoU"), ("val_missed", "Missed")],
}  # fmt: skip


@role_required(RESEARCHER)
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun.objects.select_related("dataset", "model_version"), pk=pk)
    data = TrainingRunOutputSerializer(run).data
    columns = HISTORY_COLUMNS[run.kind]
    return render(
        request,
        "ml/run_detail.html",
        {
            "run": run,
            "model_version_id": data["model_version"],
            "history": run.history,
            "columns": columns,
            "columns_json": json.dumps([key for key, _ in columns]),
            "rows": [
                {
                    "epoch": row.get("epoch"),
                    "cells": [row.get(key) for key, _ in columns],
                    "learning_rate": row.get("learning_rate"),
                    "seconds": row.get("seconds"),
                }
                for row in run.history
            ],
            "config_json": json.dumps(run.config, indent=2, sort_keys=True),
        },
    )


@role_required(RESEARCHER)
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=pk)
    if training.training_cancel(run):
        messages.success(request, f"Training run {run.pk}: cancel requested.")
    else:
        messages.error(request, f"Training run {run.pk} has already ended ({run.status}).")
    return redirect("run_detail", pk=run.pk)


@role_required(RESEARCHER)
@require_POST
def model_activate(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        version, warning = operations.activate_queued(get_object_or_404(ModelVersion, pk=pk))
    except QueueUnavailable as error:
        messages.error(request, f"Model version {pk} was not activated. {error}")
        return redirect("model_detail", pk=pk)
    messages.success(request, f"Model version {version.pk} is now the active {version.get_kind_display().lower()}.")
    if warning:
        messages.warning(request, warning)
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("model_detail", pk=version.pk)


@role_required(RESEARCHER)
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion.objects.select_related("dataset", "training_run"), pk=pk)
    try:
        facts = training_facts(version.kind, version.config)
    except (TypeError, ValueError) as error:  # a config this code cannot read: say so, show the rest
        facts = {"error": str(error)}
    evaluation = version.evaluation or {}
    headline = [
        {"key": key, "label": label, "text": fmt_ci(evaluation.get(key)), "figure": evaluation.get(key) or {}}
        for key, label in HEADLINE_LABELS
    ]
    per_class = [
        {
            "label": key,
            "cells": [fmt_ci((figures or {}).get(metric)) for metric in ("sensitivity", "specificity", "auc")],
        }
        for key, figures in (evaluation.get("per_class") or {}).items()
    ]
    files = evaluation_files(version)
    figures = [
        (name, files[name], title)
        for name, title in (
            ("confusion_matrix.png", "Confusion matrix (six classes)"),
            ("roc_binary.png", "ROC: fracture vs not"),
            ("roc_per_class.png", "ROC per class (one vs rest)"),
            ("thresholds.png", "Sensitivity and specificity by threshold"),
        )
        if name in files
    ]
    audit_figures = [
        (name, files[name], title)
        for name, title in (
            ("calibration_binary.png", "Reliability diagram: P(fracture)"),
            ("calibration_per_class.png", "Reliability diagrams: each class against the rest"),
        )
        if name in files
    ]
    recent: list[int] = []
    for rid in version.predictions.order_by("-created_at", "-id").values_list("radiograph_id", flat=True)[:200]:
        if rid not in recent:
            recent.append(rid)
        if len(recent) >= 20:
            break
    return render(
        request,
        "ml/model_detail.html",
        {
            "version": version,
            "config_json": json.dumps(version.config, indent=2, sort_keys=True),
            "evaluated": bool(version.evaluation),
            "auto_vs_manual": [
                (task, (evaluation.get("classification") or {}).get(task))
                for task in ("binary", "multiclass")
                if (evaluation.get("classification") or {}).get(task)
            ],
            "evaluation": evaluation,
            "headline": headline,
            "per_class": per_class,
            "files": files,
            "figures": figures,
            "audit_figures": audit_figures,
            "gallery": files.get("failures.png"),
            **audit_context(evaluation, fmt_ci),
            "recent": recent,
            "facts": facts,
        },
    )


@role_required(RESEARCHER)
def radiograph_predictions(request: HttpRequest, pk: int) -> HttpResponse:
    radiograph = get_object_or_404(Radiograph, pk=pk)
    rows = sorted(
        HipPrediction.objects.filter(radiograph=radiograph).select_related("model_version"),
        key=lambda row: (row.side != "right", row.side),  # the right hip first, as on the image
    )
    versions = sorted({row.model_version for row in rows}, key=lambda v: -v.pk)
    chosen = None
    wanted = request.GET.get("model", "")
    if wanted.isdigit():
        chosen = next((v for v in versions if v.pk == int(wanted)), None)
        if chosen is None:
            chosen = get_object_or_404(ModelVersion, pk=int(wanted))
    if chosen is None:
        active = scoring.active_model()
        chosen = active if active is not None and active in versions else (versions[0] if versions else active)
    hips = []
    for row in rows:
        if chosen is None or row.model_version_id != chosen.pk:
            continue
        data = PredictionOutputSerializer(row).data
        x0, y0, x1, y1 = row.heatmap_rect
        bx, by, bw, bh = row.box
        data["classes"] = sorted(data["probabilities"].items(), key=lambda item: -item[1])
        data["heatmap_style"] = _percent_style(x0, y0, x1 - x0, y1 - y0, radiograph)
        data["box_style"] = _percent_style(bx, by, bw, bh, radiograph)
        hips.append(data)
    return render(
        request,
        "ml/radiograph_predictions.html",
        {"radiograph": radiograph, "version": chosen, "versions": versions, "hips": hips},
    )


def _percent_style(x: float, y: float, w: float, h: float, radiograph: Radiograph) -> str:
    """CSS placing an image rectangle over the preview, in percent of the radiograph's size
    (the preview JPEG is the whole image, scaled): it stays right at any displayed size."""
    cols, rows = max(radiograph.columns, 1), max(radiograph.rows, 1)
    return (
        f"left:{100 * x / cols:.4f}%;top:{100 * y / rows:.4f}%;width:{100 * w / cols:.4f}%;height:{100 * h / rows:.4f}%"
    )
