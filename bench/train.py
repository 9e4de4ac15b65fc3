"""Training input speed: images per second of the augmented tf.data pipeline
(``ml.core.pipeline.make_dataset``) feeding the ``cpu-small`` model, against
the same model fed from an in-memory array of the same shape
(``model.fit(x, y)``).

    python bench/train.py [--studies 6] [--steps 16] [--warmup 3] [--rounds 2]

Makes phantom studies (``devtools.phantoms.generate_phantoms``) in a temporary
folder, decodes each DICOM (``annotate.archive.dicom.decode_dicom``) to its uint16
pixels and default window, saves them as .npy (the pipeline loads them through
its LRU cache), and takes the hip boxes, sides and classes from the COCO file.
Both sides run ``--warmup`` steps first (tracing), then ``--steps`` timed
steps of ``config.batch_size`` images, alternating for ``--rounds`` rounds
(best of each kept: a round can include a retrace). Prints both rates and the ratio
pipeline / array (the goal is at least 0.8). One run, then exits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def load_records(folder: Path, studies: int = 6):
    import numpy as np

    from annotate.archive.dicom import decode_dicom
    from devtools.phantoms import generate_phantoms
    from ml.core.pipeline import HipRecord

    summary = generate_phantoms(folder / "phantoms", studies=studies, seed=1)
    coco = json.loads(summary.coco_path.read_text())
    images = {im["id"]: im for im in coco["images"] if "exclude" not in im}
    films: dict[int, tuple[Path, tuple[float, float]]] = {}
    for image_id, im in images.items():
        decoded = decode_dicom((summary.out_dir / im["file_name"]).read_bytes())
        path = folder / f"film{image_id}.npy"
        np.save(path, decoded.pixels)
        films[image_id] = (path, (decoded.window_center, decoded.window_width))
    records = []
    for ann in coco["annotations"]:
        if ann["image_id"] not in films:
            continue
        path, window = films[ann["image_id"]]
        records.append(
            HipRecord(
                pixels=path,
                window=window,
                box=tuple(ann["bbox"]),
                side=ann["attributes"]["side"],
                label=ann["category_id"] - 1,
                patient=ann["attributes"]["patient"],
            )
        )
    return records, len(films)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=6, help="phantom studies to make")
    parser.add_argument("--steps", type=int, default=16, help="timed training steps per side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per side first")
    parser.add_argument("--rounds", type=int, default=2, help="alternating timed rounds (best kept)")
    parser.add_argument("--config", default="cpu-small")
    args = parser.parse_args()

    import numpy as np

    from ml.core import nets
    from ml.core.augment import AugmentConfig
    from ml.core.configs import get_config
    from ml.core.pipeline import make_dataset

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        t0 = time.perf_counter()
        records, n_films = load_records(work, args.studies)
        print(f"{len(records)} hips on {n_films} radiographs ({time.perf_counter() - t0:.1f} s to make and decode)")
        config = get_config(args.config)
        batch = config.batch_size
        model = nets.compile_model(nets.build_model(config), config)

        ds = make_dataset(records, config=config, augment=AugmentConfig(), seed=0, shuffle=True).repeat()
        # The unbatched stream repeats, so batches stay full: rebuild batching over the repeat.
        ds = ds.unbatch().batch(batch, drop_remainder=True).prefetch(2)

        # in-memory array of the same shape: real (unaugmented) crops, tiled
        plain = make_dataset(records, config=config, augment=None, seed=0, shuffle=False, batch_size=len(records))
        xs, ys = next(iter(plain))
        n = args.steps * batch
        reps = -(-n // len(records))
        x = np.tile(xs.numpy(), (reps, 1, 1, 1))[:n]
        y = np.tile(ys.numpy(), reps)[:n]

        def timed(fit) -> float:
            start = time.perf_counter()
            fit()
            return time.perf_counter() - start

        t_pipe = t_arr = float("inf")
        # warm-up (tracing) on both sides, then the timed runs
        model.fit(ds, steps_per_epoch=args.warmup, epochs=1, shuffle=False, verbose=0)
        model.fit(x[: args.warmup * batch], y[: args.warmup * batch], batch_size=batch, epochs=1, verbose=0)
        for _ in range(args.rounds):  # alternate the two; best of the rounds
            t_pipe = min(
                t_pipe, timed(lambda: model.fit(ds, steps_per_epoch=args.steps, epochs=1, shuffle=False, verbose=0))
            )
            t_arr = min(t_arr, timed(lambda: model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)))
            print(f"  round: pipeline {n / t_pipe:.1f} images/s, array {n / t_arr:.1f} images/s", flush=True)
        rate_pipe, rate_arr = n / t_pipe, n / t_arr
        print(f"config {config.name}: {config.input_size}x{config.input_size}, batch {batch}, {args.steps} steps each")
        print(f"pipeline (augmented, tf.data): {rate_pipe:7.1f} images/s")
        print(f"in-memory array (model.fit):   {rate_arr:7.1f} images/s")
        print(f"ratio pipeline / array: {rate_pipe / rate_arr:.2f} (goal >= 0.8)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
