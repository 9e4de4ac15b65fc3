"""``{% power_plan_card study %}``: the power-plan card of a study's page (the form and the plans)."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from readerstudy import power_plans
from readerstudy.models import ReaderStudy

register = template.Library()


@register.inclusion_tag("readerstudy/_power_plan.html")
def power_plan_card(study: ReaderStudy, form: Any = None) -> dict[str, Any]:
    from readerstudy.power_views import PlanForm  # deferred: views import the models at load

    plans = [{**p, "url": reverse("study_power_detail", args=[study.pk, p["id"]])} for p in power_plans.plans_of(study)]
    return {"study": study, "power_form": form or PlanForm(), "plans": plans}
