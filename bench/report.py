"""Reader-study statistics speed: ``readerstudy.analysis.readers.analyse`` on a paper-size study against a
plain loop of scikit-learn ``cohen_kappa_score`` calls.

    python bench/report.py [--iterations 2000] [--loop-iterations 50] [--rounds 3] [--seed 0] [--command]

Builds the synthetic study of :func:`readerstudy.analysis.readers.synthetic_study` shaped like Krogue et al.
2020's reader study: 100 cases from 90 patients, 10 readers (5 experts, 5 residents) under 3
conditions, plus the model (31 observers), binary and six-class tasks. Times ``analyse`` with
``--iterations`` bootstrap iterations (everything: validating the rows, κ of all observers on all
iterations, group means, margin, comparisons, ROC band; best of ``--rounds``), then the plain
loop: one ``cohen_kappa_score`` call per observer, task and iteration on the same bootstrap
indices. The loop is timed on ``--loop-iterations`` iterations only and scaled linearly to
``--iterations`` (it says so). Prints both times and the ratio (the goal is analyse < 1 s and a
ratio of at least 100). ``--command`` also times what ``manage.py reader_report`` does with two CSV
files (hash, read, analyse, cross-check, aided reading, figures, HTML and PDF; best of ``--rounds``)
against the same loop (the goal: at least 20x). One run, then exits.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def loop_kappas(responses, predictions, indices) -> int:  # type: ignore[no-untyped-def]
    """κ of every observer, task and bootstrap row with one sklearn call each; returns the call count."""
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    from ml.core.stats import FRACTURE_INDICES

    cases = responses.cases()
    where = {c: i for i, c in enumerate(predictions.case.tolist())}
    rows = [where[c] for c in cases]
    truth = predictions.truth[rows]
    probs = predictions.probabilities[rows]
    pos = {c: i for i, c in enumerate(cases)}
    observers: dict[tuple[str, str], np.ndarray] = {("model", "all"): np.argmax(probs, axis=1)}
    for reader, condition, case, answer in zip(
        responses.reader, responses.condition, responses.case, responses.answer, strict=True
    ):
        observers.setdefault((reader, condition), np.zeros(len(cases), dtype=int))[pos[case]] = answer
    model_binary = probs[:, list(FRACTURE_INDICES)].sum(axis=1) >= 0.5
    calls = 0
    for key, answers in observers.items():
        binary = model_binary if key[0] == "model" else np.isin(answers, FRACTURE_INDICES)
        for row in indices:
            cohen_kappa_score(np.isin(truth[row], FRACTURE_INDICES), binary[row], labels=[False, True])
            cohen_kappa_score(truth[row], answers[row], labels=list(range(6)))
            calls += 2
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--loop-iterations", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--command", action="store_true", help="also time the whole reader_report command's work")
    args = parser.parse_args()

    from ml.core.stats import bootstrap_indices
    from readerstudy.analysis.readers import analyse, read_predictions, read_responses, synthetic_study

    response_rows, prediction_rows = synthetic_study(n_cases=100, n_patients=90, seed=args.seed)
    responses = read_responses(response_rows)
    predictions = read_predictions(prediction_rows)
    n_readers = len(set(responses.reader.tolist()))
    n_observers = 1 + 3 * n_readers
    print(
        f"study: {len(responses.cases())} cases, {len(set(responses.patient.tolist()))} patients, "
        f"{n_readers} readers x 3 conditions + model = {n_observers} observers, 2 tasks"
    )

    best = float("inf")
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        result = analyse(response_rows, prediction_rows, iterations=args.iterations, seed=args.seed)
        best = min(best, time.perf_counter() - t0)
    print(f"analyse, {args.iterations} iterations (rows in, full result out; best of {args.rounds}): {best:.3f} s")
    print(f"  margin {result['margin']['value']:.3f}, {len(result['comparisons'])} comparisons")

    patients = predictions.patient[[list(predictions.case).index(c) for c in responses.cases()]]
    indices = bootstrap_indices(patients, iterations=args.loop_iterations, seed=args.seed)
    t0 = time.perf_counter()
    calls = loop_kappas(responses, predictions, indices)
    loop = time.perf_counter() - t0
    scaled = loop * args.iterations / args.loop_iterations
    print(
        f"sklearn loop: {calls} cohen_kappa_score calls for {args.loop_iterations} iterations took {loop:.2f} s; "
        f"scaled linearly to {args.iterations} iterations: {scaled:.1f} s (estimate, not measured)"
    )
    ratio = scaled / best
    goal = "met" if best < 1 else "NOT met"
    print(f"ratio sklearn loop / analyse: {ratio:.0f}x (goal >= 100x); analyse < 1 s goal: {goal}")
    if args.command:
        whole = time_command(
            response_rows, prediction_rows, iterations=args.iterations, seed=args.seed, rounds=args.rounds
        )
        print(
            f"reader_report's work on two CSV files, {args.iterations} iterations, with figures, HTML and PDF "
            f"(best of {args.rounds}): {whole:.2f} s; ratio sklearn loop / command: {scaled / whole:.0f}x (goal >= 20x)"
        )


def time_command(response_rows, prediction_rows, *, iterations: int, seed: int, rounds: int) -> float:  # type: ignore[no-untyped-def]
    """Best wall time of the command's steps on CSV files: inputs hash, build_report, write_report."""
    import tempfile

    from common import csvfile
    from readerstudy.analysis.readers import PREDICTION_COLUMNS, RESPONSE_COLUMNS
    from readerstudy.report.reader_report import build_report, inputs_sha256, write_report

    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, rows, columns in (
            ("responses.csv", response_rows, RESPONSE_COLUMNS),
            ("predictions.csv", prediction_rows, PREDICTION_COLUMNS),
        ):
            with open(folder / name, "w", newline="", encoding="utf-8") as fh:
                writer = csvfile.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
        responses, predictions = folder / "responses.csv", folder / "predictions.csv"
        for n in range(rounds):
            t0 = time.perf_counter()
            digest = inputs_sha256(responses, predictions)
            report = build_report(responses, predictions, iterations=iterations, seed=seed)
            write_report(report, folder / f"out{n}", inputs_sha256=digest)
            best = min(best, time.perf_counter() - t0)
    return best


if __name__ == "__main__":
    main()
