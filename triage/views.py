"""The triage worklist: its page and its API (``triage.worklist`` does the work).

Who may see them: ``triage.worklist.WORKLIST_ROLES`` (researchers and staff); anonymous users
are sent to the login page (page) or refused (API), everyone else gets 403."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from common.api_schema import ErrorSerializer
from common.roles import HasRole, role_required
from triage import worklist
from triage.serializers import WorklistSerializer
from triage.worklist import WORKLIST_ROLES, BadWorklistQuery, WorklistQuery


def by_side(row: dict[str, Any], side: str) -> dict[str, Any] | None:
    return next((hip for hip in row["hips"] if hip["side"] == side), None)


@role_required(*WORKLIST_ROLES)
def worklist_page(request: HttpRequest) -> HttpResponse:
    error = ""
    try:
        query = worklist.worklist_query_parse(request.GET)
    except BadWorklistQuery as exc:
        error, query = str(exc), WorklistQuery()
    # The page shows the newest state; ``after`` is for the API's polling only.
    query = replace(query, after=None)
    result = worklist.worklist_page(query=query, clamp=True)
    params = result.query.as_params()
    data = WorklistSerializer(result).data

    def page_link(number: int) -> str:
        return "?" + urlencode({**params, "page": number} if number > 1 else params)

    return render(
        request,
        "ml/worklist.html",
        {
            "result": result,
            "rows": result.rows,
            "query": result.query,
            "error": error,
            "previous_link": page_link(result.query.page - 1) if result.has_previous else "",
            "next_link": page_link(result.query.page + 1) if result.has_next else "",
            "flag_class": worklist.FLAG_CLASS,
            "fracture_cutoff": worklist.FRACTURE_CUTOFF,
            # Each row's hips as the API writes them (probabilities, top 2, flag).
            "cells": [
                (row, [by_side(answer, side) for side in worklist.SIDES])
                for row, answer in zip(result.rows, data["results"], strict=True)
            ],
            "page_data": {
                **data,
                "api": reverse("worklist-api"),
                "poll_ms": worklist.POLL_SECONDS * 1000,
            },
        },
        status=400 if error else 200,
    )


@extend_schema(
    parameters=[
        OpenApiParameter("order", str, enum=list(worklist.ORDERS), description="newest (default) or probability"),
        OpenApiParameter("since", OpenApiTypes.DATE, description="arrived on or after this date"),
        OpenApiParameter("until", OpenApiTypes.DATE, description="arrived on or before this date"),
        OpenApiParameter("flagged", bool, description="only radiographs with a CT/MRI flag"),
        OpenApiParameter("fracture", bool, description="only radiographs whose highest P(fracture) is >= 0.5"),
        OpenApiParameter(
            "after", OpenApiTypes.DATETIME, description="only radiographs scored after this (the answer's cursor)"
        ),
        OpenApiParameter("page", int, description="page of 50, from 1"),
    ],
    responses={200: WorklistSerializer, 400: ErrorSerializer},
    summary="The triage worklist: radiographs scored by the active classifier",
    operation_id="worklist",
)
@api_view(["GET"])
@permission_classes([HasRole.of(*WORKLIST_ROLES)])
def worklist_api(request: Request) -> Response:
    try:
        query = worklist.worklist_query_parse(request.query_params)
    except BadWorklistQuery as exc:
        return Response({"detail": str(exc)}, status=400)
    return Response(WorklistSerializer(worklist.worklist_page(query=query)).data)
