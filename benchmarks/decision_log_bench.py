"""Decision-log database benchmark: fill a log to 1,000,000 entries, then time appends and proofs through the service.

What it measures (milliseconds, mean / p50 / p99), through ``registry.decision_log.service`` on a migrated database:
  append       ``service.append`` alone: bump the head, build the leaf, store the entry and its O(log n) new nodes,
               compute the root, sign and store the checkpoint (the last ``--appends`` entries, one per transaction)
  append+commit  the whole transaction around it: open a session, append, commit (on SQLite a WAL fsync), close
  inclusion    ``service.inclusion(index, size)`` at random 0 <= index < size <= n, in one read session
  consistency  ``service.consistency(first, second)`` at random 0 < first <= second <= n
Every tenth proof is checked with ``registry.ledger.merkle.verify_inclusion`` / ``verify_consistency`` against
``service.root_hash`` (itself checked against a root computed in memory), so the figures are for correct proofs.

The same operations are first measured at a small size (``--baseline`` entries) in a second database of the same
kind in the same run, and the ratio large/baseline is printed: the issue asks that appending and proving stay fast
as the log grows (target under 5 ms each at 1,000,000 entries). The verdict lines judge the mean and show the p99:
on a shared machine the p99 measures the neighbours as much as the log.

Filling. All but the last ``--appends`` entries are written in bulk, not through ``service.append``: leaves are
~550-byte canonical-JSON suspension records (``records.record`` + ``canonical_json`` once, as a template, with a
distinct timestamp per entry), and leaf hashes and every complete-subtree node come from ``registry.ledger.merkle``
(``nodes_to_store_on_append`` into an ``InMemoryNodeStore``); ``log_entry`` and ``log_node`` rows go in with
executemany in batches, then ``log_head`` and one signed checkpoint for the filled size. The filled log is checked:
the root the database gives equals the in-memory root.

Foreign keys of the filled entries. Every entry points at the one real filing. Their transitions:
  SQLite      they do not exist: the filling connection (its own engine) runs ``PRAGMA foreign_keys=OFF``;
              the appended entries' transitions are real rows and the timed appends run with foreign keys ON.
  PostgreSQL  they are real ``filing_transition`` rows, inserted in bulk with explicit ids (then the id sequence is
              moved past them), so every constraint holds and no superuser (``session_replication_role``) is needed.
With ``--postgres URL`` (e.g. the URL ``.ci/start-postgres`` prints; the role needs CREATEDB) the benchmark also runs on
PostgreSQL in a temporary database, dropped at the end. Temporary files are removed at the end.

Usage: python benchmarks/decision_log_bench.py [--entries 1000000] [--baseline 2000] [--appends 1000]
       [--proofs 1000] [--seed 0] [--postgres postgresql://user:password@host:5432/postgres]
Exit status 1 if a target is missed. At 1,000,000 entries on 2 shared cores: about 1 minute and 1 GB of disk on
SQLite; with --postgres 2 more minutes and 1.5 GB.
"""

from __future__ import annotations

import argparse
import random
import resource
import secrets
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from registry import migrations
from registry.accounts.models import Role, User
from registry.cities.models import City
from registry.db import make_engine, transaction
from registry.decision_log import records
from registry.decision_log import service as log
from registry.decision_log.keys import LogKeys, write_new_key
from registry.decision_log.models import LogCheckpoint
from registry.filings.lifecycle import Action
from registry.filings.models import Filing, FilingTransition
from registry.ledger import checkpoint as checkpoints
from registry.ledger import merkle
from registry.ledger.canonical import canonical_json

TARGET_MS = 5.0
MAX_ENTRIES = 1_000_000
BATCH = 25_000
VERIFY_EVERY = 10
ORIGIN = "bench.example/410000/decision-log"
CITY = SimpleNamespace(code="410100", name_zh="郑州市", name_en="Zhengzhou")
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
REASON = (
    "复审发现该算法在资格认定中对六十岁以上申请人的误拒率明显高于其他群体，超出本风险等级审计政策允许的差异上限；"
    "在市级团队提交新的测试报告并通过独立审计之前暂停使用。"
)
STEP = {
    "action": Action.SUSPEND.value,
    "from_state": "approved",
    "to_state": "suspended",
    "actor_role": "reviewer",
    "reason": REASON,
}
TRANSITION = FilingTransition.__table__


# --- the rows every entry points at -------------------------------------------------------------------------------


def make_filing(session: Session) -> Filing:
    """The one city, account and approved filing every entry of the benchmark log is about."""
    session.add(City(code=CITY.code, name_zh=CITY.name_zh, name_en=CITY.name_en, province_code="410000"))
    reviewer = User(username="bench-reviewer", display_name="基准测试审核员", role=Role.REVIEWER, password_hash="x")
    session.add(reviewer)
    session.flush()
    filing = Filing(
        city_code=CITY.code,
        state="approved",
        algorithm_name_zh="城乡居民最低生活保障资格认定模型",
        algorithm_name_en="Minimum living allowance eligibility model",
        algorithm_version="2.3.1",
        scenario="eligibility",
        risk_tier="III",
        filing_number=f"豫算备{CITY.code}-2026-0001",
        created_by_id=reviewer.id,
    )
    session.add(filing)
    session.flush()
    return filing


def step_time(position: int) -> datetime:
    """The time of the ``position``-th step (1-based): one a second, microseconds apart so no two leaves match."""
    return BASE_TIME + timedelta(seconds=position, microseconds=position % 1_000_000)


def insert_steps(connection, filing_id: int, first_id: int, last_id: int) -> None:
    """Real ``filing_transition`` rows with ids ``first_id..last_id`` (the i-th entry's step has id i + 1)."""
    for start in range(first_id, last_id + 1, BATCH):
        rows = [
            {"id": i, "filing_id": filing_id, "actor_id": None, "at": step_time(i), **STEP}
            for i in range(start, min(last_id, start + BATCH - 1) + 1)
        ]
        connection.execute(sa.insert(TRANSITION), rows)


# --- filling in bulk ----------------------------------------------------------------------------------------------


class LeafMaker:
    """The leaf of entry ``i`` exactly as ``service.append`` would build it for the step with id ``i + 1``, made from
    one canonical-JSON template (only the timestamp differs): ~550 bytes, and 1,000,000 of them in a few seconds."""

    MARK = "2000-01-01T00:00:00.000000Z"

    def __init__(self, filing: Filing) -> None:
        step = SimpleNamespace(at=datetime(2000, 1, 1, tzinfo=UTC), **STEP)
        body = records.record(filing=filing, transition=step, city_name_zh=CITY.name_zh)
        before, mark, after = canonical_json(body).partition(self.MARK.encode())
        assert mark, "the record's time is not where the template expects it"
        self.before, self.after = before, after

    def leaf(self, index: int) -> bytes:
        return self.before + step_time(index + 1).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode() + self.after

    def check(self, filing: Filing, index: int) -> None:
        """The template's leaf is the one ``records.record`` gives for that step (so the fill is realistic)."""
        step = SimpleNamespace(at=step_time(index + 1), **STEP)
        body = records.record(filing=filing, transition=step, city_name_zh=CITY.name_zh)
        assert canonical_json(body) == self.leaf(index), "the leaf template does not match records.record"


def fill(
    engine: Engine, *, url: str, count: int, filing: Filing, keys: LogKeys, store: merkle.InMemoryNodeStore
) -> int:
    """Write entries 0..count-1, their nodes, the head and the checkpoint of ``count``; return the node rows."""
    sqlite = engine.dialect.name == "sqlite"
    maker = LeafMaker(filing)
    for index in {0, max(count - 1, 0)}:
        maker.check(filing, index)
    kind = records.LOGGED[Action.SUSPEND]
    node_rows = 0
    filler = make_engine(url) if sqlite else engine  # its own engine: the pragmas below never reach the app's pool
    try:
        with filler.connect() as connection:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # the filled entries' steps do not exist
                connection.exec_driver_sql("PRAGMA synchronous=OFF")  # a crash only loses a benchmark database
                connection.exec_driver_sql("PRAGMA cache_size=-262144")
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
            elif count:
                insert_steps(connection, filing.id, 1, count)
                connection.commit()
            for start in range(0, count, BATCH):
                entries, nodes = [], []
                for index in range(start, min(count, start + BATCH)):
                    leaf = maker.leaf(index)
                    leaf_hash = merkle.leaf_hash(leaf)
                    new = merkle.nodes_to_store_on_append(index, leaf_hash, store.get_many)
                    store.put_many(new)
                    entries.append(
                        {
                            "index": index,
                            "leaf": leaf,
                            "leaf_hash": leaf_hash.hex(),
                            "kind": kind,
                            "filing_id": filing.id,
                            "transition_id": index + 1,
                            "decision_id": None,
                            "created_at": step_time(index + 1),
                        }
                    )
                    nodes += [{"level": level, "index": ix, "hash": h} for level, ix, h in new]
                connection.execute(sa.insert(log.ENTRY), entries)
                connection.execute(sa.insert(log.NODE), nodes)
                connection.commit()
                node_rows += len(nodes)
            connection.execute(sa.update(log.HEAD).where(log.HEAD.c.id == 1).values(tree_size=count))
            if count:
                root = merkle.root_at(count, store)
                note = checkpoints.sign_checkpoint(checkpoints.Checkpoint(keys.origin, count, root), keys.signer)
                connection.execute(
                    sa.insert(LogCheckpoint.__table__).values(
                        tree_size=count, root_hash=root.hex(), note=note.decode(), created_at=datetime.now(UTC)
                    )
                )
            connection.commit()
            if sqlite:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        if filler is not engine:
            filler.dispose()
    return node_rows


# --- timing -------------------------------------------------------------------------------------------------------


@dataclass
class Result:
    entries: int
    filled: int
    fill_seconds: float
    node_rows: int
    checked: int = 0
    samples: dict[str, array] = field(default_factory=dict)
    disk_bytes: int | None = None


def timed_appends(engine: Engine, *, keys: LogKeys, filing: Filing, count: int, store, result: Result) -> None:
    """Append the last ``count`` entries through ``service.append``, one committed transaction each."""
    first = result.filled + 1  # the step of entry i has id i + 1
    with transaction(engine) as session:
        insert_steps(session.connection(), filing.id, first, first + count - 1)
        if engine.dialect.name == "postgresql":  # the ids were given: move the sequence past them
            session.execute(
                sa.text("SELECT setval(pg_get_serial_sequence('filing_transition', 'id'), :n)"),
                {"n": first + count - 1},
            )
    with Session(engine) as session:
        steps = list(
            session.exec(select(FilingTransition).where(FilingTransition.id >= first).order_by(FilingTransition.id))
        )
        session.expunge_all()
    clock = time.perf_counter_ns
    append_ns, commit_ns = array("q"), array("q")
    for step in steps:
        t0 = clock()
        with transaction(engine) as session:
            t1 = clock()
            appended = log.append(session, keys=keys, filing=filing, transition=step)
            t2 = clock()
        t3 = clock()
        append_ns.append(t2 - t1)
        commit_ns.append(t3 - t0)
        store.put_many(merkle.nodes_to_store_on_append(appended.index, appended.leaf_hash, store.get_many))
    result.samples["append"], result.samples["append+commit"] = append_ns, commit_ns
    with Session(engine) as session:
        size = log.tree_size(session)
        assert size == result.entries, f"the log has {size} entries, expected {result.entries}"
        opened = checkpoints.open_checkpoint(appended.checkpoint, [keys.verifier], origin=keys.origin)
        assert opened.checkpoint.size == size and opened.checkpoint.root_hash == merkle.root_at(size, store)
        assert log.root_hash(session) == merkle.root_at(size, store), "database root differs from the in-memory one"


def timed_proofs(engine: Engine, *, proofs: int, rng: random.Random, store, result: Result) -> None:
    """Time inclusion and consistency proofs at random sizes in one read session; verify every tenth."""
    n = result.entries
    clock = time.perf_counter_ns
    inclusion_ns, consistency_ns = array("q"), array("q")
    with Session(engine) as session:
        for i in range(proofs):
            size = rng.randint(1, n)
            index = rng.randrange(size)
            t0 = clock()
            proof = log.inclusion(session, index, size)
            inclusion_ns.append(clock() - t0)
            second = rng.randint(1, n)
            first = rng.randint(1, second)
            t0 = clock()
            step = log.consistency(session, first, second)
            consistency_ns.append(clock() - t0)
            if i % VERIFY_EVERY == 0:
                check_proofs(session, proof, step, store)
                result.checked += 2
    result.samples["inclusion"], result.samples["consistency"] = inclusion_ns, consistency_ns


def check_proofs(session: Session, inclusion: dict, consistency: dict, store) -> None:
    index, size = inclusion["index"], inclusion["tree_size"]
    entry = session.execute(sa.select(log.ENTRY.c.leaf, log.ENTRY.c.leaf_hash).where(log.ENTRY.c.index == index)).one()
    leaf_hash = merkle.leaf_hash(bytes(entry.leaf))
    assert leaf_hash.hex() == entry.leaf_hash, f"entry {index}: stored leaf hash is not the hash of its leaf"
    root = log.root_hash(session, size)
    assert root == merkle.root_at(size, store), f"database root of size {size} differs from the in-memory one"
    merkle.verify_inclusion(leaf_hash, index, size, merkle.hashes_from_hex(inclusion["hashes"]), root)
    first, second = consistency["first"], consistency["second"]
    merkle.verify_consistency(
        first,
        second,
        merkle.hashes_from_hex(consistency["hashes"]),
        log.root_hash(session, first),
        log.root_hash(session, second),
    )


# --- one run on one database --------------------------------------------------------------------------------------


def run(engine: Engine, *, url: str, workdir: Path, entries: int, appends: int, proofs: int, seed: int) -> Result:
    migrations.upgrade(engine)
    keys = write_new_key(workdir / f"log-signing-key-{engine.dialect.name}-{entries}", ORIGIN)
    with transaction(engine) as session:
        filing = make_filing(session)
    store = merkle.InMemoryNodeStore()
    filled = entries - appends
    started = time.perf_counter()
    node_rows = fill(engine, url=url, count=filled, filing=filing, keys=keys, store=store)
    result = Result(entries=entries, filled=filled, fill_seconds=time.perf_counter() - started, node_rows=node_rows)
    with Session(engine) as session:
        assert log.tree_size(session) == filled
        assert log.root_hash(session) == merkle.root_at(filled, store), "the filled log's root is wrong"
    timed_appends(engine, keys=keys, filing=filing, count=appends, store=store, result=result)
    timed_proofs(engine, proofs=proofs, rng=random.Random(seed), store=store, result=result)
    return result


@contextmanager
def sqlite_database(workdir: Path, name: str) -> Iterator[tuple[Engine, str, Callable[[], int]]]:
    path = workdir / f"{name}.sqlite"
    url = f"sqlite:///{path}"
    engine = make_engine(url)

    def disk() -> int:
        return sum(p.stat().st_size for p in workdir.glob(f"{name}.sqlite*"))

    try:
        yield engine, url, disk
    finally:
        engine.dispose()


@contextmanager
def postgres_database(server_url: str, name: str) -> Iterator[tuple[Engine, str, Callable[[], int]]]:
    server = sa.engine.make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    database = f"decision_log_bench_{name}_{secrets.token_hex(4)}"
    url = server.set(database=database)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{database}"')
    engine = sa.create_engine(url)

    def disk() -> int:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())

    try:
        yield engine, url.render_as_string(hide_password=False), disk
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.dispose()


# --- report -------------------------------------------------------------------------------------------------------


def stats(samples: array) -> tuple[float, float, float]:
    ms = [s / 1e6 for s in samples]
    p99 = statistics.quantiles(ms, n=100)[98] if len(ms) >= 100 else max(ms)
    return statistics.fmean(ms), statistics.median(ms), p99


def report(backend: str, baseline: Result, large: Result) -> list[str]:
    """Print the figures and the ratios; return the targets missed."""
    print(f"\n== {backend}: baseline {baseline.entries:,} entries, measured {large.entries:,} entries ==")
    for r in (baseline, large):
        rate = r.filled / r.fill_seconds if r.fill_seconds else 0
        print(
            f"fill {r.filled:>9,} entries + {r.node_rows:>9,} nodes in bulk: {r.fill_seconds:7.1f} s "
            f"({rate:,.0f} entries/s); database {r.disk_bytes / 2**20:,.1f} MB; {r.checked} proofs verified"
        )
    head = f"{'ms':<14}{'baseline mean':>14}{'p50':>8}{'p99':>8} | {'large mean':>11}{'p50':>8}{'p99':>8} |"
    print(head + f"{'ratio mean':>11}{'p99':>7}")
    for name in ("append", "append+commit", "inclusion", "consistency"):
        b, big = stats(baseline.samples[name]), stats(large.samples[name])
        print(
            f"{name:<14}{b[0]:>14.3f}{b[1]:>8.3f}{b[2]:>8.3f} | {big[0]:>11.3f}{big[1]:>8.3f}{big[2]:>8.3f} |"
            f"{big[0] / b[0]:>10.2f}x{big[2] / b[2]:>6.2f}x"
        )
    missed = []
    for name in ("append", "append+commit", "inclusion", "consistency"):
        mean, _, p99 = stats(large.samples[name])
        verdict = "ok" if mean < TARGET_MS else "FAILED"
        print(
            f"target {name} < {TARGET_MS:g} ms at {large.entries:,}: {verdict} (mean {mean:.3f} ms, p99 {p99:.3f} ms)"
        )
        if verdict != "ok":
            missed.append(f"{backend} {name}")
    return missed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=MAX_ENTRIES, help="size of the measured log (at most 1,000,000)")
    parser.add_argument("--baseline", type=int, default=2000, help="size of the baseline log measured first")
    parser.add_argument("--appends", type=int, default=1000, help="entries appended through service.append, timed")
    parser.add_argument("--proofs", type=int, default=1000, help="inclusion and consistency proofs timed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--postgres", metavar="URL", help="also run on PostgreSQL (a temporary database on this server)"
    )
    args = parser.parse_args(argv)
    if args.entries > MAX_ENTRIES:
        parser.error(f"--entries is at most {MAX_ENTRIES:,}")
    if args.appends < 1 or args.proofs < 1:
        parser.error("--appends and --proofs are at least 1")
    if not args.appends <= args.baseline <= args.entries:
        parser.error("need --appends <= --baseline <= --entries")

    started = time.perf_counter()
    missed: list[str] = []
    options = {"appends": args.appends, "proofs": args.proofs, "seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="decision-log-bench-") as tmp:
        workdir = Path(tmp)
        backends = [("SQLite", lambda name: sqlite_database(workdir, name))]
        if args.postgres:
            backends.append(("PostgreSQL", lambda name: postgres_database(args.postgres, name)))
        for backend, database in backends:
            results = []
            for name, entries in (("baseline", args.baseline), ("large", args.entries)):
                with database(name) as (engine, url, disk):
                    print(f"{backend}: filling and measuring a log of {entries:,} entries …", flush=True)
                    result = run(engine, url=url, workdir=workdir, entries=entries, **options)
                    result.disk_bytes = disk()
                    results.append(result)
            missed += report(backend, *results)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak_mb:,.0f} MB; total {time.perf_counter() - started:.0f} s; temporary files removed")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
