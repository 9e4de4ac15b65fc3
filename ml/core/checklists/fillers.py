"""What the platform writes for a checklist item, from a report's facts (see docs/research/checklists.md).

Each filler takes the facts dict (``data``, ``flow``, ``deidentification``, ``labelling``,
``provenance``, ``table1``, ``model``, ``evaluation``, ``study``, ``statistics``, ``deviations``)
and returns a sentence with the figures, or None where the facts it reads are absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Facts = Mapping[str, Any]

HEADLINE = (
    ("binary_accuracy", "binary accuracy"),
    ("binary_sensitivity", "sensitivity"),
    ("binary_specificity", "specificity"),
    ("binary_auc", "AUC"),
    ("multiclass_accuracy", "six-class accuracy"),
    ("binary_kappa", "binary κ"),
    ("multiclass_kappa", "six-class κ"),
)


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(figure: Any) -> str:
    """``0.912 (95% CI 0.880–0.940)`` from ``{"mean"|"estimate", "ci_low", "ci_high"}``."""
    if not isinstance(figure, Mapping):
        return _num(figure)
    value = figure.get("mean", figure.get("estimate"))
    if figure.get("ci_low") is None:
        return _num(value)
    return f"{_num(value)} (95% CI {_num(figure['ci_low'])}–{_num(figure['ci_high'])})"


def _counts(counts: Mapping[str, int]) -> str:
    items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{k or 'not recorded'} {n}" for k, n in items) or "none"


def data_sources(f: Facts) -> str | None:
    d = f.get("data")
    if not d:
        return None
    dates = f"study dates {d['date_first']} to {d['date_last']}" if d.get("date_first") else "study dates not recorded"
    return (
        f"{d['radiographs']} radiographs of {d['patients']} patients in the dataset version ({dates}); "
        f"modalities: {_counts(d['modalities'])}; scanners (manufacturer and model): {_counts(d['scanners'])}; "
        f"views: {_counts(d['views'])}."
    )


def eligibility(f: Facts) -> str | None:
    flow = f.get("flow")
    if not flow:
        return None
    return (
        f"Grayscale DICOM radiographs; {flow['received']} received, {flow['rejected_total']} rejected at ingest "
        f"({_counts(flow['rejected'])}), {flow['excluded_total']} excluded at labelling ({_counts(flow['excluded'])}), "
        f"{flow['pending']} not yet ground truth, {flow['labelled']} labelled (see flow.svg)."
    )


def deidentification(f: Facts) -> str | None:
    d = f.get("deidentification")
    if not d:
        return None
    return (
        f"At ingest, before anything is stored: {d['profile']} ({d['tool']}); dates {d['dates']}; patients and "
        "studies kept under keyed pseudonyms only."
    )


def reference_standard(f: Facts) -> str | None:
    lab = f.get("labelling")
    if not lab:
        return None
    return (
        f"Each radiograph labelled blind by {lab['per_radiograph']} labellers (box and one of six classes per hip; "
        f"{lab['labellers']} labellers submitted work). Agreement: same exclusion, same hips, same class and box IoU ≥ "
        f"{lab['iou']}; otherwise adjudication. {lab['agreed']} radiographs agreed, {lab['adjudicated']} adjudicated "
        f"(truth from {_counts(lab['truth_sources'])}). Tool: {lab['tool']}."
    )


def labeller_agreement(f: Facts) -> str | None:
    lab = f.get("labelling")
    if not lab:
        return None
    six, binary = lab.get("kappa_six_class"), lab.get("kappa_binary")
    six_ci, binary_ci = lab.get("kappa_six_class_ci"), lab.get("kappa_binary_ci")

    def with_ci(value: Any, ci: Any) -> str:
        return _num(value) + (f" (95% CI {_num(ci[0])}–{_num(ci[1])})" if ci else "")

    return (
        f"Inter-labeller Cohen's κ over {lab['hips_compared']} hips of {lab['radiographs_double_read']} double-read "
        f"radiographs: six-class {with_ci(six, six_ci)}, fracture vs not {with_ci(binary, binary_ci)}; "
        f"disagreements resolved by adjudication ({lab['adjudicated']} radiographs)."
    )


def proposals(f: Facts) -> str | None:
    p = f.get("provenance")
    if not p or not p.get("hips"):
        return None
    shown = "shown" if (f.get("labelling") or {}).get("proposals_show_class") else "not shown"
    return (
        f"{p['from_proposal']} of {p['hips']} hips ({p['from_proposal_percent']:.1f}%) began as a model's proposal "
        f"(box accepted, then checked); the proposal's class was {shown} to labellers."
    )


def split(f: Facts) -> str | None:
    t = f.get("table1")
    if not t:
        return None
    parts = [
        f"{s['split']} {s['patients']} patients / {s['radiographs']} radiographs / {s['hips']} hips"
        for s in t["per_split"]
    ]
    chi2 = t.get("chi2_multiclass")
    test = f"; χ² across splits (six classes) P = {chi2['p']:.3f}" if chi2 else ""
    return (
        f"Split by patient (no patient in two parts), stratified by class, seed {t['seed']}: "
        f"{'; '.join(parts)}{test} (Table 1 on the dataset page)."
    )


def demographics(f: Facts) -> str | None:
    t = f.get("table1")
    if not t:
        return None
    parts = []
    for s in t["per_split"]:
        age = "age n/a" if s["age_mean"] is None else f"age {s['age_mean']:.1f}±{(s['age_sd'] or 0):.1f}"
        female = "female n/a" if s["female_percent"] is None else f"female {s['female_percent']:.1f}%"
        parts.append(f"{s['split']}: {age}, {female}")
    return "; ".join(parts) + " (Table 1)."


def preprocessing(f: Facts) -> str | None:
    m = f.get("model")
    if not m:
        return None
    c = m["config"]
    return (
        f"Window from the DICOM header, each hip cropped around its box at zooms {c.get('zooms')}, resized to "
        f"{c.get('input_size')}×{c.get('input_size')} pixels; test-time protocol '{c.get('test_time')}'."
    )


def model(f: Facts) -> str | None:
    m = f.get("model")
    if not m:
        return None
    c = m["config"]
    return (
        f"Model version {m['version']} ('{m['config_name']}'): {c.get('backbone')} blocks {c.get('blocks')}, "
        f"growth {c.get('growth_rate')}, six-class softmax on a {c.get('input_size')}-pixel hip crop; "
        f"bundle SHA-256 {m['bundle_sha256']}; frameworks {m.get('frameworks') or 'not recorded'}."
    )


def pretraining(f: Facts) -> str | None:
    m = f.get("model")
    return None if not m else f"Initialisation: {m['pretraining']}."


def training(f: Facts) -> str | None:
    m = f.get("model")
    if not m:
        return None
    c = m["config"]
    curve = m.get("curve") or {}
    shown = (
        f"; trained {curve['epochs']} epochs, best validation accuracy {_num(curve.get('best'))} at epoch "
        f"{curve.get('best_epoch')} (training curve on the model page)"
        if curve.get("epochs")
        else "; no training curve recorded (bundle imported)"
    )
    return (
        f"Learning rate {c.get('learning_rate')} decayed ×{c.get('lr_decay')} ({c.get('lr_schedule')}), batch "
        f"{c.get('batch_size')}, at most {c.get('epochs')} epochs, patience {c.get('patience')}, class weighting "
        f"{c.get('class_weighting')}, regime {c.get('regime')}{shown}."
    )


def metrics(f: Facts) -> str | None:
    parts = []
    ev = f.get("evaluation")
    if ev:
        figures = ", ".join(f"{label} {_ci(ev[key])}" for key, label in HEADLINE if key in ev)
        parts.append(f"Test split ({ev.get('n_cases')} hips, {ev.get('n_patients')} patients): {figures}")
    study = f.get("study")
    if study and study.get("model_on_cases"):
        figures = ", ".join(f"{k} {_ci(v)}" for k, v in study["model_on_cases"].items())
        parts.append(f"Reader-study cases ({study['cases']} hips): {figures}")
    if not parts:
        return None
    return "; ".join(parts) + ". CIs: 95% percentile intervals over the patient bootstrap."


def calibration(f: Facts) -> str | None:
    ev = f.get("evaluation")
    if ev is None and not f.get("study"):
        return None
    cal = (ev or {}).get("calibration")
    if not cal:
        return "Calibration: not computed for this model version."
    binary = cal["binary"]
    return f"P(fracture): ECE {_ci(binary['ece'])}, Brier {_ci(binary['brier'])} (10 equal-width bins)."


def subgroups(f: Facts) -> str | None:
    ev = f.get("evaluation")
    if ev is None and not f.get("study"):
        return None
    groups = (ev or {}).get("subgroups")
    if not groups:
        return "Subgroups: not computed for this model version."
    return "Subgroup results by " + ", ".join(f"{k} ({len(v)} values)" for k, v in groups.items()) + " (metrics.json)."


def readers(f: Facts) -> str | None:
    s = f.get("study")
    if not s:
        return None
    return (
        f"{len(s['readers'])} readers who answered every case: {_counts(s['reader_groups'])}; training: "
        f"{_counts(s['reader_trainings'])}. Experience in years is not recorded."
    )


def reading_protocol(f: Facts) -> str | None:
    s = f.get("study")
    if not s:
        return None
    return (
        f"{s['cases']} hips of the test split ({s['patients']} patients), drawn with seed {s['seed']}; phases "
        f"{', '.join(s['phases'])}; washout of {s['washout_days']} days between phase 1 and 2; each reader's case "
        "order a random permutation, different per reader and phase (seeded by the study's seed, the reader and "
        "the phase); readers never see the truth."
    )


def reading_time(f: Facts) -> str | None:
    s = f.get("study")
    if not s:
        return None
    times = ", ".join(f"{c} {_num(v, 1)} s" for c, v in s["seconds_per_case"].items())
    return f"Median time per case: {times}."


def statistics(f: Facts) -> str | None:
    st = f.get("statistics")
    if not st:
        return None
    return (
        f"Cohen's κ (binary and six-class) with {st['iterations']} patient-bootstrap iterations (one hip per patient "
        f"per sample, seed {st['seed']}), 95% percentile CIs; noninferiority margin {_num(st['margin'])} "
        f"({st['margin_source']}: mean |κ difference| over {st['pairs']} pairs of readers of the same group and "
        "training); verdict: superior if the CI's lower bound > 0, noninferior if > −margin (binary model-vs-group "
        "superiority also needs the group's point below the model's ROC band)."
    )


def uncertainty(f: Facts) -> str | None:
    """The study's statistical methods, else the model evaluation's bootstrap."""
    if f.get("statistics"):
        return statistics(f)
    ev = f.get("evaluation")
    if not ev or not ev.get("iterations"):
        return None
    return (
        f"The paper's patient bootstrap: {ev['iterations']} iterations, each keeping one hip per patient and "
        "drawing as many with replacement; bootstrap means with 95% percentile CIs."
    )


def sample_size(f: Facts) -> str | None:
    s, t = f.get("study"), f.get("table1")
    if s:
        return f"{s['cases']} reader-study cases of {s['patients']} patients (set when the study was created)."
    if t:
        return f"{sum(t['hips'])} hips frozen in the dataset version; the size was not planned by the platform."
    return None


def flow(f: Facts) -> str | None:
    flow = f.get("flow")
    if not flow:
        return None
    return f"flow.svg / flow.png: {flow['received']} received → {flow['labelled']} labelled → split by patient."


def deviations(f: Facts) -> str | None:
    rows = f.get("deviations")
    if rows is None:
        return None
    if not rows:
        return "No departure from the paper applies."
    return f"{len(rows)} departures or readings of the paper: " + "; ".join(d["title"] for d in rows) + "."


def explainability(f: Facts) -> str | None:
    return (
        "Class-activation heat maps per hip (shown to readers in the aided phase; not validated)."
        if f.get("model")
        else None
    )


def ensembling(f: Facts) -> str | None:
    m = f.get("model")
    if not m:
        return None
    c = m["config"]
    return f"One network, no ensemble of models; test-time protocol '{c.get('test_time')}' over zooms {c.get('zooms')}."


def missing_readings(f: Facts) -> str | None:
    s = f.get("study")
    if not s:
        return None
    return (
        f"Only readers who answered every case in all phases are analysed: {len(s['readers'])} of "
        f"{s['invited']} invited; no reading is imputed."
    )
