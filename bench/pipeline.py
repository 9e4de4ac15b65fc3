"""End-to-end time of reading one radiograph with no human box (the site's
``ml.detection.read_radiograph`` without the database): DICOM bytes -> detector -> two hip
crops -> classifier -> heatmap PNGs, against the sum of the bare model calls it makes.

    python bench/pipeline.py [--radiographs 6] [--configs cpu-small,paper] [--rounds 3] [--warmup 2]

Each configuration pairs the classifier and the detector of the same name (``cpu-small``:
classifier cpu-small + detector cpu-small; ``paper``: DenseNet-169 + RetinaNet ResNet-50 FPN
at 512), both built with random weights (nothing is downloaded; speed does not depend on the
weights). Radiographs are phantoms (``devtools.phantoms.generate_phantoms``) with both hips
labelled.

End to end, per radiograph, each stage timed with ``time.perf_counter``:

- decode: ``annotate.archive.dicom.decode_dicom`` of the DICOM bytes;
- det. prep: ``detector.model_image`` (window, letterbox, normalise) and the batch of one;
- det. call: ``detector.predict_batch`` (the network, then keras-hub's ``decode_predictions``:
  non-max suppression at ``nms_iou``; the bench also prints the two parts timed apart);
- select: ``detector.select_detections`` (best box per side, mapped back to the film);
- crops: ``Predictor._prepare`` (the hips at each zoom of the test-time protocol, normalised);
- cls. call: ``Predictor._forward`` (one ``predict_on_batch`` of the CAM model on all crops);
- assemble: the rest of ``Predictor.predict_hips`` (averaging, CAM, heatmap upsampling);
- PNGs: ``serving.heatmap_png`` of each hip.

These are the real functions; only the predictor's ``_prepare`` / ``_forward`` are wrapped
on the instance to time them inside ``predict_hips``. An untrained detector finds no hips
(or wrong ones), so the classifier always reads the radiograph's two labelled boxes (the
"fixed boxes"); the detector runs, and is timed, on every radiograph all the same, and how
many hips it found is reported separately.

Bare calls: the same network calls alone on the ready tensors of that radiograph
(``predict_batch(model, images)`` on the letterboxed image; the CAM model's
``predict_on_batch`` on the ready crop batch), right after its end-to-end run. Everything is
warmed up first (``--warmup`` radiographs, tracing), then each radiograph is run ``--rounds``
times. As ``timeit`` does, the fastest time is kept, per stage: a radiograph's end-to-end
time is the sum of its stages' fastest times (the stages run one after the other, so this is
its run without the machine's interference; the median of its fastest whole runs is printed
too), its bare time the fastest of each bare call. The figures are medians over ``--radiographs``. Prints one line per
stage and a summary line per configuration with the overhead, end-to-end / bare - 1 (goal < 0.25).
One run, then exits.
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
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

STAGES = ("decode", "det. prep", "det. call", "select", "crops", "cls. call", "assemble", "PNGs")
GOAL = 0.25


def load_films(folder: Path, studies: int, count: int) -> list[tuple[bytes, list[Any]]]:
    """[(DICOM bytes, [Hip right, Hip left])] for up to ``count`` phantom radiographs with both hips."""
    from devtools.phantoms import generate_phantoms
    from ml.core.serving import Hip

    while True:
        out = folder / f"phantoms-{studies}"
        summary = generate_phantoms(out, studies=studies, seed=1)
        coco = json.loads(summary.coco_path.read_text())
        hips: dict[int, dict[str, Hip]] = defaultdict(dict)
        for ann in coco["annotations"]:
            side = ann["attributes"]["side"]
            hips[ann["image_id"]][side] = Hip(side, tuple(ann["bbox"]))
        films = [
            ((summary.out_dir / im["file_name"]).read_bytes(), [hips[im["id"]]["right"], hips[im["id"]]["left"]])
            for im in coco["images"]
            if "exclude" not in im and len(hips.get(im["id"], {})) == 2
        ]
        if len(films) >= count or studies >= 64:
            return films[:count]
        shutil.rmtree(out, ignore_errors=True)
        studies *= 2


class Bench:
    """One configuration pair: the models, the end-to-end run and the bare calls."""

    def __init__(self, name: str) -> None:
        import keras

        from ml.core import nets
        from ml.core.configs import get_config
        from ml.core.detector import build_detector, get_detector_config
        from ml.core.serving import Predictor

        keras.utils.set_random_seed(0)
        self.name = name
        self.config = get_config(name)
        self.det_config = get_detector_config(name)
        self.detector = build_detector(self.det_config)
        self.predictor = Predictor(nets.build_model(self.config), self.config)
        self.times: dict[str, float] = {}
        self.crops: Any = None
        prepare, forward = self.predictor._prepare, self.predictor._forward

        def timed_prepare(*args: Any) -> Any:
            start = time.perf_counter()
            job = prepare(*args)
            self.times["crops"] = time.perf_counter() - start
            return job

        def timed_forward(x: Any) -> Any:
            start = time.perf_counter()
            out = forward(x)
            self.times["cls. call"] = time.perf_counter() - start
            self.crops = x
            return out

        self.predictor._prepare = timed_prepare  # instance attributes: the class is untouched
        self.predictor._forward = timed_forward

    def end_to_end(self, data: bytes, hips: list[Any]) -> tuple[float, int, Any]:
        """(seconds, hips the detector found, detector input) for one radiograph; stages in ``self.times``."""
        import numpy as np

        from annotate.archive.dicom import decode_dicom
        from ml.core.detector import model_image, predict_batch, select_detections
        from ml.core.serving import heatmap_png

        t = self.times
        t.clear()
        t0 = time.perf_counter()
        decoded = decode_dicom(data)
        pixels, window = decoded.pixels, (decoded.window_center, decoded.window_width)
        t1 = time.perf_counter()
        image, lb = model_image(pixels, window, self.det_config.image_size)
        images = np.stack([image])
        t2 = time.perf_counter()
        out = predict_batch(self.detector, images)
        t3 = time.perf_counter()
        found = select_detections(
            out["boxes"][0], out["confidence"][0], out["labels"][0], lb, self.det_config.min_score
        )
        t4 = time.perf_counter()
        preds = self.predictor.predict_hips(pixels, window, hips)
        t5 = time.perf_counter()
        pngs = [heatmap_png(p) for p in preds]
        t6 = time.perf_counter()
        assert len(preds) == 2 and all(pngs)
        t.update({"decode": t1 - t0, "det. prep": t2 - t1, "det. call": t3 - t2, "select": t4 - t3, "PNGs": t6 - t5})
        t["assemble"] = (t5 - t4) - t["crops"] - t["cls. call"]
        return t6 - t0, len(found), images

    def bare(self, images: Any) -> tuple[float, float]:
        """(detector, classifier) seconds of the bare calls on ready tensors."""
        from ml.core.detector import predict_batch

        crops = self.crops
        start = time.perf_counter()
        predict_batch(self.detector, images)
        middle = time.perf_counter()
        self.predictor._cam_model.predict_on_batch(crops)
        return middle - start, time.perf_counter() - middle

    def split(self, images: Any) -> tuple[float, float]:
        """(network, decode_predictions) seconds of the detector called eagerly, one after the other."""
        start = time.perf_counter()
        raw = self.detector(images, training=False)
        middle = time.perf_counter()
        {key: value.numpy() for key, value in self.detector.decode_predictions(raw, images).items()}
        return middle - start, time.perf_counter() - middle


def run_config(name: str, films: list[tuple[bytes, list[Any]]], warmup: int, rounds: int) -> float:
    """Benchmark one configuration pair; prints its figures and returns the overhead ratio."""
    t0 = time.perf_counter()
    bench = Bench(name)
    built = time.perf_counter() - t0
    for data, hips in films[:warmup]:  # traces the models and keras-hub's NMS
        _, _, images = bench.end_to_end(data, hips)
        bench.bare(images)
        bench.split(images)
    warm = time.perf_counter() - t0 - built
    n = len(films)
    fastest = [float("inf")] * n  # each radiograph's fastest end-to-end run
    stage_min = [dict.fromkeys(STAGES, float("inf")) for _ in range(n)]  # and fastest run of each stage
    det_bare, cls_bare, split = [float("inf")] * n, [float("inf")] * n, [(float("inf"), float("inf"))] * n
    found = [0] * n
    for _ in range(rounds):
        for i, (data, hips) in enumerate(films):
            total, found[i], images = bench.end_to_end(data, hips)
            fastest[i] = min(fastest[i], total)
            for stage in STAGES:
                stage_min[i][stage] = min(stage_min[i][stage], bench.times[stage])
            d, c = bench.bare(images)
            det_bare[i], cls_bare[i] = min(det_bare[i], d), min(cls_bare[i], c)
            split[i] = min(split[i], bench.split(images), key=sum)
    med = {stage: statistics.median(times[stage] for times in stage_min) * 1000 for stage in STAGES}
    e2e = statistics.median(sum(times.values()) for times in stage_min) * 1000
    e2e_run = statistics.median(fastest) * 1000
    bare_det, bare_cls = statistics.median(det_bare) * 1000, statistics.median(cls_bare) * 1000
    bare_sum = statistics.median([d + c for d, c in zip(det_bare, cls_bare, strict=True)]) * 1000
    ratio = e2e / bare_sum - 1
    c, d, zooms = bench.config, bench.det_config, bench.predictor.zooms
    print(
        f"\n== {name}: classifier {c.backbone} {c.input_size}px x zooms {zooms} ({len(zooms) * 2} crops), "
        f"detector {d.backbone} {d.image_size}px P{d.min_level}-P{d.max_level} (built in {built:.1f} s, "
        f"warmed up in {warm:.1f} s)"
    )
    print(f"   detector found {sum(found)} of {2 * len(films)} hips (random weights); "
          f"the classifier read the 2 labelled boxes of each radiograph")  # fmt: skip
    print("   stage        median ms   share")
    for stage in STAGES:
        print(f"   {stage:12s} {med[stage]:9.1f}  {med[stage] / e2e:6.1%}")
    glue = sum(med[stage] for stage in STAGES if stage not in ("det. call", "cls. call"))
    net, nms = (statistics.median(values) * 1000 for values in zip(*split, strict=True))
    print(f"   outside the two model calls: {glue:.1f} ms ({glue / e2e:.1%})")
    print(f"   bare calls on ready tensors: detector (predict_batch: network + NMS) {bare_det:.1f} ms, "
          f"classifier (CAM model predict_on_batch, {len(zooms) * 2} crops) {bare_cls:.1f} ms")  # fmt: skip
    print(f"   the detector called eagerly part by part: network {net:.1f} ms, decode_predictions (NMS) {nms:.1f} ms")
    print(f"   fastest whole run of each radiograph: median {e2e_run:.1f} ms ({e2e_run / bare_sum - 1:+.1%} over the "
          f"bare calls; includes the machine's noise)")  # fmt: skip
    print(
        f"{name}: end to end {e2e:.1f} ms/radiograph, bare calls {bare_sum:.1f} ms (medians of {n}, best of {rounds}), "
        f"overhead {ratio:+.1%} (goal < {GOAL:.0%}: {'met' if ratio < GOAL else 'NOT met'})",
        flush=True,
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--radiographs", type=int, default=6, help="timed radiographs per configuration")
    parser.add_argument("--configs", default="cpu-small,paper", help="comma-separated configuration names")
    parser.add_argument("--studies", type=int, default=4, help="phantom studies to make (more if too few films)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed radiographs first (tracing)")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the radiographs (fastest kept)")
    args = parser.parse_args()
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    if args.radiographs < 1 or args.rounds < 1 or args.warmup < 1 or not names:
        parser.error("--radiographs, --rounds and --warmup must be >= 1, --configs non-empty")

    from ml.core.configs import CONFIGS
    from ml.core.detector import DETECTOR_CONFIGS

    unknown = [n for n in names if n not in CONFIGS or n not in DETECTOR_CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; both a classifier and a detector config are needed")

    import keras

    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        t0 = time.perf_counter()
        films = load_films(work, args.studies, args.radiographs)
        print(
            f"{len(films)} phantom radiographs with both hips ({time.perf_counter() - t0:.1f} s to make); "
            f"keras {keras.__version__} / {keras.backend.backend()}, {os.cpu_count()} CPUs"
        )
        ratios = {name: run_config(name, films, args.warmup, args.rounds) for name in names}
        print("\nsummary: " + ", ".join(f"{n} overhead {r:+.1%}" for n, r in ratios.items()) + f" (goal < {GOAL:.0%})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
