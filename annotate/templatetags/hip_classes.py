"""The words of a hip class in templates: ``{{ key|class_words }}`` turns "fn_displaced" into
"Displaced femoral neck fracture", the words of annotate.labels.HipClass that the labelling
page shows (static/js/boxes/vocabulary.js has the same). Data and the API keep the keys."""

from __future__ import annotations

import re
from typing import Any

from django import template

from annotate.labels import Exclusion, HipClass

register = template.Library()

_WORDS = dict(HipClass.choices)


@register.filter
def class_words(key: Any) -> str:
    """The class's words; anything that is not a class key is shown as it is."""
    return str(_WORDS.get(key, key))


_KEY = re.compile(r"\b[a-z_]+\b")
_EXCLUSION_WORDS = dict(Exclusion.choices)


@register.filter
def classes_in_words(text: Any) -> str:
    """Every class or exclusion key in a text in words ("left hip: fn_displaced / normal" ->
    "left hip: Displaced femoral neck fracture / Normal"), as the adjudication page shows it."""
    return _KEY.sub(lambda m: str(_WORDS.get(m.group(0)) or _EXCLUSION_WORDS.get(m.group(0)) or m.group(0)), str(text))
