"""The operations page (/ops/) and its polling API (/api/ops/): arrival-to-score, backlog,
arrivals by source, recent readings, workers and broker (``triage.operations`` does the work).

Who may see them: researchers and staff (``OPS_ROLES``); anonymous users are sent to the login
page (page) or refused (API), everyone else gets 403."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from common.roles import RESEARCHER, HasRole, role_required
from triage import operations
from triage.serializers import OpsSerializer

OPS_ROLES = (RESEARCHER,)  # staff hold every role


@role_required(*OPS_ROLES)
def ops_page(request: HttpRequest) -> HttpResponse:
    data = OpsSerializer(operations.ops_status()).data
    return render(request, "ml/ops.html", {"ops": data, "page_data": {**data, "api": reverse("ops-api")}})


@extend_schema(
    responses={200: OpsSerializer},
    summary="Operations: arrival-to-score (median, p95), backlog, arrivals by source, workers and broker",
    operation_id="ops",
)
@api_view(["GET"])
@permission_classes([HasRole.of(*OPS_ROLES)])
def ops_api(request: Request) -> Response:
    return Response(OpsSerializer(operations.ops_status()).data)
