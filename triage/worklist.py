"""The triage worklist: radiographs scored by the active classifier, newest first or by the
probability of fracture, with each hip's top-2 classes, heatmap and a CT/MRI flag.

A selector (reads only). The flag marks a possible occult nondisplaced neck fracture (the paper's
Figure 8 threshold); ``after``/``cursor`` serve live updates, overlapping by ``POLL_OVERLAP``.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Case, F, FloatField, IntegerField, Max, Q, QuerySet, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from annotate.labels import CLASSES
from common.roles import RESEARCHER
from ml.core.vocab import SIDES  # the patient's right hip first, as on the image
from ml.models import HipPrediction, ModelVersion
from ml.scoring import active_model

# Who may see the worklist (page and API). In a hospital this would be the clinicians:
# change this one line (the preview and heatmap images have their own role checks).
WORKLIST_ROLES: tuple[str, ...] = (RESEARCHER,)

FLAG_CLASS = "fn_nondisplaced"
FRACTURE_CUTOFF = 0.5  # "fracture only": the radiograph's highest P(fracture) reaches this
PAGE_SIZE = 50
MAX_PAGE = 10**8  # 5 000 000 000 rows: far beyond any archive, far below a 64-bit offset
POLL_SECONDS = 3  # how often the page asks for newly scored radiographs
POLL_OVERLAP = timedelta(minutes=2)
ORDERS = ("newest", "probability")

_FLAG_INDEX = CLASSES.index(FLAG_CLASS)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class BadWorklistQuery(ValueError):
    """A filter, order or page the worklist cannot read; the message says which and why."""


@dataclass(frozen=True)
class WorklistQuery:
    order: str = "newest"
    since: date | None = None  # arrival date, inclusive
    until: date | None = None  # arrival date, inclusive
    flagged: bool = False
    fracture: bool = False
    after: datetime | None = None  # scored strictly after
    page: int = 1

    def as_params(self) -> dict[str, str]:
        """The query as URL parameters (what the page's links and the API take), defaults left out."""
        params = {
            "order": self.order if self.order != "newest" else "",
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "flagged": "1" if self.flagged else "",
            "fracture": "1" if self.fracture else "",
        }
        return {key: value for key, value in params.items() if value}


@dataclass
class WorklistPage:
    version: ModelVersion | None
    query: WorklistQuery
    threshold: float | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0
    pages: int = 1
    cursor: datetime | None = None

    @property
    def has_next(self) -> bool:
        return self.query.page < self.pages

    @property
    def has_previous(self) -> bool:
        return self.query.page > 1


def _flag(params: Mapping[str, Any], name: str) -> bool:
    value = str(params.get(name, "")).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadWorklistQuery(f"{name} must be 1 or 0 (true or false), not {value!r}")


def _date(params: Mapping[str, Any], name: str) -> date | None:
    value = str(params.get(name, "")).strip()
    if not value:
        return None
    try:
        parsed = parse_date(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise BadWorklistQuery(f"{name} must be a date as YYYY-MM-DD, not {value!r}")
    return parsed


def _datetime(params: Mapping[str, Any], name: str) -> datetime | None:
    value = str(params.get(name, "")).strip()
    if not value:
        return None
    try:
        parsed = parse_datetime(value.replace(" ", "+"))  # a '+' left unescaped in a URL arrives as a space
    except ValueError:
        parsed = None
    if parsed is None:
        raise BadWorklistQuery(f"{name} must be an ISO 8601 timestamp such as 2026-01-31T12:00:00Z, not {value!r}")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def worklist_query_parse(params: Mapping[str, Any]) -> WorklistQuery:
    """Read ``order``, ``since``, ``until``, ``flagged``, ``fracture``, ``after`` and ``page``
    from request parameters; ``BadWorklistQuery`` says what is wrong."""
    order = str(params.get("order", "")).strip() or "newest"
    if order not in ORDERS:
        raise BadWorklistQuery(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    since, until = _date(params, "since"), _date(params, "until")
    if since and until and since > until:
        raise BadWorklistQuery(f"since ({since}) is after until ({until})")
    page_text = str(params.get("page", "")).strip() or "1"
    # At most MAX_PAGE: the row offset of a larger page overflows the database's 64-bit integer.
    if not (page_text.isascii() and page_text.isdigit() and len(page_text) <= 9) or not 1 <= int(page_text) <= MAX_PAGE:
        raise BadWorklistQuery(f"page must be a whole number from 1 to {MAX_PAGE}, not {page_text[:40]!r}")
    return WorklistQuery(
        order=order,
        since=since,
        until=until,
        flagged=_flag(params, "flagged"),
        fracture=_flag(params, "fracture"),
        after=_datetime(params, "after"),
        page=int(page_text),
    )


def flag_threshold(version: ModelVersion | None) -> float | None:
    """The ideal-point threshold of P(fn_nondisplaced) on the test split, or None when the
    model has no evaluation or the threshold is undefined there (no flag is possible)."""
    if version is None or not isinstance(version.evaluation, dict):
        return None
    entry = (version.evaluation.get("thresholds") or {}).get(FLAG_CLASS)
    value = entry.get("threshold") if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def hip_flagged(*, probabilities: list[float], predicted_class: str, threshold: float | None) -> bool:
    """The CT/MRI flag of one hip: P(fn_nondisplaced) at or above the ideal threshold while
    the top class is not fn_nondisplaced (a nondisplaced fracture the top class may hide)."""
    if threshold is None:
        return False
    return predicted_class != FLAG_CLASS and float(probabilities[_FLAG_INDEX]) >= threshold


def _flag_condition(threshold: float | None) -> Q:
    """``hip_flagged`` as a database condition on HipPrediction (so flag filters and pages agree)."""
    if threshold is None:
        return Q(pk__in=[])
    return Q(p_flag__gte=threshold) & ~Q(predicted_class=FLAG_CLASS)


def _selection(version: ModelVersion, threshold: float | None, query: WorklistQuery) -> QuerySet:
    """One row per radiograph the version has read (its scoring time, highest P(fracture)
    and flag) that passes the query's filters, in the query's order."""
    predictions = HipPrediction.objects.filter(model_version=version)
    tz = timezone.get_current_timezone()
    if query.since:  # arrival dates in the site's time zone, both ends inclusive
        start = datetime.combine(query.since, time.min, tzinfo=tz)
        predictions = predictions.filter(radiograph__imported_at__gte=start)
    if query.until:
        end = datetime.combine(query.until + timedelta(days=1), time.min, tzinfo=tz)
        predictions = predictions.filter(radiograph__imported_at__lt=end)
    flag = Case(When(_flag_condition(threshold), then=Value(1)), default=Value(0), output_field=IntegerField())
    grouped = (
        predictions.annotate(p_flag=Cast(KeyTextTransform(str(_FLAG_INDEX), "probabilities"), FloatField()))
        .values("radiograph_id")
        .annotate(
            scored_at=Max("created_at"),
            arrived=Max("radiograph__imported_at"),
            max_p=Max("fracture_probability"),
            flag=Max(flag),
        )
    )
    if query.flagged:
        grouped = grouped.filter(flag=1)
    if query.fracture:
        grouped = grouped.filter(max_p__gte=FRACTURE_CUTOFF)
    if query.after:
        grouped = grouped.filter(scored_at__gt=query.after)
    if query.order == "probability":
        return grouped.order_by(F("max_p").desc(), F("scored_at").desc(), F("radiograph_id").desc())
    return grouped.order_by(F("scored_at").desc(), F("arrived").desc(), F("radiograph_id").desc())


def _rows(version: ModelVersion, groups: list[dict[str, Any]], threshold: float | None) -> list[dict[str, Any]]:
    ids = [group["radiograph_id"] for group in groups]
    hips: dict[int, dict[str, HipPrediction]] = {}
    predictions = HipPrediction.objects.filter(model_version=version, radiograph_id__in=ids).select_related(
        "radiograph__study__patient"
    )
    for prediction in predictions:
        hips.setdefault(prediction.radiograph_id, {})[prediction.side] = prediction
    rows = []
    for group in groups:
        by_side = hips.get(group["radiograph_id"], {})
        if not by_side:
            continue  # deleted between the two queries
        radiograph = next(iter(by_side.values())).radiograph
        sides = [side for side in SIDES if side in by_side] + sorted(set(by_side) - set(SIDES))
        rows.append(
            {
                "radiograph": radiograph.pk,
                "arrived": radiograph.imported_at,
                "scored_at": group["scored_at"],
                "study_date": radiograph.study.study_date,
                "patient": radiograph.study.patient.code,
                "modality": radiograph.modality,
                "columns": radiograph.columns,
                "rows": radiograph.rows,
                "max_fracture_probability": float(group["max_p"]),
                "fracture": float(group["max_p"]) >= FRACTURE_CUTOFF,
                "flagged": bool(group["flag"]),
                "hips": [by_side[side] for side in sides],
                "preview_url": reverse("radiograph_preview", args=[radiograph.pk]),
                "predictions_url": reverse("radiograph_predictions", args=[radiograph.pk]) + f"?model={version.pk}",
            }
        )
    return rows


def worklist_cursor(version: ModelVersion | None) -> datetime:
    """What to ask with ``after`` next: ``POLL_OVERLAP`` before the version's newest scoring
    (or before now, when it has read nothing yet)."""
    newest = None
    if version is not None:
        newest = HipPrediction.objects.filter(model_version=version).aggregate(t=Max("created_at"))["t"]
    return (newest or timezone.now()) - POLL_OVERLAP


def worklist_page(*, query: WorklistQuery, version: ModelVersion | None = None, clamp: bool = False) -> WorklistPage:
    """The worklist rows of ``query`` for ``version`` (default: the active classifier), 50 a page.

    A page past the last is empty, or (``clamp``) the last page."""
    if version is None:
        version = active_model()
    threshold = flag_threshold(version)
    result = WorklistPage(version=version, query=query, threshold=threshold, cursor=worklist_cursor(version))
    if version is None:
        return result
    selection = _selection(version, threshold, query)
    result.count = selection.count()
    result.pages = max(1, math.ceil(result.count / PAGE_SIZE))
    if clamp and query.page > result.pages:
        result.query = query = replace(query, page=result.pages)
    start = (query.page - 1) * PAGE_SIZE
    result.rows = _rows(version, list(selection[start : start + PAGE_SIZE]), threshold)
    return result
