"""The deviations from the paper (ml.core.deviations): one registry, each model's list generated from its config."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from ml.core import deviations
from ml.core.configs import CONFIGS, NetConfig, get_config
from ml.core.detector import get_detector_config

DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "research" / "deviations.md"


def keys(rows: list[dict[str, str]]) -> set[str]:
    return {row["key"] for row in rows}


def test_every_entry_says_the_papers_words_our_choice_why_and_kind() -> None:
    assert len({d.key for d in deviations.REGISTRY}) == len(deviations.REGISTRY)
    for d in deviations.REGISTRY:
        assert d.paper and d.choice and d.why and d.title, d.key
        assert d.kind in deviations.KINDS and d.area in deviations.AREAS


def test_a_key_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        deviations.register(deviations.REGISTRY[0])


def test_the_paper_config_with_imagenet_weights_lists_only_readings_and_stated_choices() -> None:
    config = get_config("paper", weights_path="/models/densenet169_notop.h5").as_dict()
    rows = deviations.classifier_deviations(config)
    assert "random-init" not in keys(rows)
    assert "smaller-network" not in keys(rows)
    assert "optimiser-settings" not in keys(rows)
    assert "test-time-zoom-average" not in keys(rows)
    assert "online-random-regime" not in keys(rows)


def test_each_named_choice_brings_its_own_entry() -> None:
    base = get_config("paper", weights_path="/w.h5")
    assert "random-init" in keys(deviations.classifier_deviations(base.replace(weights_path=None).as_dict()))
    zoom = deviations.classifier_deviations(base.replace(test_time="zoom-average").as_dict())
    assert "test-time-zoom-average" in keys(zoom)
    assert next(r for r in zoom if r["key"] == "test-time-zoom-average")["detail"] == "zooms [1.0, 1.5] averaged"
    online = deviations.classifier_deviations(base.replace(regime="online-random").as_dict())
    assert "online-random-regime" in keys(online)
    keras2 = keys(deviations.classifier_deviations(base.replace(lr_schedule="keras2_inverse_time").as_dict()))
    assert "lr-decay-keras2" in keras2 and "lr-decay-per-epoch" not in keras2
    assert "class-weights-sqrt" not in keys(
        deviations.classifier_deviations(base.replace(class_weighting="balanced").as_dict())
    )
    assert "batchnorm-recalibration" not in keys(
        deviations.classifier_deviations(base.replace(recalibrate_bn=False).as_dict())
    )


def test_a_small_config_names_the_values_that_differ() -> None:
    rows = {r["key"]: r for r in deviations.classifier_deviations(CONFIGS["cpu-small"].as_dict())}
    assert "smaller-network" in rows and "random-init" in rows
    detail = rows["optimiser-settings"]["detail"]
    assert "learning_rate 0.001 (paper 1e-05)" in detail and "batch_size 32 (paper 25)" in detail
    assert "patience" not in detail  # cpu-small keeps the paper's patience of 10


def test_a_stored_config_from_before_the_choices_existed_is_listed_as_what_it_was() -> None:
    legacy = {k: v for k, v in CONFIGS["cpu-small"].as_dict().items() if k not in ("test_time", "regime")}
    config = NetConfig.from_dict(legacy)
    assert (config.test_time, config.regime) == ("zoom-average", "online-random")
    listed = keys(deviations.classifier_deviations(config.as_dict()))
    assert {"test-time-zoom-average", "online-random-regime"} <= listed


def test_the_detector_states_its_pretraining() -> None:
    rows = {r["key"]: r for r in deviations.detector_deviations(get_detector_config("cpu-small").as_dict())}
    assert rows["detector-pretraining"]["detail"] == "encoder: random weights"
    with_imagenet = get_detector_config("cpu-small").replace(weights_path="/r50.h5").as_dict()
    assert deviations.detector_deviations(with_imagenet)[0]["detail"] == "encoder: ImageNet"


def test_the_docs_page_is_the_registry_rendered() -> None:
    assert DOCS_PAGE.read_text() == deviations.markdown(), "run: python manage.py deviations --markdown > " + str(
        DOCS_PAGE.relative_to(DOCS_PAGE.parents[2])
    )
    for d in deviations.REGISTRY:
        assert f"`{d.key}`" in DOCS_PAGE.read_text()


def test_the_command_prints_the_page_and_the_list() -> None:
    out = io.StringIO()
    call_command("deviations", "--markdown", stdout=out)
    assert out.getvalue() == deviations.markdown()
    out = io.StringIO()
    call_command("deviations", stdout=out)
    assert len(out.getvalue().splitlines()) == len(deviations.REGISTRY)
