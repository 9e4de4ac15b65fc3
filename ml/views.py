"""Pages of dataset versions (researchers only)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from annotate.roles import RESEARCHER, role_required
from ml import services
from ml.models import DatasetVersion


class FreezeForm(forms.Form):
    seed = forms.IntegerField(min_value=0, max_value=2**63 - 1, initial=0)
    name = forms.CharField(max_length=100, required=False)


@role_required(RESEARCHER)
def dataset_list(request: HttpRequest) -> HttpResponse:
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
        version.sizes = [sum(version.counts.get(split, {}).values()) for split in services.SPLITS]
    return render(request, "ml/dataset_list.html", {"versions": versions, "form": form})


@role_required(RESEARCHER)
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(DatasetVersion.objects.select_related("created_by"), pk=pk)
    table = services.table1(version)

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
