"""Every point where the platform departs from Krogue et al. 2020, or reads it one way among several.

One registry (:data:`REGISTRY`); the docs page (docs/research/deviations.md), each model page,
``metrics.json`` and study report list the entries that apply to their configuration, generated
from it. Pure Python: no Django import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ml.core.configs import CONFIGS

#: ``departure``: we do something the paper did not. ``reading``: the paper's text allows more
#: than one reading and we chose one.
KINDS = ("departure", "reading")
#: What a deviation concerns; also the sections of the docs page, in this order.
AREAS = ("classifier", "detector", "labelling", "reader study", "statistics")

Facts = Mapping[str, Any]


@dataclass(frozen=True)
class Deviation:
    """One departure or reading. ``applies(facts)`` says whether it holds for a given model or
    study; ``detail(facts)`` (optional) says how, in one sentence with that configuration's values."""

    key: str
    area: str
    kind: str
    title: str
    paper: str  # the paper's words (or "The paper says nothing of ...")
    choice: str  # what the platform does
    why: str
    restore: str  # how to get the paper's behaviour back ("" where there is nothing to restore)
    applies: Callable[[Facts], bool]
    detail: Callable[[Facts], str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.key}: kind must be one of {KINDS}")
        if self.area not in AREAS:
            raise ValueError(f"{self.key}: area must be one of {AREAS}")

    def as_row(self, facts: Facts | None = None) -> dict[str, str]:
        """JSON-ready: the entry, with ``detail`` rendered for ``facts`` when given."""
        row = {
            "key": self.key,
            "area": self.area,
            "kind": self.kind,
            "title": self.title,
            "paper": self.paper,
            "choice": self.choice,
            "why": self.why,
            "restore": self.restore,
        }
        if facts is not None and self.detail is not None:
            row["detail"] = self.detail(facts)
        return row


REGISTRY: list[Deviation] = []


def register(deviation: Deviation) -> Deviation:
    """Add an entry to the registry (keys are unique)."""
    if any(d.key == deviation.key for d in REGISTRY):
        raise ValueError(f"deviation {deviation.key!r} is registered twice")
    REGISTRY.append(deviation)
    return deviation


def applicable(area: str | Iterable[str], facts: Facts) -> list[dict[str, str]]:
    """The rows of the registry's entries of ``area`` that apply to ``facts``, in registry order."""
    areas = {area} if isinstance(area, str) else set(area)
    return [d.as_row(facts) for d in REGISTRY if d.area in areas and d.applies(facts)]


def classifier_facts(config: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a classifier configuration (``NetConfig.as_dict()``) the entries look at."""

    paper = CONFIGS["paper"].as_dict()
    return {**config, "paper": paper}


def classifier_deviations(config: Mapping[str, Any]) -> list[dict[str, str]]:
    """The deviations that apply to a classifier trained with ``config`` (a ``NetConfig`` dict)."""
    return applicable("classifier", classifier_facts(config))


def detector_deviations(config: Mapping[str, Any]) -> list[dict[str, str]]:
    """The deviations that apply to a detector trained with ``config`` (a ``DetectorConfig`` dict)."""
    return applicable("detector", dict(config))


def study_deviations(facts: Facts) -> list[dict[str, str]]:
    """The deviations that apply to a reader study's analysis. ``facts`` holds what the analysis
    used (see the entries of the areas ``reader study`` and ``statistics`` for the keys), and,
    under ``model_config``, the classifier's config, whose deviations are listed too."""
    rows = applicable(("labelling", "reader study", "statistics"), facts)
    model_config = facts.get("model_config")
    if model_config:
        rows += classifier_deviations(model_config)
    return rows


def _differs(field: str) -> Callable[[Facts], bool]:
    return lambda f: field in f and "paper" in f and f[field] != f["paper"][field]


# --------------------------------------------------------------------------- the classifier

register(
    Deviation(
        key="test-time-zoom-average",
        area="classifier",
        kind="departure",
        title="Test-time averaging over two zooms",
        paper="The paper scores each hip once, from its bounding-box crop at 224 x 224.",
        choice="The model's probabilities are the mean of its softmax on the crops at every zoom of `zooms`.",
        why="Opt-in: it can steady the answer on hips whose box is tight, at the cost of a protocol "
        "the paper did not use.",
        restore="Train with `test_time=single` (the default of every configuration).",
        applies=lambda f: f.get("test_time") == "zoom-average",
        detail=lambda f: f"zooms {list(f.get('zooms', []))} averaged",
    )
)
register(
    Deviation(
        key="random-init",
        area="classifier",
        kind="departure",
        title="Trained from random weights",
        paper='"The DenseNet was initialized with ImageNet-pretrained weights" and fine-tuned at a '
        "learning rate of 0.00001.",
        choice="The backbone started from random weights.",
        why="Asked for explicitly (`train --random-init`, the form's 'Train from random weights', "
        '`"random_init": true` in the API): without it `paper` refuses to start when `DENSENET169_WEIGHTS` '
        "names no file. Or the backbone has no ImageNet weights (the small CPU DenseNets).",
        restore="Set `DENSENET169_WEIGHTS` to the Keras DenseNet-169 ImageNet 'notop' .h5 file and train `paper`.",
        applies=lambda f: f.get("weights_path") in (None, ""),
    )
)
register(
    Deviation(
        key="smaller-network",
        area="classifier",
        kind="departure",
        title="A smaller network or input than the paper's",
        paper="DenseNet-169 on 224 x 224 x 3 hip crops.",
        choice="A DenseNet of other block counts and/or another input size.",
        why="Trains on a CPU in minutes (demo, tests, the phantom accuracy run).",
        restore="Train the `paper` configuration.",
        applies=lambda f: bool(_differs("blocks")(f) or _differs("input_size")(f) or _differs("backbone")(f)),
        detail=lambda f: f"{f.get('backbone')} blocks {list(f.get('blocks', []))} at {f.get('input_size')} px",
    )
)
register(
    Deviation(
        key="optimiser-settings",
        area="classifier",
        kind="departure",
        title="Other learning rate, batch size or patience",
        paper="Adam, learning rate 0.00001, batch size 25; stopped after 10 epochs without improvement.",
        choice="Other values of `learning_rate`, `batch_size` or `patience`.",
        why="A network trained from random weights does not learn at 1e-5; small CPU configurations "
        "use larger steps. `train --regime` scales the patience (and the epochs) by the images per hip "
        "and epoch, so that a config sees as many images under either regime.",
        restore="Train the `paper` configuration.",
        applies=lambda f: any(_differs(k)(f) for k in ("learning_rate", "batch_size", "patience")),
        detail=lambda f: ", ".join(
            f"{k} {f[k]} (paper {f['paper'][k]})" for k in ("learning_rate", "batch_size", "patience") if _differs(k)(f)
        ),
    )
)
register(
    Deviation(
        key="lr-decay-per-epoch",
        area="classifier",
        kind="reading",
        title='"Learning rate decay of 0.9" read as x 0.9 per epoch',
        paper='"learning rate decay of 0.9" (Keras 2.2.0).',
        choice="The learning rate is multiplied by 0.9 once per epoch.",
        why="Keras 2.2's `Adam(decay=0.9)` would divide the rate by 1 + 0.9 x iterations, about 1/90 "
        "after 100 steps, which would all but stop learning within the first epoch; we read the "
        "sentence as the more plausible per-epoch decay.",
        restore="Train with `lr_schedule=keras2_inverse_time`, the literal Keras 2.2 reading.",
        applies=lambda f: f.get("lr_schedule") == "per_epoch" and f.get("lr_decay", 1.0) != 1.0,
    )
)
register(
    Deviation(
        key="lr-decay-keras2",
        area="classifier",
        kind="reading",
        title='"Learning rate decay of 0.9" read as Keras 2.2\'s inverse-time decay',
        paper='"learning rate decay of 0.9" (Keras 2.2.0).',
        choice="lr / (1 + 0.9 x iterations), as Keras 2.2's `Adam(decay=0.9)` computed it.",
        why="The literal reading of the paper's software.",
        restore="`lr_schedule=per_epoch` is the other reading; neither is certain.",
        applies=lambda f: f.get("lr_schedule") == "keras2_inverse_time",
    )
)
register(
    Deviation(
        key="class-weights-sqrt",
        area="classifier",
        kind="reading",
        title="Class weights: square root of the balanced weights",
        paper='"weighted cross-entropy loss ... to compensate for the difference in prevalence of each '
        'hip class" (no formula).',
        choice="Class c weighs sqrt(n / (6 n_c)).",
        why="With the full balanced weights the phantom model called a third of normal hips "
        "fractures and its validation accuracy swung between 0.64 and 0.90 from epoch to epoch.",
        restore="Train with `class_weighting=balanced` (n / (6 n_c)).",
        applies=lambda f: f.get("class_weighting") == "sqrt",
    )
)
register(
    Deviation(
        key="batchnorm-recalibration",
        area="classifier",
        kind="departure",
        title="BatchNorm statistics re-estimated before each validation",
        paper="The paper says nothing of BatchNorm statistics.",
        choice="Before each validation (and for the final model) the BatchNorm moving averages are "
        "re-estimated on clean training crops.",
        why="On a small data set the moving averages kept by training drift far from them, and "
        "validation accuracy (hence early stopping and model choice) swung between 0.15 and 0.9.",
        restore="Train with `recalibrate_bn=false`.",
        applies=lambda f: bool(f.get("recalibrate_bn", False)),
    )
)
register(
    Deviation(
        key="online-random-regime",
        area="classifier",
        kind="departure",
        title="Online random augmentation instead of the paper's fixed expansion",
        paper='"each hip in the training set appeared twice, with differing sizes of bounding boxes. To '
        'each of these images, we applied data augmentation ... to generate six additional images."',
        choice="Each epoch shows each hip once, at a random zoom, with each augmentation applied with "
        "probability 0.5 (they can stack).",
        why="The default of the small CPU configurations: on the phantoms (400 studies, seed 7, `cpu-small`) it "
        "reached a test accuracy of 0.938 against 0.916 under `paper-fixed` with as many images seen, in "
        "less time (one run each; the 95% CIs overlap). But an epoch is 1/8 of the paper's, so patience and "
        "per-epoch decay act about 8x sooner per image seen.",
        restore="Train with `regime=paper-fixed` (2 zooms x (plain + 3 augmentations) = 8 images per hip per epoch).",
        applies=lambda f: f.get("regime") == "online-random",
    )
)
register(
    Deviation(
        key="augmentation-magnitudes",
        area="classifier",
        kind="reading",
        title="Augmentation magnitudes and the larger box size",
        paper='"three types of contrast changing cutout, Gaussian-mixture masking, and bounding box '
        'wiggling"; "differing sizes of bounding boxes" (no magnitudes).',
        choice="Cutout patches of 20-50 % of the crop with a contrast factor 0.25-2.0; 1-4 Gaussians of "
        "width 8-25 % and amplitude 0.15-0.45; box wiggle up to 8 %; second box 1.5 x the first.",
        why="The paper gives no figures; these keep the hip recognisable.",
        restore="",
        applies=lambda f: True,
        detail=lambda f: f"zooms {list(f.get('zooms', []))}",
    )
)
register(
    Deviation(
        key="epoch-cap",
        area="classifier",
        kind="reading",
        title="A maximum number of epochs",
        paper="Training stopped after 10 epochs without improvement (no maximum given).",
        choice="Training also stops at `epochs`.",
        why="A run must end on a machine with a time budget.",
        restore="Raise `epochs`.",
        applies=lambda f: True,
        detail=lambda f: f"at most {f.get('epochs')} epochs",
    )
)

# --------------------------------------------------------------------------- the detector

register(
    Deviation(
        key="detector-pretraining",
        area="detector",
        kind="departure",
        title="Detector not pretrained on ImageNet and COCO",
        paper='"The model was pretrained on ImageNet classification and COCO ... object detection datasets."',
        choice="The ResNet-50 encoder starts from ImageNet weights when `RESNET50_WEIGHTS` is set, "
        "otherwise from random weights; the detection heads always start from random weights.",
        why="No COCO-trained RetinaNet weights can be loaded here; keras-hub's RetinaNet is trained from its encoder.",
        restore="Set `RESNET50_WEIGHTS`; COCO pretraining of the heads is not available.",
        applies=lambda f: True,
        detail=lambda f: "encoder: ImageNet" if f.get("weights_path") else "encoder: random weights",
    )
)
register(
    Deviation(
        key="detector-keras-retinanet",
        area="detector",
        kind="departure",
        title="keras-hub RetinaNet instead of the TensorFlow Object Detection API",
        paper="A single-shot detector (RetinaNet) with a ResNet-50 feature pyramid network, TensorFlow "
        "Object Detection API, 25 000 iterations, batch size 16, NMS IoU 0.3, one box per class.",
        choice="keras-hub's RetinaNet with a ResNet-50 FPN, trained by epochs with early stopping on "
        "the validation IoU, NMS IoU 0.3 and one box per side.",
        why="The Object Detection API does not run on current TensorFlow.",
        restore="",
        applies=lambda f: True,
    )
)

# --------------------------------------------------------------------------- labelling
# Facts (annotate.labelling.provenance.proposal_facts): proposals_show_class (the site shows, or some
# ground-truth hip was labelled with, the model's class), proposal_share and
# proposal_class_kept_share (of the ground-truth hips, 0 to 1).

register(
    Deviation(
        key="proposal-class-shown",
        area="labelling",
        kind="departure",
        title="Labellers were shown the model's class with its proposals",
        paper="The paper's labellers drew and classified every hip by hand; no model took part in labelling.",
        choice="With `PROPOSALS_SHOW_CLASS` on, each proposed box on the labelling page carries the "
        "classifier's class; a labeller may keep it.",
        why="A site's choice, to label faster. The model is later scored against a truth that partly holds "
        "its own opinion, which favours it.",
        restore="Leave `PROPOSALS_SHOW_CLASS` off (the default): proposals are boxes only, or label without "
        "an active detector.",
        applies=lambda f: f.get("proposals_show_class") is True,
        detail=lambda f: (
            f"{100 * (f.get('proposal_class_kept_share') or 0):.1f}% of ground-truth hips kept the model's shown class"
        ),
    )
)
register(
    Deviation(
        key="proposal-boxes",
        area="labelling",
        kind="departure",
        title="Ground-truth boxes from the detector's proposals",
        paper="The paper's labellers drew every box by hand; no model took part in labelling.",
        choice="Labellers may accept the detector's proposed box (class chosen by the labeller); each label "
        "records whether it began as a proposal, and the agreement page and Table 1 give the share.",
        why="Faster labelling; the class, which the model is scored on, stays the labeller's own.",
        restore="Label without an active detector, so that no proposals are made.",
        applies=lambda f: (f.get("proposal_share") or 0) > 0,
        detail=lambda f: f"{100 * f['proposal_share']:.1f}% of ground-truth hips came from a proposal",
    )
)


def markdown() -> str:
    """The deviations docs page, rendered from :data:`REGISTRY` (``manage.py deviations``)."""
    lines = [
        "# Deviations from the paper",
        "",
        "Every point where the platform departs from Krogue et al. 2020 (*departure*), or reads its",
        "text one way among several (*reading*). Each model page, `metrics.json` and each reader-study",
        "report lists the entries that apply to it, generated from its configuration. This page is",
        "generated from `ml/core/deviations.py` by `python manage.py deviations --markdown`; a test",
        "keeps it in step.",
        "",
    ]
    for area in AREAS:
        entries = [d for d in REGISTRY if d.area == area]
        if not entries:
            continue
        lines += [f"## {area.capitalize()}", ""]
        for d in entries:
            lines += [
                f"### {d.title}",
                "",
                f"`{d.key}` · {d.kind}",
                "",
                f"- **The paper:** {d.paper}",
                f"- **Our choice:** {d.choice}",
                f"- **Why:** {d.why}",
                f"- **The paper's behaviour:** {d.restore or 'not available here.'}",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- reader study and statistics
# Facts of a study's analysis (readerstudy.report.reader_report.study_facts): margin_source ("pairs" or
# "argument"), margin, margin_empirical, estimate, iterations, seed, readers_per_training (the most
# readers of one group and training), test_time (how the model's phase-1 readings were frozen) and
# model_config (the classifier's config, or None when unknown).

PAPER_ITERATIONS = 2000

register(
    Deviation(
        key="study-test-time-zoom-average",
        area="reader study",
        kind="departure",
        title="The model's frozen readings average two zooms",
        paper='Readers were "shown the 100 images exactly as input into the model" (model-quality images).',
        choice="The model's frozen answer for each case is the mean of its answers on the crops at every zoom.",
        why="The study was frozen with a model version whose test-time protocol is `zoom-average`.",
        restore="Freeze the study's readings with `test_time=single`: the model reads the one zoom-1.0 crop "
        "the readers see.",
        applies=lambda f: f.get("test_time") == "zoom-average",
    )
)
register(
    Deviation(
        key="margin-given",
        area="statistics",
        kind="departure",
        title="Noninferiority margin given by hand",
        paper="The margin is the mean difference in Cohen's kappa between two observers of the same training, "
        "over all conditions and both tasks (0.103 in the paper).",
        choice="The margin was passed to the analysis (`--margin` or the report form) instead of being computed "
        "from the readers.",
        why="A study without two readers of one group and training has no empirical margin; a margin can also "
        "be fixed in advance, e.g. the paper's 0.103.",
        restore="Leave the margin empty: it is then the mean |kappa difference| over same-group, same-training pairs.",
        applies=lambda f: f.get("margin_source") == "argument",
        detail=lambda f: (
            f"margin {f.get('margin')} given; the readers' pairs give "
            + ("none (no pair)" if f.get("margin_empirical") is None else f"{f['margin_empirical']:.3f}")
        ),
    )
)
register(
    Deviation(
        key="estimate-all-cases",
        area="statistics",
        kind="departure",
        title="Point estimates on all cases instead of the bootstrap mean",
        paper='"we then reported the mean and 95% confidence interval (CI) of the bootstrapped statistic".',
        choice="The tables and the forest plot show each statistic computed once on all cases, next to the "
        "bootstrap CI.",
        why="Asked for (`--estimate all-cases`): the all-case figure does not depend on the seed.",
        restore="Use `--estimate bootstrap-mean` (the default).",
        applies=lambda f: f.get("estimate") == "all-cases",
    )
)
register(
    Deviation(
        key="bootstrap-iterations",
        area="statistics",
        kind="departure",
        title="Another number of bootstrap iterations",
        paper='"bootstrapping with 2000 iterations".',
        choice="The CIs come from another number of bootstrap samples.",
        why="Asked for (`--iterations`), e.g. for a quick look.",
        restore="Use 2000 iterations (the default).",
        applies=lambda f: f.get("iterations") not in (None, PAPER_ITERATIONS),
        detail=lambda f: f"{f.get('iterations')} iterations (paper {PAPER_ITERATIONS})",
    )
)
register(
    Deviation(
        key="margin-all-pairs",
        area="statistics",
        kind="reading",
        title="Margin over every pair when a training has more than two readers",
        paper="The paper had two readers of each training and took the difference of each such pair.",
        choice="With more than two readers of one group and training, every pair of them counts once.",
        why="The natural extension of the paper's pairs; no pair is privileged.",
        restore="Recruit two readers per group and training.",
        applies=lambda f: (f.get("readers_per_training") or 0) > 2,
        detail=lambda f: f"up to {f.get('readers_per_training')} readers of one group and training",
    )
)
register(
    Deviation(
        key="group-kappa-mean",
        area="statistics",
        kind="reading",
        title="A group's kappa, sensitivity and specificity are the means of its readers'",
        paper='"key performance metrics were calculated for each group of observers" (no formula).',
        choice="A group's kappa is the mean of its members' kappas (per bootstrap sample for the CI); its "
        "sensitivity and specificity are the means of its members'.",
        why="Every member reads every case, so the mean is the pooled figure for sensitivity and specificity, "
        "and each reader weighs the same in the group's kappa.",
        restore="",
        applies=lambda f: True,
    )
)
register(
    Deviation(
        key="roc-band-rule",
        area="statistics",
        kind="reading",
        title="The binary 'superior' rule: the group's point below the lower band",
        paper='"when determining if performance in binary classification of the model exceeds a group of human '
        "observers, we also require the model's ROC curve confidence bands to exceed the sensitivity and "
        'specificity point of that group".',
        choice="Model vs a group, binary: `superior` needs the kappa CI above 0 and the group's (1 - specificity, "
        "sensitivity) strictly below the lower edge of the model's 95% band (vertical averaging on the same "
        "bootstrap samples) at that 1 - specificity; otherwise the usual CI rule, so at best `noninferior`. "
        "No band (one class only): not superior.",
        why="'Exceed the point' read as the whole band lying above the point at its false-positive rate.",
        restore="",
        applies=lambda f: True,
    )
)
register(
    Deviation(
        key="model-binary-threshold",
        area="statistics",
        kind="reading",
        title="The model's binary answer: P(fracture) >= 0.5",
        paper="The paper does not state how the model's binary answer was taken from its probabilities.",
        choice="Fracture when the summed probability of the three fracture classes is at least 0.5.",
        why="The natural cut for a probability; the six-class answer is the argmax.",
        restore="",
        applies=lambda f: True,
    )
)
register(
    Deviation(
        key="multiclass-sens-spec-macro",
        area="statistics",
        kind="reading",
        title="Six-class sensitivity and specificity of an observer: macro one-vs-rest averages",
        paper="Table 2 gives one-vs-rest figures per class for the model; one figure per observer is not defined.",
        choice="An observer's six-class sensitivity and specificity are the means of the one-vs-rest figures over "
        "the six classes (a class absent from the truth is left out of the sensitivity's mean).",
        why="One figure per observer for Tables 3-5; kappa, not these, decides the verdicts.",
        restore="",
        applies=lambda f: True,
    )
)
