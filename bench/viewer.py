"""Viewer speed in a real browser: first paint of the labelling page against the
bare download of the same pixels, and the time of one window/level change.

    python bench/viewer.py [--rows 2500] [--columns 3000] [--repeat 5] [--serve]

Makes a throw-away data folder and SQLite database, one synthetic AP pelvis
radiograph (``devtools.phantoms``, 3000 x 2500 by default) ingested like an
import, a labeller with that image assigned, and starts ``manage.py
runserver`` on a free port. Then, in headless system Chromium (``CHROMIUM``,
default /usr/bin/chromium; the browser tests' launch flags), with an empty
browser cache for every round:

(a) fetch: ``fetch(pixels_url)`` + ``arrayBuffer()`` inside an open page of the
    site: the bare transfer and inflation of the gzip-encoded 16-bit pixels;
(b) first paint: from the start of the navigation to /label/<id>/ to the
    viewer's ``viewer:first-paint`` mark (HTML, scripts, labelling state,
    pixels, lookup table, full-resolution image on the canvas);
(c) window/level: one ``setWindow`` + synchronous render (lookup table, 8-bit
    image of every pixel, canvas upload, draw at the view transform), median
    of 21 changes.

Prints the medians over ``--repeat`` rounds, the ratio (b)/(a) (goal <= 1.5)
and (c) (goal < 30 ms). ``--serve`` leaves the server running for a person
to look at (Ctrl+C ends it).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.processes import free_port, stop, wait_for_url  # noqa: E402 - the repository root is on the path from here

USERNAME, PASSWORD = "bench-labeller", "bench-password-123"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 900}


def make_radiograph(rows: int, columns: int, seed: int) -> bytes:
    """One AP pelvis phantom as DICOM bytes."""
    import numpy as np
    from pydicom.filewriter import dcmwrite

    from devtools import phantoms
    from devtools.phantom_anatomy import sample_hip_spec

    rng = np.random.default_rng(seed)
    # A DX scanner writing MONOCHROME2 without a rescale: the stored values are the display values.
    scanner = next(s for s in phantoms.SCANNERS if s.key == "siemens_dx")
    hips = {side: sample_hip_spec(rng, side, cls) for side, cls in (("right", "normal"), ("left", "fn_displaced"))}
    rendered = phantoms.render_radiograph(rng, scanner, hips, "ap", shape=(rows, columns))
    dataset = phantoms.make_dataset(
        rendered.pixels,
        Modality=scanner.modality,
        PhotometricInterpretation=scanner.photometric,
        BitsStored=scanner.bits,
        PatientID=f"BENCH{seed:04d}",
        AccessionNumber=f"BENCHACC{seed}",
        WindowCenter=rendered.window[0],
        WindowWidth=rendered.window[1],
    )
    buffer = io.BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def prepare(rows: int, columns: int, count: int) -> list[tuple[int, int]]:
    """Database, labeller, ``count`` radiographs each assigned to the labeller;
    returns (assignment id, radiograph id) pairs."""
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.utils import timezone

    from annotate import services
    from annotate.labelling import services as labelling
    from annotate.labels import Assignment
    from annotate.models import Radiograph

    call_command("migrate", verbosity=0)
    user = User.objects.create_user(USERNAME, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="labeler")[0])
    start = time.perf_counter()
    pairs = []
    for seed in range(count):
        outcome = services.radiograph_ingest(
            data=make_radiograph(rows, columns, seed), name=f"{seed}.dcm", source="cli"
        )
        if outcome.status != "imported":
            raise SystemExit(f"the phantom was not imported: {outcome.status} {outcome.reason}")
        labelling.assignments_create(radiographs=Radiograph.objects.filter(id=outcome.radiograph_id))  # idempotent
        # One image per round, all in progress with the labeller, so that each
        # round opens an image whose pixels its browser has never fetched.
        slot = Assignment.objects.get(radiograph_id=outcome.radiograph_id, slot=1)
        slot.labeler, slot.status, slot.taken_at = user, Assignment.Status.IN_PROGRESS, timezone.now()
        slot.save()
        pairs.append((slot.id, outcome.radiograph_id))
    print(f"{count} phantoms of {columns}x{rows} made and ingested in {time.perf_counter() - start:.1f} s", flush=True)
    return pairs


def start_server(kind: str, env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    if kind == "gunicorn":
        command = [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
                   "--workers", "2", "--threads", "4", "--access-logfile", "-"]  # fmt: skip
    else:
        command = [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    wait_for_url(f"http://127.0.0.1:{port}/health/live/", process, log, timeout=60)  # no workers here
    return process


def log_in(context, base: str) -> None:
    page = context.new_page()
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    page.close()


FETCH_JS = """async (url) => {
  const t0 = performance.now();
  const response = await fetch(url, {credentials: "same-origin"});
  const buffer = await response.arrayBuffer();
  return {ms: performance.now() - t0, bytes: buffer.byteLength};
}"""

# One change = setWindow + the synchronous render + a one-pixel read of the
# visible canvas, which makes the browser rasterise the deferred draw calls
# now, so that the time holds all the work of the change.
WINDOW_JS = """async (n) => {
  const viewer = window.labelPage.viewer;
  const {center, width} = viewer.defaultWindow;
  const times = [];
  for (let i = 0; i < n; i++) {
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    const t0 = performance.now();
    viewer.setWindow(center + (i % 2 ? 1 : -1) * width * 0.05 * (1 + i / n), width * (0.8 + 0.02 * i));
    viewer.renderNow();
    viewer.ctx.getImageData(0, 0, 1, 1);
    times.push(performance.now() - t0);
  }
  return times;
}"""


def first_paint(page) -> float:
    # The contexts bypass the site's CSP (no 'unsafe-eval'): Playwright evaluates these strings.
    page.wait_for_function("performance.getEntriesByName('viewer:first-paint').length > 0", timeout=60_000)
    return page.evaluate("performance.getEntriesByName('viewer:first-paint')[0].startTime")


def measure(browser, base: str, this: tuple[int, int], following: tuple[int, int]) -> dict[str, object]:
    """One round: (a) and (b) on radiograph ``this``, each in a fresh browser
    context (an empty cache); then, in the context of (b), the next image
    (``following``), opened as a labeller goes on after a submit; then (c)."""
    figures: dict[str, object] = {}
    context = browser.new_context(viewport=VIEWPORT, bypass_csp=True)
    log_in(context, base)
    page = context.new_page()
    page.goto(f"{base}/")
    figures["fetch"] = page.evaluate(FETCH_JS, f"/api/radiographs/{this[1]}/pixels/")["ms"]
    context.close()

    context = browser.new_context(viewport=VIEWPORT, bypass_csp=True)
    log_in(context, base)
    page = context.new_page()
    page.goto(f"{base}/label/{this[0]}/", wait_until="commit")
    figures["paint"] = first_paint(page)
    page.wait_for_function("window.labelPage && !window.labelPage.tool.disabled")
    page.goto(f"{base}/label/{following[0]}/", wait_until="commit")
    figures["next"] = first_paint(page)
    page.wait_for_function("window.labelPage && !window.labelPage.tool.disabled")
    figures["window"] = page.evaluate(WINDOW_JS, 21)
    context.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2500)
    parser.add_argument("--columns", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5, help="rounds; medians are printed")
    parser.add_argument("--serve", action="store_true", help="keep the server running after the figures")
    parser.add_argument(
        "--server",
        choices=["gunicorn", "runserver"],
        default="gunicorn",
        help="gunicorn: as deployed (DEBUG off, WhiteNoise static files, sendfile); runserver: the dev server"
        " with DEBUG on (default: gunicorn)",
    )
    args = parser.parse_args()

    chromium = shutil.which(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    if not chromium:
        raise SystemExit("no Chromium (install Debian's chromium or set CHROMIUM)")
    work = Path(tempfile.mkdtemp(prefix="bench-viewer-"))
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(
        DEBUG="true" if args.server == "runserver" else "false",
        DATA_DIR=str(work / "data"),
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY="bench-viewer-secret-key-" + "x" * 40,
        PSEUDONYM_KEY="bench-viewer",
        # Production settings, on plain HTTP on the loopback.
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECURE_HSTS_SECONDS="0",
    )
    os.environ.update(env)
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    server = None
    try:
        pairs = prepare(args.rows, args.columns, args.repeat + 2)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        if args.server == "gunicorn":
            from django.core.management import call_command

            call_command("collectstatic", interactive=False, verbosity=0)
        server = start_server(args.server, env, port, work / "server.log")

        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            # Warm up: the server gzips each image's pixels on their first
            # request, and imports its modules; the browser starts its processes.
            context = browser.new_context(bypass_csp=True)
            log_in(context, base)
            page = context.new_page()
            page.goto(f"{base}/")
            for _, radiograph_id in pairs:
                page.evaluate(FETCH_JS, f"/api/radiographs/{radiograph_id}/pixels/")
            context.close()
            measure(browser, base, pairs[0], pairs[1])
            rounds = [measure(browser, base, pairs[i], pairs[i + 1]) for i in range(1, args.repeat + 1)]
            version = browser.version
            browser.close()

        fetches = [r["fetch"] for r in rounds]
        paints = [r["paint"] for r in rounds]
        nexts = [r["next"] for r in rounds]
        windows = [t for r in rounds for t in r["window"]]
        raw_mb = args.rows * args.columns * 2 / 1024**2
        fetch_ms, paint_ms, next_ms, window_ms = (statistics.median(v) for v in (fetches, paints, nexts, windows))
        listed = lambda values: ", ".join(f"{v:.0f}" for v in values)  # noqa: E731
        print(f"Chromium {version}, headless, software canvas (--disable-gpu); server: {args.server};"
              f" {args.columns}x{args.rows} px, {raw_mb:.1f} MB of 16-bit pixels; medians of {args.repeat} rounds;"
              f" {os.cpu_count()} CPUs")  # fmt: skip
        print(f"(a) fetch + arrayBuffer of the pixels (empty cache): {fetch_ms:7.1f} ms   ({listed(fetches)})")
        print(f"(b) label page opened -> first full-res paint:      {paint_ms:7.1f} ms   ({listed(paints)})")
        print(f"    ratio (b)/(a):                                   {paint_ms / fetch_ms:7.2f}      (goal <= 1.5)")
        print(f"    the next image, as after a submit:               {next_ms:7.1f} ms   ({listed(nexts)});"
              f" ratio {next_ms / fetch_ms:.2f}")  # fmt: skip
        print(f"(c) one window/level change, median of {len(windows)}:      {window_ms:7.1f} ms   (goal < 30 ms;"
              f" min {min(windows):.1f}, max {max(windows):.1f})")  # fmt: skip
        if args.serve:
            print(f"\nserving {base}/label/{pairs[-1][0]}/ as {USERNAME} / {PASSWORD}; Ctrl+C ends", flush=True)
            try:
                server.wait()
            except KeyboardInterrupt:
                pass
    finally:
        if server is not None:
            stop(server, timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
