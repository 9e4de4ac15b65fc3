"""Inference speed of the serving path (``ml.core.serving``): batch scoring against the
naive baseline, and the latency of one radiograph as the web app serves it.

    python bench/infer.py [--studies 4] [--config paper] [--batch-size 32] [--rounds 2] [--repeats 5]
    python bench/infer.py --config cpu-small --studies 12

Makes phantom studies (``devtools.phantoms.generate_phantoms``) in a temporary folder,
decodes each DICOM (``annotate.archive.dicom.decode_dicom``) to its uint16 pixels and default
window, and takes the hip boxes and sides from the COCO file. The model has random weights
(``weights=None``): speed does not depend on them. Every hip is scored by the config's test-time
protocol (``serving.protocol_zooms``): one zoom-1.0 crop under ``single`` (the default), one crop
per zoom of ``config.zooms`` under ``zoom-average``; ``--test-time`` picks it.

(a) naive: ``serving.naive_predict``, ``model.predict(verbose=0)`` on one crop at a time;
(b) batched: ``Predictor.predict_many``, crops of consecutive radiographs in batches of
    ``--batch-size`` run with ``predict_on_batch`` (probabilities, CAM heatmaps included);
    prints per-hip and per-radiograph latency, throughput and the ratio (goal >= 3x).
(c) single radiograph, ``paper`` config whatever ``--config`` is: DICOM bytes ->
    ``decode_dicom`` -> ``Predictor.predict_hips`` on two hips -> ``heatmap_png`` for each;
    the median of ``--repeats`` runs (goal < 1 s).

Both sides are warmed up first (the first calls trace the model), then timed, alternating
for ``--rounds`` rounds with the best kept. One run, then exits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def load_films(folder: Path, studies: int):
    """[(dicom bytes, pixels, window, hips)] for the phantom radiographs that have hips."""
    from annotate.archive.dicom import decode_dicom
    from devtools.phantoms import generate_phantoms
    from ml.core.serving import Hip

    summary = generate_phantoms(folder / "phantoms", studies=studies, seed=1)
    coco = json.loads(summary.coco_path.read_text())
    hips: dict[int, list[Hip]] = {}
    for ann in coco["annotations"]:
        hips.setdefault(ann["image_id"], []).append(Hip(ann["attributes"]["side"], tuple(ann["bbox"])))
    films = []
    for im in coco["images"]:
        if "exclude" in im or not hips.get(im["id"]):
            continue
        data = (summary.out_dir / im["file_name"]).read_bytes()
        decoded = decode_dicom(data)
        films.append((data, decoded.pixels, (decoded.window_center, decoded.window_width), hips[im["id"]]))
    return films


def single_latency(films, repeats: int, test_time: str | None = None) -> None:
    """(c): one radiograph end to end with the paper model."""
    import keras

    from annotate.archive.dicom import decode_dicom
    from ml.core import nets
    from ml.core.configs import get_config
    from ml.core.serving import Predictor, heatmap_png

    config = get_config("paper", **({"test_time": test_time} if test_time else {}))
    keras.utils.set_random_seed(0)
    predictor = Predictor(nets.build_model(config), config)
    data, _, _, hips = next((f for f in films if len(f[3]) == 2), films[0])

    def serve() -> int:
        decoded = decode_dicom(data)
        preds = predictor.predict_hips(decoded.pixels, (decoded.window_center, decoded.window_width), hips)
        return sum(len(heatmap_png(p)) for p in preds)

    serve()  # warm-up (tracing)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        serve()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(
        f"(c) single radiograph, paper config, {len(hips)} hips x {len(predictor.zooms)} zooms, decode + predict + "
        f"heatmap PNGs: median {median * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
        f"over {repeats} runs; goal < 1 s: {'met' if median < 1.0 else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=4, help="phantom studies to make")
    parser.add_argument("--config", default="paper", help="network config for (a) and (b)")
    parser.add_argument("--batch-size", type=int, default=32, help="crops per batch for (b)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating timed rounds (best kept)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of (c)")
    parser.add_argument("--skip-latency", action="store_true", help="skip (c)")
    parser.add_argument(
        "--test-time", choices=("single", "zoom-average"), help="test-time protocol (default: the config's)"
    )
    args = parser.parse_args()

    import keras

    from ml.core import nets
    from ml.core.configs import get_config
    from ml.core.serving import Predictor, naive_predict

    work = Path(tempfile.mkdtemp(prefix="bench-infer-"))
    try:
        t0 = time.perf_counter()
        films = load_films(work, args.studies)
        n_films, n_hips = len(films), sum(len(f[3]) for f in films)
        print(f"{n_hips} hips on {n_films} radiographs ({time.perf_counter() - t0:.1f} s to make and decode)")
        config = get_config(args.config, **({"test_time": args.test_time} if args.test_time else {}))
        keras.utils.set_random_seed(0)
        model = nets.build_model(config)
        predictor = Predictor(model, config)
        items = [(pixels, window, hips, False) for _, pixels, window, hips in films]

        def run_naive() -> None:
            for pixels, window, hips, _ in items:
                naive_predict(model, config, pixels, window, hips)

        def run_batched() -> None:
            for _ in predictor.predict_many(items, batch_size=args.batch_size):
                pass

        def timed(fn) -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        # warm-up: naive traces on its first call; predict_many sees every batch shape it will see
        naive_predict(model, config, *items[0][:3])
        run_batched()
        t_naive = t_batched = float("inf")
        for _ in range(args.rounds):
            round_naive, round_batched = timed(run_naive), timed(run_batched)
            t_naive, t_batched = min(t_naive, round_naive), min(t_batched, round_batched)
            print(f"  round: naive {round_naive:.2f} s, batched {round_batched:.2f} s", flush=True)
        crops = n_hips * len(predictor.zooms)
        print(
            f"config {config.name}: {config.input_size}x{config.input_size}, test_time {predictor.test_time}, "
            f"zooms {predictor.zooms} "
            f"({crops} crops), batch {args.batch_size}, keras {keras.__version__} / {keras.backend.backend()}"
        )
        for label, t in (("(a) naive model.predict per crop", t_naive), ("(b) Predictor.predict_many", t_batched)):
            print(
                f"{label:34s}: {t / n_hips * 1000:7.1f} ms/hip, {t / n_films * 1000:7.1f} ms/radiograph, "
                f"{n_hips / t:6.1f} hips/s"
            )
        ratio = t_naive / t_batched
        print(f"speed-up batched / naive: {ratio:.1f}x (goal >= 3x: {'met' if ratio >= 3 else 'NOT met'})")
        if not args.skip_latency:
            single_latency(films, args.repeats, args.test_time)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
