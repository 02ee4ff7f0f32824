"""Decision-log Merkle benchmark: append 1,000,000 leaves to a node store, then time proofs at random sizes.

Per operation, in milliseconds (mean and p99):
  append       nodes_to_store_on_append + put_many for one leaf (the O(log n) new complete-subtree nodes)
  root         root_at(new size) right after each append (what a checkpoint after every append needs)
  sign         one Ed25519 checkpoint signature (sampled)
  inclusion    inclusion_proof(index, size) at random 0 <= index < size <= n
  consistency  consistency_proof(size1, size2) at random 0 < size1 <= size2 <= n
  verify       verify_inclusion / verify_consistency of those proofs
The issue's target is under 5 ms for appending and for proving at 1,000,000 entries.

The store is pluggable: ``run(store, leaves=..., proofs=...)`` takes any WritableNodeStore (get_many, put_many), so a
database-backed store can be timed the same way. Default: the in-memory store (about 20 s, ~200 MB).
Usage: python benchmarks/ledger_bench.py [--leaves 1000000] [--proofs 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from array import array

from registry.ledger import checkpoint, merkle, note

TARGET_MS = 5.0
MAX_LEAVES = 1_000_000


def summary(name: str, samples_ns) -> tuple[float, float]:
    ms = [s / 1e6 for s in samples_ns]
    mean = statistics.fmean(ms)
    p99 = statistics.quantiles(ms, n=100)[98] if len(ms) >= 100 else max(ms)
    verdict = "ok" if p99 < TARGET_MS else "OVER TARGET"
    print(f"{name:<12} n={len(ms):>9,}  mean {mean:8.4f} ms   p99 {p99:8.4f} ms   max {max(ms):8.3f} ms   {verdict}")
    return mean, p99


def run(store: merkle.WritableNodeStore, *, leaves: int, proofs: int, seed: int = 0) -> dict[str, tuple[float, float]]:
    if leaves > MAX_LEAVES:
        raise SystemExit(f"at most {MAX_LEAVES:,} leaves")
    rng = random.Random(seed)
    clock = time.perf_counter_ns
    append_ns, root_ns = array("q"), array("q")
    started = time.perf_counter()
    for size in range(leaves):
        leaf = merkle.leaf_hash(b'{"decision":%d}' % size)
        t0 = clock()
        merkle.append_leaf(store, size, leaf)
        t1 = clock()
        merkle.root_at(size + 1, store)
        t2 = clock()
        append_ns.append(t1 - t0)
        root_ns.append(t2 - t1)
    print(f"appended {leaves:,} leaves in {time.perf_counter() - started:.1f} s")

    signer = note.Signer.generate("bench.example/decision-log")
    root = merkle.root_at(leaves, store)
    sign_ns = array("q")
    for _ in range(min(proofs, 1000)):
        t0 = clock()
        checkpoint.sign_checkpoint(checkpoint.Checkpoint(signer.name, leaves, root), signer)
        sign_ns.append(clock() - t0)

    inclusion_ns, consistency_ns, verify_ns = array("q"), array("q"), array("q")
    for _ in range(proofs):
        size = rng.randint(1, leaves)
        index = rng.randrange(size)
        t0 = clock()
        proof = merkle.inclusion_proof(index, size, store)
        inclusion_ns.append(clock() - t0)
        leaf_hash, size_root = merkle.leaf_hash(b'{"decision":%d}' % index), merkle.root_at(size, store)
        t0 = clock()
        merkle.verify_inclusion(leaf_hash, index, size, proof, size_root)
        verify_ns.append(clock() - t0)

        size2 = rng.randint(1, leaves)
        size1 = rng.randint(1, size2)
        t0 = clock()
        proof = merkle.consistency_proof(size1, size2, store)
        consistency_ns.append(clock() - t0)
        root1, root2 = merkle.root_at(size1, store), merkle.root_at(size2, store)
        t0 = clock()
        merkle.verify_consistency(size1, size2, proof, root1, root2)
        verify_ns.append(clock() - t0)

    print(f"target < {TARGET_MS:g} ms (p99) for each operation at {leaves:,} entries")
    return {
        "append": summary("append", append_ns),
        "root": summary("root", root_ns),
        "sign": summary("sign", sign_ns),
        "inclusion": summary("inclusion", inclusion_ns),
        "consistency": summary("consistency", consistency_ns),
        "verify": summary("verify", verify_ns),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=MAX_LEAVES)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    store = merkle.InMemoryNodeStore()
    results = run(store, leaves=args.leaves, proofs=args.proofs, seed=args.seed)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak_mb:.0f} MB")
    over = [name for name, (_, p99) in results.items() if p99 >= TARGET_MS]
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
