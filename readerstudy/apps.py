from typing import Any

from django.apps import AppConfig
from django.http import HttpRequest, HttpResponse

from common.audit import EXPORT, Audited


def _reader_case_shown(request: HttpRequest, response: HttpResponse, kwargs: dict[str, Any]) -> str:
    """The case a reader's /current/ reply put on the screen (none between phases)."""
    data = getattr(response, "data", None)
    case = data.get("case") if isinstance(data, dict) else None
    return str(case["id"]) if isinstance(case, dict) and case.get("id") is not None else ""


def _reader_case_answered(request: HttpRequest, response: HttpResponse, kwargs: dict[str, Any]) -> str:
    """The case a reader's answer was stored for (none when the answer was refused)."""
    data = getattr(response, "data", None)
    answer = data.get("answer") if isinstance(data, dict) else None
    return str(answer["case"]) if isinstance(answer, dict) and answer.get("case") is not None else ""


class ReaderstudyConfig(AppConfig):
    name = "readerstudy"
    verbose_name = "Reader studies"
    # The URLs of this app that the access log records (common.audit): the case on a reader's
    # screen, its crop, pixels and heatmap; the study's exports.
    audited = {
        "reading_page": Audited("reader_study"),
        "reader-current": Audited("reader_case", _reader_case_shown),
        "reader-answer": Audited("reader_case", _reader_case_answered),
        "reader-case-crop": Audited("reader_case"),
        "reader-case-pixels": Audited("reader_case"),
        "reader-case-heatmap": Audited("reader_case"),
        "study_export_file": Audited("reader_study", action=EXPORT),
        "study_report_file": Audited("reader_study", action=EXPORT),
    }
