"""Reader-study load: simulated readers answering concurrently through the HTTP API
of the real server (gunicorn, PostgreSQL), and a check that every answer is stored once.

    python bench/readers.py [--readers 50] [--cases 20] [--workers N] [--threads T]
                            [--think 1] [--double 0.05] [--conn-max-age S] [--keep]
                            [--database-url postgres://postgres@127.0.0.1:5432/hipstudy_bench]

Makes a throw-away PostgreSQL database (dropped and re-created) and data folder,
migrates, ingests synthetic radiographs with ground truth, freezes a dataset,
activates a tiny (untrained) classifier, and prepares a study of ``--cases`` test
hips with ``--readers`` readers (washout 0, so each goes straight through the three
phases), each with an API token. Then starts gunicorn (DEBUG off; ``--workers`` sync
workers, ``--threads`` threads each) and runs one client thread per reader, each
with its own keep-alive HTTP session:

    GET  /api/reader/studies/<id>/current/    once, for the first case
    POST /api/reader/studies/<id>/answers/    {case, condition, answer} per case,
                                              the reply's state names the next case

A random ``--double`` share of the answers is sent a second time (half of those at
once, from a second session, while the first is in flight; half after it): the
repeat must get 200 and the stored answer.

``--think`` seconds (mean, exponential; default 1) pass between a reply and the
next answer. 50 readers then offer about 50 answers/s, several times what a real
study's readers do (a person looks at a hip for seconds). ``--think 0`` keeps every
reader busy: a closed loop that measures capacity (answers/s), whose latency is
about readers / throughput (Little's law) and cannot meet the aim on 2 cores (the
floor, /health/live/, does not either).

Then the floor: the same number of clients, with the same think time, each sending
as many GET /health/live/ (one ``SELECT 1``) as it sent answers.

Prints answers per second, p50/p95/p99 of the answer POSTs, the /current/ GETs and
/health/live/, the ratio of the answers' p95 to the aim (100 ms; goal < 1) and to the
floor's p95, and checks the database: every (reader, case, condition) exactly once,
readers x cases x 3 rows (phase 3 counted with the carried-over answers), the stored
answers equal to what the clients got 201 for. Prints OK or FAIL (exit status 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.processes import free_port, stop, wait_for_url  # noqa: E402
from ml.core.vocab import CLASSES  # noqa: E402 - the repository root is on the path from here

AIM_MS = 100.0


# --------------------------------------------------------------------------- database and study


def admin_url(database_url: str) -> tuple[str, str]:
    """The URL of the server's ``postgres`` database and the bench database's name."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not parts.scheme.startswith("postgres") or not name:
        raise SystemExit(f"--database-url must be a postgres://.../NAME URL, got {database_url!r}")
    return urlunsplit(parts._replace(path="/postgres")), name


def database_recreate(database_url: str, *, drop_only: bool = False) -> None:
    import psycopg
    from psycopg import sql

    url, name = admin_url(database_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def setup_study(readers: int, cases: int, out: Path) -> None:
    """Runs in a child process with the bench environment: migrate, build the study, write
    ``{"study": id, "tokens": [...]}`` to ``out``."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from accounts.tokens import token_create
    from devtools.dicom import make_dicom
    from devtools.sample_data import tiny_model_version, truth_dataset, write_tiny_bundle
    from ml.models import DatasetHip, ModelVersion, Split
    from readerstudy import services
    from readerstudy.models import TRAININGS, Group

    start = time.perf_counter()
    call_command("migrate", verbosity=0)
    # About 15% of the patients land in the test split; two hips per film.
    radiographs = max(30, int(cases / 2 / 0.15 * 1.6) + 1)
    dataset = truth_dataset(make_dicom, radiographs=radiographs, patients=max(2, int(radiographs * 0.8)))
    test_hips = DatasetHip.objects.filter(dataset=dataset, split=Split.TEST).count()
    if test_hips < cases:
        raise SystemExit(f"only {test_hips} test hips for {cases} cases: ask for fewer --cases")
    bundle_dir = Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    try:
        version = tiny_model_version(write_tiny_bundle(bundle_dir), dataset, Path(settings.DATA_DIR))
    finally:
        shutil.rmtree(bundle_dir, ignore_errors=True)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    study = services.study_create(name="bench", dataset=dataset, cases=cases, seed=7, washout=dt.timedelta(0))
    study = services.study_prepare(study_id=study.pk)
    tokens = []
    for i in range(readers):
        user = User.objects.create_user(f"bench-reader-{i:03d}")
        services.reader_add(study=study, user=user, group=Group.values[i % 2], training=TRAININGS[i % len(TRAININGS)])
        tokens.append(token_create(user=user)[1])
    out.write_text(json.dumps({"study": study.pk, "tokens": tokens}))
    print(
        f"study of {cases} cases ({radiographs} radiographs ingested, {test_hips} test hips), "
        f"{readers} readers: set up in {time.perf_counter() - start:.1f} s",
        flush=True,
    )


# --------------------------------------------------------------------------- server


def start_gunicorn(env: dict[str, str], port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}",
               "--workers", str(workers), "--threads", str(threads), "--backlog", "2048"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    wait_for_url(f"http://127.0.0.1:{port}/health/live/", process, log, timeout=120)
    return process


# --------------------------------------------------------------------------- clients


@dataclass
class Tally:
    """What one client saw."""

    answer_ms: list[float] = field(default_factory=list)
    current_ms: list[float] = field(default_factory=list)
    repeat_ms: list[float] = field(default_factory=list)
    created: dict[tuple[int, str], str] = field(default_factory=dict)  # (case, condition) -> answer given 201
    repeats: int = 0
    errors: list[str] = field(default_factory=list)


def reader_client(base: str, study: int, token: str, seed: int, think: float, double: float, tally: Tally,
                  barrier: threading.Barrier) -> None:  # fmt: skip
    import requests

    rng = random.Random(seed)
    headers = {"Authorization": f"Token {token}"}
    session, second = requests.Session(), requests.Session()
    session.headers.update(headers)
    second.headers.update(headers)
    answers_url = f"{base}/api/reader/studies/{study}/answers/"
    for client in (session, second):  # warm up: connections open, every worker's imports done
        for _ in range(2):
            client.get(f"{base}/api/reader/studies/", timeout=60).raise_for_status()
    barrier.wait()
    try:
        t0 = time.perf_counter()
        reply = session.get(f"{base}/api/reader/studies/{study}/current/", timeout=60)
        tally.current_ms.append((time.perf_counter() - t0) * 1000)
        if reply.status_code != 200:
            tally.errors.append(f"GET current: {reply.status_code} {reply.text[:200]}")
            return
        state = reply.json()
        while state["case"] is not None:
            if think:
                time.sleep(rng.expovariate(1 / think))
            case = state["case"]
            payload = {"case": case["id"], "condition": case["condition"], "answer": rng.choice(CLASSES)}
            key = (payload["case"], payload["condition"])
            roll = rng.random()
            racer = None
            if roll < double / 2:  # the same answer at once from a second connection (a double click)
                racer_result: dict[str, object] = {}

                def race(payload=payload, result=racer_result) -> None:
                    t = time.perf_counter()
                    result["reply"] = second.post(answers_url, json=payload, timeout=60)
                    result["ms"] = (time.perf_counter() - t) * 1000

                racer = threading.Thread(target=race)
                racer.start()
            t0 = time.perf_counter()
            reply = session.post(answers_url, json=payload, timeout=60)
            elapsed = (time.perf_counter() - t0) * 1000
            replies = [reply]
            if racer is not None:
                racer.join()
                replies.append(racer_result["reply"])
                tally.repeat_ms.append(racer_result["ms"])
                tally.repeats += 1
            codes = sorted(r.status_code for r in replies)
            if codes not in ([201], [200, 201]):
                tally.errors.append(f"POST {payload}: {codes} {[r.text[:200] for r in replies]}")
                return
            tally.answer_ms.append(elapsed)
            if key in tally.created:
                tally.errors.append(f"POST {payload}: stored twice (201 before)")
            tally.created[key] = payload["answer"]
            for r in replies:
                stored = r.json()["answer"]
                if stored["answer"] != payload["answer"] or stored["case"] != payload["case"]:
                    tally.errors.append(f"POST {payload}: reply holds {stored}")
            body = next(r for r in replies if r.status_code == 201).json()
            if double / 2 <= roll < double:  # the same answer again after the reply (a resubmit)
                t0 = time.perf_counter()
                again = session.post(answers_url, json=payload, timeout=60)
                tally.repeat_ms.append((time.perf_counter() - t0) * 1000)
                tally.repeats += 1
                if again.status_code != 200 or again.json()["created"] is not False:
                    tally.errors.append(f"repeat of {payload}: {again.status_code} {again.text[:200]}")
                    return
            state = body["state"]
        if state["step"]["status"] != "done":
            tally.errors.append(f"reader stopped at {state['step']}")
    except Exception as exc:  # a bench client reports and stops
        tally.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        session.close()
        second.close()


def health_client(base: str, count: int, seed: int, think: float, times: list[float],
                  barrier: threading.Barrier) -> None:  # fmt: skip
    import requests

    rng = random.Random(seed)
    with requests.Session() as session:
        for _ in range(2):
            session.get(f"{base}/health/live/", timeout=60).raise_for_status()
        barrier.wait()
        for _ in range(count):
            if think:
                time.sleep(rng.expovariate(1 / think))
            t0 = time.perf_counter()
            reply = session.get(f"{base}/health/live/", timeout=60)
            times.append((time.perf_counter() - t0) * 1000)
            if reply.status_code != 200:
                raise RuntimeError(f"/health/live/: {reply.status_code}")


def run_threads(targets: list[tuple]) -> float:
    """Start one thread per (function, args), release them together; seconds until all end."""
    barrier = threading.Barrier(len(targets) + 1)
    threads = [threading.Thread(target=fn, args=(*args, barrier)) for fn, args in targets]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"p50": values[0] if values else float("nan"), "p95": float("nan"), "p99": float("nan")}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": statistics.median(values), "p95": cuts[94], "p99": cuts[98]}


def line(name: str, values: list[float]) -> str:
    p = percentiles(values)
    return f"{name:<34} n={len(values):5d}  p50 {p['p50']:6.1f}  p95 {p['p95']:6.1f}  p99 {p['p99']:6.1f} ms"


# --------------------------------------------------------------------------- the check


def check_database(database_url: str, study: int, readers: int, cases: int, tallies: list[Tally]) -> list[str]:
    """What is wrong with the stored answers (empty when all is well)."""
    import psycopg

    problems = []
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT u.username, r.code, s.condition, c.id, s.answer, s.carried_over
               FROM readerstudy_response s JOIN readerstudy_reader r ON r.id = s.reader_id
               JOIN readerstudy_case c ON c.id = s.case_id JOIN auth_user u ON u.id = r.user_id
               WHERE r.study_id = %s""",
            [study],
        ).fetchall()
    seen: dict[tuple[str, int, str], int] = {}
    for username, _code, condition, case_id, _answer, _carried in rows:
        seen[username, case_id, condition] = seen.get((username, case_id, condition), 0) + 1
    doubled = [key for key, n in seen.items() if n > 1]
    if doubled:
        problems.append(f"{len(doubled)} (reader, case, condition) stored more than once, e.g. {doubled[:3]}")
    expected = readers * cases * 3
    if len(rows) != expected:
        problems.append(f"{len(rows)} responses stored, expected {expected} (readers x cases x 3 conditions)")
    per_reader: dict[str, dict[tuple[int, str], tuple[str, bool]]] = {}
    for username, _code, condition, case_id, answer, carried in rows:
        per_reader.setdefault(username, {})[case_id, condition] = (answer, carried)
    for i, tally in enumerate(tallies):
        stored = per_reader.get(f"bench-reader-{i:03d}", {})
        answered = {key: answer for key, (answer, carried) in stored.items() if not carried}
        if answered != tally.created:
            lost = set(tally.created) - set(answered)
            extra = set(answered) - set(tally.created)
            changed = [k for k in set(answered) & set(tally.created) if answered[k] != tally.created[k]]
            problems.append(
                f"reader {i}: {len(lost)} answers lost, {len(extra)} stored without a 201, {len(changed)} changed"
            )
        for condition in ("model_quality", "full_quality", "model_aided"):
            n = sum(1 for (_case, c) in stored if c == condition)
            if n != cases:
                problems.append(f"reader {i}: {n} {condition} responses, expected {cases}")
    return problems


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=50, help="concurrent simulated readers")
    parser.add_argument("--cases", type=int, default=20, help="cases in the study (each read 2-3 times)")
    cores = os.cpu_count() or 1
    parser.add_argument("--workers", type=int, default=2 * cores + 1, help="gunicorn workers (default 2 x cores + 1)")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument(
        "--think", type=float, default=1.0, help="mean seconds a reader looks at a case (0: none, a capacity test)"
    )
    parser.add_argument("--double", type=float, default=0.05, help="share of answers sent twice")
    parser.add_argument(
        "--conn-max-age",
        type=int,
        help="the server's DB_CONN_MAX_AGE (default: the settings' own; 0 opens a database connection per request)",
    )
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/hipstudy_bench")
    parser.add_argument("--keep", action="store_true", help="keep the database and data folder")
    parser.add_argument("--setup", type=Path, help=argparse.SUPPRESS)  # the child process's job
    args = parser.parse_args()
    if args.setup:
        setup_study(args.readers, args.cases, args.setup)
        return 0
    if args.readers < 1 or args.cases < 1 or args.workers < 1 or args.threads < 1:
        parser.error("--readers, --cases, --workers and --threads must be at least 1")
    if not 0 <= args.double <= 1 or args.think < 0:
        parser.error("--double is a share in [0, 1] and --think is not negative")

    data_dir = Path(tempfile.mkdtemp(prefix="bench-readers-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": args.database_url,
        "DATA_DIR": str(data_dir),
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SCORE_ON_ARRIVAL": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("REDIS_URL", None)
    env.pop("DB_CONN_MAX_AGE", None)
    if args.conn_max_age is not None:
        env["DB_CONN_MAX_AGE"] = str(args.conn_max_age)
    server = None
    try:
        database_recreate(args.database_url)
        setup_out = data_dir / "setup.json"
        subprocess.run(
            [sys.executable, __file__, "--setup", str(setup_out), "--readers", str(args.readers),
             "--cases", str(args.cases)],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        setup = json.loads(setup_out.read_text())
        port = free_port()
        server = start_gunicorn(env, port, args.workers, args.threads, data_dir / "gunicorn.log")
        base = f"http://127.0.0.1:{port}"
        print(
            f"gunicorn: {args.workers} workers x {args.threads} threads, "
            f"DB_CONN_MAX_AGE={env.get('DB_CONN_MAX_AGE', 'default')}; "
            f"{args.readers} readers, think {args.think:g} s, {args.double:.0%} sent twice, {cores} cores",
            flush=True,
        )

        tallies = [Tally() for _ in range(args.readers)]
        targets = [
            (reader_client, (base, setup["study"], token, i, args.think, args.double, tallies[i]))
            for i, token in enumerate(setup["tokens"])
        ]
        seconds = run_threads(targets)
        errors = [f"reader {i}: {e}" for i, t in enumerate(tallies) for e in t.errors]
        answer_ms = [ms for t in tallies for ms in t.answer_ms]
        current_ms = [ms for t in tallies for ms in t.current_ms]
        repeat_ms = [ms for t in tallies for ms in t.repeat_ms]
        answers = len(answer_ms)

        per_client = max(1, round(answers / args.readers))
        health_ms: list[float] = []
        lock = threading.Lock()

        def health(i: int, barrier: threading.Barrier) -> None:
            times: list[float] = []
            try:
                health_client(base, per_client, 10_000 + i, args.think, times, barrier)
            finally:
                with lock:
                    health_ms.extend(times)

        health_seconds = run_threads([(health, (i,)) for i in range(args.readers)])

        if len(health_ms) != per_client * args.readers:
            errors.append(f"/health/live/: {per_client * args.readers - len(health_ms)} requests failed")
        problems = errors + check_database(args.database_url, setup["study"], args.readers, args.cases, tallies)
        p95 = percentiles(answer_ms)["p95"]
        floor = percentiles(health_ms)["p95"]
        repeats = sum(t.repeats for t in tallies)
        print(
            f"{answers} answers in {seconds:.1f} s: {answers / seconds:.0f} answers/s (+ {repeats} repeats); "
            f"/health/live/: {len(health_ms) / health_seconds:.0f} requests/s"
        )
        print(line("POST answers/ (stored, 201)", answer_ms))
        print(line("POST answers/ again (200)", repeat_ms))
        print(line("GET current/", current_ms))
        print(line("GET /health/live/ (floor)", health_ms))
        print(f"ratio answer p95 / aim {AIM_MS:.0f} ms: {p95 / AIM_MS:.2f} (goal < 1); "
              f"answer p95 / /health/live/ p95: {p95 / floor:.2f}")  # fmt: skip
        if problems:
            for problem in problems[:20]:
                print(f"  {problem}")
            print(f"FAIL: {len(problems)} problems")
            return 1
        print(f"OK: {args.readers * args.cases * 3} responses, each (reader, case, condition) stored exactly once")
        return 0
    finally:
        if server is not None:
            stop(server)
        if args.keep:
            print(f"kept: DATA_DIR={data_dir} DATABASE_URL={args.database_url}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
            try:
                database_recreate(args.database_url, drop_only=True)
            except Exception as exc:  # the result stands; say what was left behind
                print(f"could not drop the bench database: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
