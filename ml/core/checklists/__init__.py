"""Reporting checklists (CLAIM, TRIPOD+AI, STARD-AI) as data, filled in from a report's facts.

A :class:`Checklist` is a tuple of :class:`Item`: number, topic, a short paraphrase, and either a
filler (facts -> text with the figures, or None when the facts lack it) or none, for what only the
authors can write. :func:`fill` gives the rows; :func:`to_markdown` writes them. Pure: no Django.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["AUTHORS", "NOT_RECORDED", "Checklist", "Item", "fill", "to_markdown"]

Facts = Mapping[str, Any]
Filler = Callable[[Facts], "str | None"]

AUTHORS = "not filled by the platform — the authors write this"
NOT_RECORDED = "not in this report's records — the authors write this"


@dataclass(frozen=True)
class Item:
    """One checklist item; ``filler`` None: the authors write it. ``where``: the file or section
    of the report that holds the figures."""

    number: str
    topic: str
    text: str
    filler: Filler | None = None
    where: str = ""


@dataclass(frozen=True)
class Checklist:
    key: str  # the file stem: claim, stard_ai, tripod_ai
    title: str
    reference: str
    items: tuple[Item, ...]

    def __post_init__(self) -> None:
        numbers = [item.number for item in self.items]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"{self.key}: item numbers repeat")


def fill(checklist: Checklist, facts: Facts) -> list[dict[str, Any]]:
    """One row per item: number, topic, text, ``filled`` (the platform wrote it), ``answer``, where."""
    rows = []
    for item in checklist.items:
        answer = item.filler(facts) if item.filler is not None else None
        rows.append(
            {
                "number": item.number,
                "topic": item.topic,
                "text": item.text,
                "claimed": item.filler is not None,
                "filled": bool(answer),
                "answer": answer or (AUTHORS if item.filler is None else NOT_RECORDED),
                "where": item.where if answer else "",
            }
        )
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(checklist: Checklist, rows: list[dict[str, Any]], *, subject: str) -> str:
    """The checklist as a Markdown table, with a line on what it covers."""
    filled = sum(r["filled"] for r in rows)
    lines = [
        f"# {checklist.title}",
        "",
        f"{subject}. {checklist.reference}",
        "",
        f"Filled by the platform from its records: {filled} of {len(rows)} items; the rest are for the authors.",
        "",
        "| Item | Topic | What it asks | Filled in from the records | Where |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = (r["number"], r["topic"], r["text"], r["answer"], r["where"])
        lines.append("| " + " | ".join(_cell(str(c)) for c in cells) + " |")
    return "\n".join(lines) + "\n"
