"""The simulated reader (``readerstudy.simulation``): a pure function of truth, the model's top class,
group, condition and a generator. Over many draws experts beat residents and each group improves
from the model's crop to the full radiograph to the model-aided reading; mistakes are plausible
confusions; the same generator seed gives the same answers."""

from __future__ import annotations

import numpy as np
import pytest

from readerstudy import simulation
from readerstudy.simulation import CLASSES, CONFUSIONS, FULL_QUALITY, MODEL_AIDED, MODEL_QUALITY, simulated_answer

DRAWS = 2000
# Class frequencies of a hip study: mostly normal hips.
PREVALENCE = [0.4, 0.15, 0.1, 0.15, 0.1, 0.1]


def _cases(rng: np.random.Generator, n: int, model_right: float = 0.9) -> tuple[list[str], list[str]]:
    """(truths, model top classes) with the model right about ``model_right`` of the time."""
    truths = [CLASSES[int(i)] for i in rng.choice(len(CLASSES), size=n, p=PREVALENCE)]
    model = [t if rng.random() < model_right else simulation.mistaken_for(t, rng) for t in truths]
    return truths, model


def _accuracies(group: str, *, seed: int = 0, model_right: float = 0.9) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    truths, model = _cases(rng, DRAWS, model_right)
    answers: dict[str, list[str]] = {c: [] for c in simulation.CONDITIONS}
    for truth, top in zip(truths, model, strict=True):
        for condition in (MODEL_QUALITY, FULL_QUALITY):
            answers[condition].append(simulated_answer(truth=truth, group=group, condition=condition, rng=rng))
        own = answers[FULL_QUALITY][-1]
        answers[MODEL_AIDED].append(
            simulated_answer(truth=truth, group=group, condition=MODEL_AIDED, rng=rng, model_top=top, own=own)
        )
    return {c: simulation.accuracy(truths, a) for c, a in answers.items()}


def test_accuracy_orders_groups_and_conditions() -> None:
    expert, resident = _accuracies("expert"), _accuracies("resident")
    for condition in simulation.CONDITIONS:
        assert expert[condition] > resident[condition], condition
    for group in (expert, resident):
        assert group[MODEL_QUALITY] < group[FULL_QUALITY] < group[MODEL_AIDED]
    # Near the configured accuracies (2000 draws: a standard error of about 0.01).
    assert expert[MODEL_QUALITY] == pytest.approx(0.78, abs=0.04)
    assert expert[FULL_QUALITY] == pytest.approx(0.86, abs=0.04)
    assert resident[MODEL_QUALITY] == pytest.approx(0.62, abs=0.04)
    assert resident[FULL_QUALITY] == pytest.approx(0.72, abs=0.04)
    assert 0.86 < expert[MODEL_AIDED] < 0.97
    assert 0.78 < resident[MODEL_AIDED] < 0.95


def test_the_aid_helps_less_when_the_model_is_often_wrong() -> None:
    good, poor = _accuracies("resident", model_right=0.9), _accuracies("resident", model_right=0.5)
    assert good[MODEL_AIDED] > poor[MODEL_AIDED]


def test_mistakes_are_plausible_confusions() -> None:
    rng = np.random.default_rng(1)
    for truth in CLASSES:
        wrong = [simulation.mistaken_for(truth, rng) for _ in range(300)]
        assert truth not in wrong
        assert set(wrong) <= set(CONFUSIONS[truth])
    # The commonest mistake for a nondisplaced neck fracture is to call it normal.
    answers = [
        simulated_answer(truth="fn_nondisplaced", group="resident", condition=MODEL_QUALITY, rng=rng)
        for _ in range(DRAWS)
    ]
    mistakes = [a for a in answers if a != "fn_nondisplaced"]
    assert max(set(mistakes), key=mistakes.count) == "normal"


def test_aided_answer_follows_the_model_more_often_when_it_is_right() -> None:
    rng = np.random.default_rng(2)

    def switched(truth: str, own: str, top: str) -> float:
        answers = [
            simulated_answer(truth=truth, group="expert", condition=MODEL_AIDED, rng=rng, model_top=top, own=own)
            for _ in range(DRAWS)
        ]
        return answers.count(top) / DRAWS

    model_right = switched("fn_nondisplaced", own="normal", top="fn_nondisplaced")
    model_wrong = switched("normal", own="normal", top="fn_nondisplaced")
    assert model_right > 0.5 > 0.25 > model_wrong > 0.0
    # Agreeing with the model: the phase-2 answer stands.
    assert simulated_answer(truth="orif", group="resident", condition=MODEL_AIDED, rng=rng, model_top="normal",
                            own="normal") == "normal"  # fmt: skip


def test_same_seed_same_answers() -> None:
    def draw(seed: int) -> list[str]:
        out = []
        for number in range(1, 60):
            rng = simulation.case_rng(seed, "R01", number, FULL_QUALITY)
            truth = CLASSES[number % len(CLASSES)]
            out.append(simulated_answer(truth=truth, group="resident", condition=FULL_QUALITY, rng=rng))
        return out

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)
    assert simulation.reader_skill(5, "R01") == simulation.reader_skill(5, "R01")
    assert simulation.reader_skill(5, "R01") != simulation.reader_skill(5, "R02")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"truth": "broken", "group": "expert", "condition": FULL_QUALITY}, "unknown class"),
        ({"truth": "normal", "group": "student", "condition": FULL_QUALITY}, "unknown group"),
        ({"truth": "normal", "group": "expert", "condition": "blind"}, "unknown condition"),
        ({"truth": "normal", "group": "expert", "condition": MODEL_AIDED}, "needs the model's top class"),
    ],
)
def test_bad_input_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulated_answer(rng=np.random.default_rng(0), **kwargs)
