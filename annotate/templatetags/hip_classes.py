"""The words of a hip class in templates: ``{{ key|class_words }}`` turns "fn_displaced" into
"Displaced femoral neck fracture", the words of annotate.labels.HipClass that the labelling
page shows (static/js/boxes/vocabulary.js has the same). Data and the API keep the keys."""

from __future__ import annotations

from typing import Any

from django import template

from annotate.labels import HipClass

register = template.Library()

_WORDS = dict(HipClass.choices)


@register.filter
def class_words(key: Any) -> str:
    """The class's words; anything that is not a class key is shown as it is."""
    return str(_WORDS.get(key, key))
