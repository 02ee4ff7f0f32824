"""The audit engine's command line: ``python -m audits run …`` and ``python -m audits datasets``.

Progress goes to stderr; an error is one clear line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m audits", description="Independent accuracy and fairness audits of ONNX models."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="audit a model on a reference data set and write the report")
    run.add_argument("--model", required=True, type=Path, help="the ONNX model file")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a data set of the shipped library (see `datasets`)")
    source.add_argument("--data", type=Path, help="a CSV file with a header row")
    run.add_argument("--descriptor", type=Path, help="a reference-dataset descriptor for --data")
    run.add_argument("--label", help="label column of --data (without --descriptor)")
    run.add_argument("--favorable", "--favourable", dest="favourable", help="the favourable label value")
    run.add_argument("--sensitive", help="sensitive attributes, comma separated (default: the data set's)")
    run.add_argument("--policy", type=Path, help="an audit policy JSON (default: the shipped policy)")
    run.add_argument("--tier", default="III", choices=["I", "II", "III", "IV"], help="risk tier (default III)")
    run.add_argument("--claimed", type=Path, help="the city's test report JSON, to compare claimed with measured")
    run.add_argument(
        "--technical-document",
        type=Path,
        help="the filing's technical document JSON: which inputs it declares sensitive or likely proxies",
    )
    run.add_argument(
        "--explainability",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the explainability step (default: as the policy says)",
    )
    run.add_argument("--input-order", help="for a single-tensor model: its feature columns, comma separated")
    run.add_argument("--bootstrap", type=int, help="bootstrap replicates (default: the policy's)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--timeout", type=float, default=600.0, help="wall-clock limit for running the model, seconds")
    run.add_argument("--out", required=True, type=Path, help="where to write the report JSON")

    commands.add_parser("datasets", help="list the shipped reference data sets (never their rows)")
    return parser


def _progress(stage: str, done: int, total: int) -> None:
    print(f"\r{stage}: {done:,}/{total:,}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def _run(args) -> int:
    from audits import engine, policy, reference, runner

    if args.dataset:
        data = reference.load(args.dataset, favourable=args.favourable)
    elif args.descriptor:
        data = reference.load_file(
            args.data, json.loads(args.descriptor.read_text("utf-8")), favourable=args.favourable
        )
    else:
        if not (args.label and args.favourable and args.sensitive):
            raise engine.AuditError("--data needs --descriptor, or --label, --favorable and --sensitive.")
        data = reference.from_csv(
            args.data, label=args.label, favourable=args.favourable, sensitive=args.sensitive.split(",")
        )
    claimed = json.loads(args.claimed.read_text("utf-8")) if args.claimed else None
    document = json.loads(args.technical_document.read_text("utf-8")) if args.technical_document else None
    report = engine.run_audit(
        model_path=args.model,
        data=data,
        policy=policy.load(args.policy),
        tier=args.tier,
        sensitive=args.sensitive.split(",") if args.sensitive else None,
        claimed=claimed,
        replicates=args.bootstrap,
        seed=args.seed,
        input_order=args.input_order.split(",") if args.input_order else None,
        limits=runner.Limits(timeout_seconds=args.timeout),
        progress=_progress,
        technical_document=document,
        explainability=args.explainability,
    )
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2, sort_keys=True) + "\n", "utf-8")
    failed = [c["id"] for c in report["criteria"] if c["status"] == "fail"]
    print(
        f"{report['verdict']}: {len(report['criteria'])} criteria, failed: {', '.join(failed) or 'none'} → {args.out}",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "datasets":
            from audits import reference

            for item in reference.list_datasets():
                print(json.dumps(item, ensure_ascii=False))
            return 0
        return _run(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as exc:  # our errors are ValueError/RuntimeError subclasses
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
