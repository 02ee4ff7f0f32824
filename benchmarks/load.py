"""Load benchmark of the public library (issue 7): gunicorn on loopback, 10,000 filings, 50 clients for 60 s.

What it does, in one run:
1. Makes a fresh registry instance in a temporary folder and fills it with ``benchmarks/generate_filings.py``
   (default 10,000 filings) — on SQLite, or with ``--postgres URL`` in a PostgreSQL database it creates (the
   role needs CREATEDB) and drops at the end.
2. Starts gunicorn on 127.0.0.1 at a free port, serving ``benchmarks/load_app.py``: the registry at ``/`` and a
   bare ``Flask(__name__)`` route at ``/floor/`` (werkzeug DispatcherMiddleware), so the floor runs in the same
   server, workers and run. Workers: ``--workers`` (default 2) gthread workers of ``--threads`` (default 4); see
   DEFAULT_WORKERS for why.
3. Runs locust headless (``benchmarks/locustfile.py``, FastHttpUser, no think time) in a subprocess: ``--users``
   (default 50) readers for ``--duration`` seconds (default 60) over the public library mix — the list with
   filters, sorting and pages, search in Chinese and English, entry pages, the JSON API, standings and
   statistics — after a warm-up of the same mix (``--warmup``, default 60 s); then the floor route alone, with
   the same clients and duration.
4. Prints p50 / p95 / p99 (ms), throughput (requests/s) and errors per endpoint group and overall — for the
   warm-up, and for the measured run — the floor's, and the ratios; checks the targets — p95 under 100 ms,
   throughput at least 30 % of the floor's, no errors — on the measured run, and exits 1 if one is missed.

Why a warm-up of a minute: the targets are for the library in use, and a library in use has its pages made —
the server keeps each page it made until the library changes (registry.library.page_cache). A server that has
just started makes every page at its first ask: in the first minute about one request in ten is a first ask
(entries, lists and searches drawn from thousands), and those take most of the CPU. The warm-up is that first
minute, with the same clients and mix, and its figures are printed too (not checked against the targets): they
are what readers see just after a release, or after a decision (which changes every page).

Why locust: FastHttpUser (geventhttpclient) drives 50 keep-alive clients from one process for a fraction of the
CPU a thread per client would take — the clients share the machine's two cores with the server — and its
statistics (per request name, percentiles, CSV) are what this benchmark prints. It runs in a subprocess, bounded
by its own ``--run-time`` and a timeout here.

Usage: python benchmarks/load.py [--filings 10000] [--users 50] [--duration 60] [--postgres URL]
       [--workers 2] [--threads 4] [--quick] [--keep]
``--quick``: a smoke run (300 filings, 10 clients, 5 s each part, 1 s of warm-up; under a minute). Absolute times depend on the machine; the
ratio to the floor measured in the same run is the fairer figure on a shared one.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: `benchmarks` and `registry` from the checkout

import sqlalchemy as sa  # noqa: E402

TARGET_P95_MS = 100.0
TARGET_FLOOR_SHARE = 0.30
# 2 cores: one gunicorn worker process per core, so the two run Python in parallel (one GIL each); a few threads
# in each (gthread) keep a core busy while one request waits on the database, and hold idle keep-alive
# connections without tying up a thread. More processes than cores only add switching, and the load generator
# needs CPU too; more threads only queue on the GIL.
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 4
MAX_USERS = 500
MAX_DURATION = 600
GROUPS = (
    "list /library",
    "search /library?q=",
    "entry /library/<number>",
    "api /api/v1/library…",
    "standings & statistics",
)
FLOOR = "floor /floor/"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--filings", type=int, default=None, help="filings to generate (default 10000; quick 300)")
    parser.add_argument("--users", type=int, default=None, help="concurrent clients (default 50; quick 10)")
    parser.add_argument("--duration", type=int, default=None, help="seconds per part (default 60; quick 5)")
    parser.add_argument("--warmup", type=int, default=None, help="seconds of warm-up before measuring (default 60)")
    parser.add_argument("--postgres", default=None, metavar="URL", help="run on PostgreSQL (a server URL)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="threads per gunicorn worker")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the instance folder (and PostgreSQL database)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.filings = args.filings if args.filings is not None else (300 if quick else 10_000)
    args.users = args.users if args.users is not None else (10 if quick else 50)
    args.duration = args.duration if args.duration is not None else (5 if quick else 60)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 60)
    if not 1 <= args.users <= MAX_USERS:
        parser.error(f"--users is from 1 to {MAX_USERS}")
    if not 1 <= args.duration <= MAX_DURATION or not 0 <= args.warmup <= MAX_DURATION:
        parser.error(f"--duration and --warmup are from 1 (--warmup 0) to {MAX_DURATION} seconds")
    if not 1 <= args.workers <= 16 or not 1 <= args.threads <= 64:
        parser.error("--workers is from 1 to 16, --threads from 1 to 64")
    return args


# --- the database ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_database(server_url: str, *, keep: bool):
    """A new, empty PostgreSQL database on ``server_url``'s server (dropped at the end unless ``keep``)."""
    base = sa.engine.make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"registry_load_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        if keep:
            print(f"Kept the PostgreSQL database {name}.")
        else:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def generate(database_url: str, instance: Path, filings: int, replicates: int) -> dict:
    """Fill the instance (in this process), and return what the clients will ask for."""
    from benchmarks import generate_filings

    app = generate_filings.make_app(database_url, str(instance))
    engine = app.extensions["registry"].engine
    try:
        generate_filings.generate(app, count=filings, replicates=replicates)
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT coalesce(f.filing_number, CAST(f.id AS VARCHAR(20))) FROM library_search s "
                    "JOIN filing f ON f.id = s.filing_id ORDER BY s.filing_id"
                )
            ).all()
            cities = [r[0] for r in connection.execute(sa.text("SELECT code FROM city ORDER BY code"))]
            years = sorted(
                {
                    int(str(r[0])[:4])
                    for r in connection.execute(
                        sa.text("SELECT decided_at FROM library_search WHERE decided_at IS NOT NULL")
                    )
                }
            )
    finally:
        engine.dispose()
    entries = [r[0] for r in rows]
    step = max(1, len(entries) // 2000)  # a spread sample over the whole library
    sample = entries[::step]
    random.Random(0).shuffle(sample)  # the clients favour the first (Zipf): any entries, not the oldest
    return {"entries": sample, "cities": cities, "years": years or [2026]}


# --- the server ------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(database_url: str, instance: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_") and k != "DATABASE_URL"}
    env |= {
        "REGISTRY_DATABASE_URL": database_url,
        "REGISTRY_INSTANCE": str(instance),
        "REGISTRY_LOG_SIGNING_KEY_FILE": str(instance / "log-signing-key"),
        "PYTHONPATH": str(ROOT),
    }
    return env


def start_server(env: dict, *, port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "benchmarks.load_app:application",
        "--chdir",
        str(ROOT),
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "gthread",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--backlog",
        "2048",
        "--keep-alive",
        "30",
        "--log-level",
        "warning",
    ]
    with log.open("wb") as handle:
        server = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited ({server.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/floor/", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    stop_server(server)
    raise SystemExit("gunicorn did not answer within 60 s")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# --- the clients -----------------------------------------------------------------------------------------------------


def run_locust(user_class: str, *, host: str, users: int, seconds: int, out: Path, targets: Path) -> dict[str, dict]:
    """Run locust headless for ``seconds`` with ``users`` clients of ``user_class``; its figures per request name."""
    prefix = out / user_class
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "benchmarks" / "locustfile.py"),
        "--headless",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{seconds}s",
        "--stop-timeout",
        "5",
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "ERROR",
        user_class,
    ]
    env = dict(os.environ, LOAD_TARGETS=str(targets))
    log = out / f"{user_class}.log"
    with log.open("wb") as handle:
        try:
            subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=seconds + 90, check=False)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"locust did not finish in time; see {log}") from None
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise SystemExit(f"locust wrote no statistics:\n{log.read_text(errors='replace')[-3000:]}")
    figures = {}
    with stats.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            count = int(row["Request Count"])
            figures[row["Name"]] = {
                "requests": count,
                "errors": int(row["Failure Count"]),
                "p50": float(row["50%"]) if count else 0.0,
                "p95": float(row["95%"]) if count else 0.0,
                "p99": float(row["99%"]) if count else 0.0,
                "rps": float(row["Requests/s"]),
            }
    failures = Path(f"{prefix}_failures.csv")
    if failures.exists():
        figures["_failures"] = list(csv.DictReader(failures.open(encoding="utf-8")))  # type: ignore[assignment]
    return figures


def warm_up(host: str, seconds: int, out: Path, target_file: Path, users: int) -> dict[str, dict] | None:
    """The same clients and mix for ``seconds`` before measuring, from the server's start: its figures, printed
    but not checked against the targets (see the module's docstring); None without a warm-up."""
    if not seconds:
        return None
    return run_locust("LibraryReader", host=host, users=users, seconds=seconds, out=out / "warmup", targets=target_file)


# --- the report ------------------------------------------------------------------------------------------------------


def line(name: str, f: dict) -> str:
    return (
        f"  {name:<26} {f['requests']:>8} {f['errors']:>6} {f['p50']:>8.0f} {f['p95']:>8.0f} {f['p99']:>8.0f}"
        f" {f['rps']:>9.1f}"
    )


HEADER = (
    f"  {'endpoint group':<26} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>9}"
)


def table(title: str, rows: list[tuple[str, dict]], out) -> None:
    print(f"\n{title}", file=out)
    print(HEADER, file=out)
    for name, figures in rows:
        print(line(name, figures), file=out)


def by_group(figures: dict) -> list[tuple[str, dict]]:
    """A phase's figures as rows: each endpoint group's, then all of them together."""
    rows = [(group, figures[group]) for group in GROUPS if group in figures]
    return rows + ([("overall", figures["Aggregated"])] if "Aggregated" in figures else [])


def report(
    library: dict,
    floor: dict,
    *,
    users: int,
    seconds: int,
    database: str,
    warmup: dict | None = None,
    warmup_seconds: int = 0,
    out=sys.stdout,
) -> bool:
    """Print the figures and the verdicts; True when every target is met (the warm-up's figures are printed, and
    its errors count, but its times are not held to the targets)."""
    if warmup:
        table(
            f"Warm-up on {database}, from the server's start: {users} clients for {warmup_seconds} s "
            "(every page made at its first ask; printed, not held to the targets)",
            by_group(warmup),
            out,
        )
    table(f"Public library on {database}: {users} clients for {seconds} s, measured", by_group(library), out)
    overall = library.get("Aggregated")
    floor_figures = floor.get(FLOOR) or floor.get("Aggregated")
    if overall is None or floor_figures is None:
        print("No figures: the clients sent no request.", file=out)
        return False
    table(f"Floor (a bare Flask route, same server): {users} clients for {seconds} s", [("floor", floor_figures)], out)
    share = overall["rps"] / floor_figures["rps"] if floor_figures["rps"] else 0.0
    p95_ratio = overall["p95"] / floor_figures["p95"] if floor_figures["p95"] else float("inf")
    print(f"\nRatios: throughput {share:.1%} of the floor's; p95 {p95_ratio:.1f}x the floor's", file=out)
    failures = [*((warmup or {}).get("_failures") or []), *(library.get("_failures") or [])]
    for failure in failures[:10]:
        print(f"  error: {failure.get('Name')} {failure.get('Error')} ×{failure.get('Occurrences')}", file=out)
    errors = overall["errors"] + ((warmup or {}).get("Aggregated") or {}).get("errors", 0)
    checks = [
        (f"p95 {overall['p95']:.0f} ms < {TARGET_P95_MS:.0f} ms", overall["p95"] < TARGET_P95_MS),
        (f"throughput {share:.1%} ≥ {TARGET_FLOOR_SHARE:.0%} of the floor's", share >= TARGET_FLOOR_SHARE),
        (f"errors {errors} = 0 (warm-up included)", errors == 0),
    ]
    print("\nTargets:", file=out)
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'MISS'}  {text}", file=out)
    return all(ok for _, ok in checks)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="registry-load-"))
    instance = work / "instance"
    out = work / "locust"
    (out / "warmup").mkdir(parents=True)
    started = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            if args.postgres:
                database_url = stack.enter_context(postgres_database(args.postgres, keep=args.keep))
                database = "PostgreSQL"
            else:
                database_url = f"sqlite:///{instance / 'registry.sqlite3'}"
                database = "SQLite"
            targets = generate(database_url, instance, args.filings, replicates=50 if args.quick else 200)
            target_file = work / "targets.json"
            target_file.write_text(json.dumps(targets, ensure_ascii=False), encoding="utf-8")
            port = free_port()
            host = f"http://127.0.0.1:{port}"
            server = start_server(
                server_environment(database_url, instance),
                port=port,
                workers=args.workers,
                threads=args.threads,
                log=work / "gunicorn.log",
            )
            stack.callback(stop_server, server)
            print(
                f"gunicorn on {host}: {args.workers} gthread workers × {args.threads} threads; "
                f"{args.users} clients, {args.duration} s per part (after {args.warmup} s of warm-up)",
                flush=True,
            )
            warmup = warm_up(host, args.warmup, out, target_file, args.users)
            library = run_locust(
                "LibraryReader", host=host, users=args.users, seconds=args.duration, out=out, targets=target_file
            )
            floor = run_locust(
                "FloorClient", host=host, users=args.users, seconds=args.duration, out=out, targets=target_file
            )
            met = report(
                library,
                floor,
                users=args.users,
                seconds=args.duration,
                database=database,
                warmup=warmup,
                warmup_seconds=args.warmup,
            )
            if server.poll() is not None:
                print(f"gunicorn stopped during the run:\n{(work / 'gunicorn.log').read_text()[-3000:]}")
                met = False
            errors = (work / "gunicorn.log").read_text(errors="replace")
            if "Traceback" in errors:
                print(f"\nThe server logged errors:\n{errors[-3000:]}")
    finally:
        if args.keep:
            print(f"Kept {work}.")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nWhole run: {time.perf_counter() - started:.0f} s")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
