"""REST API of dataset versions (researchers only)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.roles import RESEARCHER, HasRole
from ml import services
from ml.models import DatasetVersion


class DatasetCreateSerializer(serializers.Serializer):
    seed = serializers.IntegerField(min_value=0, max_value=2**63 - 1)
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)


def dataset_json(version: DatasetVersion, *, with_table: bool = False) -> dict[str, Any]:
    data = {
        "id": version.pk,
        "name": version.name,
        "seed": version.seed,
        "fractions": version.fractions,
        "content_hash": version.content_hash,
        "counts": version.counts,
        "created_by": version.created_by.get_username() if version.created_by else None,
        "created_at": version.created_at,
        "url": f"/api/datasets/{version.pk}/",
        "hips_csv_url": f"/api/datasets/{version.pk}/hips.csv",
    }
    if with_table:
        data["table1"] = services.table1(version)
    return data


@extend_schema(methods=["GET"], responses=dict, summary="List dataset versions", operation_id="datasets_list")
@extend_schema(
    methods=["POST"], request=DatasetCreateSerializer, responses={201: dict, 200: dict},
    summary="Freeze the ground truth into a dataset version (200 with the existing one if unchanged)",
    operation_id="datasets_create",
)  # fmt: skip
@api_view(["GET", "POST"])
@permission_classes([HasRole.of(RESEARCHER)])
def dataset_list(request: Request) -> Response:
    if request.method == "GET":
        versions = DatasetVersion.objects.select_related("created_by")
        return Response([dataset_json(v) for v in versions])
    serializer = DatasetCreateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    try:
        version, created = services.dataset_freeze(
            seed=serializer.validated_data["seed"], name=serializer.validated_data["name"], user=request.user
        )
    except ValueError as error:
        raise ApiValidationError({"detail": str(error)}) from error
    data = dataset_json(version, with_table=True)
    data["created"] = created
    return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema(responses=dict, summary="A dataset version with its Table 1", operation_id="datasets_retrieve")
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def dataset_detail(request: Request, pk: int) -> Response:
    version = get_object_or_404(DatasetVersion.objects.select_related("created_by"), pk=pk)
    return Response(dataset_json(version, with_table=True))


@extend_schema(
    responses={(200, "text/csv"): bytes},
    summary="The frozen hips of a dataset version as CSV",
    operation_id="datasets_hips_csv",
)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def dataset_hips_csv(request: Request, pk: int) -> HttpResponse:
    version = get_object_or_404(DatasetVersion, pk=pk)
    return HttpResponse(
        services.hips_csv(version),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="dataset-{version.pk}-hips.csv"'},
    )
