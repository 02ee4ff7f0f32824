"""Audit engine benchmark: 1,000,000 rows, two sensitive attributes (2 × 5 = 10 intersections), 10 features.

Times, in one run on the same data:
  (a) the engine's figures with 1,000 bootstrap replicates, given the predictions (tally + figures + intervals);
  (b) fairlearn MetricFrame computing the same point figures (no intervals), the reference;
  (c) the engine's inference (the sandboxed runner) for a logistic regression and a gradient-boosting model;
  (d) bare onnxruntime on the same models and data;
  (e) the explainability step (permutation importance with intervals, proxies, findings) on the sample the
      shipped policy sets (explainability.sample_rows), in one sandboxed model run.
Prints each time, peak memory, and the ratios the issue sets targets for:
  ratio figures_with_1000_replicates/fairlearn_point: X   (target ≤ 0.05)
  ratio engine_inference/bare_onnxruntime (lr|gb): X        (target ≤ 1.2)
  ratio explainability/bare_onnxruntime_full_set (lr|gb): X (the step's cost beside the model's bare inference)
Usage: python benchmarks/audit_bench.py [--rows 1000000] [--replicates 1000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, precision_score

from audits import bootstrap, counts, declarations, explain, figures, runner
from audits import policy as policies
from audits.reference import ReferenceData

FEATURES = [f"x{i}" for i in range(10)]


def make_data(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], size=rows)
    region = rng.choice(["north", "south", "east", "west", "centre"], size=rows, p=[0.3, 0.25, 0.2, 0.15, 0.1])
    X = rng.normal(size=(rows, 10)).astype(np.float32)
    X[:, 0] += (sex == "male") * 0.4  # a feature that leaks sex, so the groups differ
    logit = X @ rng.normal(size=10).astype(np.float32) * 0.8 + 0.3 * (region == "north")
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X, y, {"sex": sex, "region": region}


def export(model, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onx = convert_sklearn(
            model,
            initial_types=[("X", FloatTensorType([None, 10]))],
            options={id(model): {"zipmap": False}},
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
    path.write_bytes(onx.SerializeToString())
    return path


def timed(fn, repeat: int = 3, setup=None):
    times, result = [], None
    for _ in range(repeat):
        if setup is not None:
            setup()  # not timed
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def fairlearn_point(y, p, groups):
    """The same point figures as the engine, the fairlearn way (pos_label 1 is the favourable label)."""
    frame = MetricFrame(
        metrics={
            "count": count,
            "selection_rate": selection_rate,
            "accuracy": accuracy_score,
            "balanced_accuracy": balanced_accuracy_score,
            "precision": lambda t, q: precision_score(t, q, zero_division=np.nan),
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "fnr": false_negative_rate,
            "f1": f1_score,
        },
        y_true=y,
        y_pred=p,
        sensitive_features=pd.DataFrame(groups),
    )
    return frame.by_group, frame.difference(), frame.ratio(), frame.overall


def bare_onnxruntime(path: Path, X: np.ndarray):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"X": X})


def reference_data(frame: pd.DataFrame, y: np.ndarray, groups: dict) -> ReferenceData:
    """The benchmark's data as a reference data set (sex and region are attributes, not model inputs)."""
    descriptor = {"sensitive_attributes": [{"name": name, "column": name} for name in groups]}
    return ReferenceData(
        name="benchmark",
        version="1",
        sha256="0" * 64,
        rows=len(frame),
        features=frame,
        y_true=y.astype(bool),
        sensitive={name: np.asarray(values) for name, values in groups.items()},
        favourable_value="1",
        descriptor=descriptor,
    )


def explainability(path: Path, data: ReferenceData, replicates: int, limits: runner.Limits) -> dict:
    """The engine's explainability step as an audit runs it under the shipped policy."""
    policy = policies.load()
    return explain.explain(
        model_path=path,
        data=data,
        columns=FEATURES,
        attributes=["sex", "region"],
        declarations=declarations.from_technical_document(None, FEATURES),
        settings=explain.Settings.from_policy(policy.explainability),
        min_group_size=30,
        replicates=replicates,
        level=policy.level,
        seed=0,
        input_order=FEATURES,
        limits=limits,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--replicates", type=int, default=1000)
    args = parser.parse_args()

    X, y, groups = make_data(args.rows)
    print(f"data: {args.rows:,} rows, 10 features, sex × region = 10 intersections", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        sample = slice(0, 20_000)
        lr = LogisticRegression(max_iter=200).fit(X[sample], y[sample])
        gb = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(X[sample], y[sample])
        models = {"lr": export(lr, Path(tmp) / "lr.onnx"), "gb": export(gb, Path(tmp) / "gb.onnx")}
        frame = pd.DataFrame(X, columns=FEATURES)

        # (c) and (d): inference, the engine's sandboxed runner against bare onnxruntime
        inference = {}
        limits = runner.Limits(threads=1)
        cold = runner.Limits(threads=1, batch_rows=limits.batch_rows + 1)  # other limits: no warm spare for these
        for name, path in models.items():
            # A worker keeps one warm child ready, started off the critical path; each child still runs one model.
            runner.prewarm(limits)
            engine_s, predictions = timed(
                lambda path=path: runner.predict(
                    path, frame, favourable_label="1", input_order=FEATURES, limits=limits
                ),
                setup=lambda: runner.spare_ready(limits, timeout=60),
            )
            cold_s, _ = timed(
                lambda path=path: runner.predict(path, frame, favourable_label="1", input_order=FEATURES, limits=cold),
                repeat=1,
            )
            bare_s, outputs = timed(lambda path=path: bare_onnxruntime(path, X))
            agree = float(np.mean(predictions.label == (np.asarray(outputs[0]).reshape(-1) == 1)))
            inference[name] = (engine_s, bare_s, agree, predictions)
            print(
                f"(c) engine inference, {name}: {engine_s:.3f} s with a warm child ({cold_s:.3f} s cold)   "
                f"(d) bare onnxruntime: {bare_s:.3f} s   labels agree: {agree:.4%}"
            )

        # (e) the explainability step on the sample the policy sets, against bare inference on the full set
        data = reference_data(frame, y, groups)
        explained = {}
        for name, path in models.items():
            runner.prewarm(limits)
            explain_s, section = timed(
                lambda path=path: explainability(path, data, args.replicates, limits),
                setup=lambda: runner.spare_ready(limits, timeout=60),
            )
            explained[name] = explain_s
            sample = section["sample"]["rows"]
            print(
                f"(e) explainability, {name}: {explain_s:.3f} s on a {sample:,}-row sample "
                f"({sample * (1 + len(FEATURES) * section['settings']['n_repeats']):,} model rows, "
                f"{args.replicates:,} replicates); top inputs: {', '.join(section['summary']['top_inputs'])}",
                flush=True,
            )
        runner.shutdown_spares()

    predictions = inference["gb"][3]
    y_pred = predictions.label.astype(np.int64)
    score = predictions.score

    def engine_figures():
        tally = counts.tally(y, y_pred, groups, ["sex", "region"], score=score)
        point = figures.compute(tally, y_true=y, score=score, sensitive=groups, min_group_size=30)
        ranges = bootstrap.intervals(tally, replicates=args.replicates, seed=0)
        return point, ranges

    figures_s, (point, _ranges) = timed(engine_figures)
    print(f"(a) engine figures with {args.replicates:,} replicates: {figures_s:.3f} s", flush=True)
    fairlearn_s, (by_group, _diff, _ratio, _overall) = timed(lambda: fairlearn_point(y, y_pred, groups), repeat=1)
    print(f"(b) fairlearn MetricFrame, point figures only: {fairlearn_s:.3f} s", flush=True)

    # The two agree (the tests prove it to 1e-9 on real data; here a spot check on the benchmark's own data).
    measured = {(g["group"]["sex"], g["group"]["region"]): g["accuracy"] for g in point["by_group"]}
    worst = max(abs(measured[key] - by_group.loc[key, "accuracy"]) for key in measured)
    print(f"largest accuracy difference engine vs fairlearn over the 10 groups: {worst:.2e}")

    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak memory: this process {peak_self:.0f} MiB, largest model child {peak_children:.0f} MiB")
    for name, (engine_s, bare_s, _agree, _p) in inference.items():
        print(f"ratio engine_inference/bare_onnxruntime ({name}): {engine_s / bare_s:.2f}")
    print(f"ratio figures_with_{args.replicates}_replicates/fairlearn_point: {figures_s / fairlearn_s:.4f}")
    for name, (_engine_s, bare_s, _agree, _p) in inference.items():
        print(f"ratio explainability/bare_onnxruntime_full_set ({name}): {explained[name] / bare_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
