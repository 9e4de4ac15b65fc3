"""``{% results_sendings %}``: the operations page's section on the results sent to the PACS
(``triage.results.sending.sendings_json``), which static/js/ops-results.js keeps up to date."""

from __future__ import annotations

from typing import Any

from django import template

from triage.results.sending import sendings_json

register = template.Library()


@register.inclusion_tag("triage/_results_sendings.html")
def results_sendings() -> dict[str, Any]:
    return {"sendings": sendings_json()}
