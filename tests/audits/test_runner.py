"""Tests for audits.runner: a submitted ONNX model runs in a bounded child process."""

from __future__ import annotations

import os
import signal
import time
import warnings

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import audits.runner as runner
from audits.runner import Limits, ModelRunError, Predictions, predict
from tests.audits.hostile_models import endless_loop

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
STRING_COLUMNS = ["city", "kind"]
FLOAT_COLUMNS = ["income", "age", "debt"]
GB_ORDER = ["a", "b", "c", "d"]


# --------------------------------------------------------------------------- fixtures


def _convert(model, initial_types, options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # converter deprecation chatter is not under test
        return convert_sklearn(model, initial_types=initial_types, options=options, target_opset=TARGET_OPSET)


def _save(model: onnx.ModelProto, path) -> str:
    path.write_bytes(model.SerializeToString())
    return str(path)


@pytest.fixture(scope="module")
def tabular():
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame(
        {
            "city": rng.choice(["zhengzhou", "luoyang", "kaifeng", ""], n),
            "kind": rng.choice(["pension", "welfare"], n),
            "income": rng.normal(50, 10, n),
            "age": rng.uniform(18, 80, n),
            "debt": rng.exponential(5, n),
        }
    )
    score = (frame["income"] - 50) / 10 + (frame["city"] == "luoyang") - frame["debt"] / 5 + rng.normal(0, 0.5, n)
    labels = np.where(score > -0.5, "approved", "denied")
    return frame, labels


@pytest.fixture(scope="module")
def pipeline_model(tabular, tmp_path_factory):
    frame, labels = tabular
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("onehot", OneHotEncoder(handle_unknown="ignore"), STRING_COLUMNS),
                        ("scale", StandardScaler(), FLOAT_COLUMNS),
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    )
    pipe.fit(frame, labels)
    types = [(c, StringTensorType([None, 1])) for c in STRING_COLUMNS]
    types += [(c, FloatTensorType([None, 1])) for c in FLOAT_COLUMNS]
    onx = _convert(pipe, types, {id(pipe.steps[-1][1]): {"zipmap": False}})
    return pipe, _save(onx, tmp_path_factory.mktemp("pipe") / "pipe.onnx")


@pytest.fixture(scope="module")
def boosting():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, 4))
    y = ((x[:, 0] + 0.5 * x[:, 2] - 0.3 * x[:, 3]) > 0).astype(np.int64)
    model = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0).fit(x, y)
    return model, x


@pytest.fixture(scope="module")
def boosting_models(boosting, tmp_path_factory):
    model, _ = boosting
    folder = tmp_path_factory.mktemp("gb")
    paths = {}
    for zipmap in (False, True):
        onx = _convert(model, [("X", FloatTensorType([None, 4]))], {id(model): {"zipmap": zipmap}})
        paths[zipmap] = _save(onx, folder / f"gb_zipmap_{zipmap}.onnx")
    return paths


def _gb_frame(x: np.ndarray) -> pd.DataFrame:
    """The features with their columns deliberately out of the model's order."""
    frame = pd.DataFrame(x.astype(np.float32), columns=GB_ORDER)
    return frame[["d", "b", "a", "c"]]


def _handmade(path, nodes, inputs, outputs, initializers=(), opsets=None) -> str:
    graph = helper.make_graph(nodes, "handmade", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _save(model, path)


def _gone(pid: int) -> bool:
    """True when no process with this pid (or in its process group) is left, zombie or not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        return False
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return not os.path.exists(f"/proc/{pid}")
    return False


@pytest.fixture
def spawned(monkeypatch):
    """Record the child processes predict() starts."""
    started = []
    original = runner._spawn

    def spawn(command, **kwargs):
        process = original(command, **kwargs)
        started.append(process.pid)
        return process

    monkeypatch.setattr(runner, "_spawn", spawn)
    return started


# --------------------------------------------------------------------------- real models


def test_pipeline_with_one_input_per_column_matches_sklearn(tabular, pipeline_model):
    frame, _ = tabular
    pipe, path = pipeline_model
    result = predict(path, frame, favourable_label="approved")
    assert isinstance(result, Predictions)
    expected = pipe.predict(frame) == "approved"
    assert result.label.dtype == np.bool_
    np.testing.assert_array_equal(result.label, expected)
    favourable = list(pipe.classes_).index("approved")
    assert result.score is not None and result.score.dtype == np.float64
    np.testing.assert_allclose(result.score, pipe.predict_proba(frame)[:, favourable], atol=1e-5)
    assert result.raw_labels == ("approved", "denied")
    assert result.seconds > 0


def test_missing_categorical_values_pass_as_empty_strings(tabular, pipeline_model):
    frame, _ = tabular
    pipe, path = pipeline_model
    holes = frame.head(50).copy()
    holes["city"] = holes["city"].astype(object)
    holes.loc[holes.index[::3], "city"] = None
    result = predict(path, holes, favourable_label="approved")
    filled = holes.assign(city=holes["city"].fillna(""))
    np.testing.assert_array_equal(result.label, pipe.predict(filled) == "approved")


def test_categorical_text_columns_are_fed_as_their_text(tabular, pipeline_model):
    frame, _ = tabular
    pipe, path = pipeline_model
    coded = frame.astype({c: "category" for c in STRING_COLUMNS})
    coded["city"] = coded["city"].cat.remove_categories([""])  # a missing code (-1) is fed as ""
    assert coded["city"].isna().any()
    result = predict(path, coded, favourable_label="approved")
    np.testing.assert_array_equal(result.label, pipe.predict(frame) == "approved")


def test_single_tensor_input_by_declared_order_matches_sklearn(boosting, boosting_models):
    model, x = boosting
    result = predict(boosting_models[False], _gb_frame(x), favourable_label="1", input_order=GB_ORDER)
    np.testing.assert_array_equal(result.label, model.predict(x) == 1)
    np.testing.assert_allclose(result.score, model.predict_proba(x)[:, 1], atol=1e-5)
    assert result.raw_labels == ("0", "1")


def test_zipmap_output_gives_the_same_answer(boosting, boosting_models):
    _, x = boosting
    frame = _gb_frame(x)
    plain = predict(boosting_models[False], frame, favourable_label="1", input_order=GB_ORDER)
    mapped = predict(boosting_models[True], frame, favourable_label="1", input_order=GB_ORDER)
    np.testing.assert_array_equal(mapped.label, plain.label)
    np.testing.assert_allclose(mapped.score, plain.score, atol=1e-7)
    assert mapped.raw_labels == plain.raw_labels


def test_small_batches_give_identical_results_and_report_progress(boosting, boosting_models):
    _, x = boosting
    frame = _gb_frame(x)
    whole = predict(boosting_models[False], frame, favourable_label="0", input_order=GB_ORDER)
    seen = []
    batched = predict(
        boosting_models[False],
        frame,
        favourable_label="0",
        input_order=GB_ORDER,
        limits=Limits(batch_rows=37),
        progress=lambda done, total: seen.append((done, total)),
    )
    np.testing.assert_array_equal(batched.label, whole.label)
    np.testing.assert_array_equal(batched.score, whole.score)
    assert len(seen) == -(-len(x) // 37)
    assert [d for d, _ in seen] == sorted({d for d, _ in seen})
    assert seen[-1] == (len(x), len(x))
    assert all(t == len(x) for _, t in seen)


def test_data_frame_order_is_used_when_it_has_exactly_the_input_width(boosting, boosting_models):
    model, x = boosting
    frame = pd.DataFrame(x, columns=["w", "x", "y", "z"])  # float64: cast to the float input
    result = predict(boosting_models[False], frame, favourable_label="1")
    np.testing.assert_array_equal(result.label, model.predict(x) == 1)


def test_bool_and_int_inputs_and_bool_labels(tmp_path):
    """Inputs cast to int64 and string; a bool label compares as "True"/"1"; no probabilities → score None."""
    path = _handmade(
        tmp_path / "bool.onnx",
        [
            helper.make_node("Greater", ["n", "zero"], ["positive"]),
            helper.make_node("Reshape", ["positive", "flat"], ["label"]),
            helper.make_node("Identity", ["s"], ["echo"]),
        ],
        [
            helper.make_tensor_value_info("n", TensorProto.INT64, [None, 1]),
            helper.make_tensor_value_info("s", TensorProto.STRING, [None, 1]),
        ],
        [
            helper.make_tensor_value_info("label", TensorProto.BOOL, [None]),
            helper.make_tensor_value_info("echo", TensorProto.STRING, [None, 1]),
        ],
        [
            numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"),
        ],
    )
    frame = pd.DataFrame({"n": [3.0, -2.0, 0.0, 7.0], "s": ["x", None, "z", 5]})
    for favourable in ("True", "1"):
        result = predict(path, frame, favourable_label=favourable)
        np.testing.assert_array_equal(result.label, [True, False, False, True])
        assert result.score is None
        assert result.raw_labels == ("False", "True")
    result = predict(path, frame, favourable_label="0")
    np.testing.assert_array_equal(result.label, [False, True, True, False])

    with pytest.raises(ModelRunError) as caught:
        predict(path, frame.assign(n=[1.0, 2.5, 3.0, 4.0]), favourable_label="True")
    assert caught.value.code == "input_mismatch"
    assert "'n'" in caught.value.message and "2.5" in caught.value.message


# --------------------------------------------------------------------------- errors


def test_missing_and_extra_columns_are_listed(tabular, pipeline_model, spawned):
    frame, _ = tabular
    _, path = pipeline_model
    with pytest.raises(ModelRunError) as caught:
        predict(path, frame.drop(columns=["age"]).assign(postcode="450000"), favourable_label="approved")
    error = caught.value
    assert error.code == "input_mismatch"
    assert "missing columns 'age'" in error.message
    assert "extra columns (not used by the model) 'postcode'" in error.message
    assert spawned == []  # refused before any process was started


def test_single_input_order_mismatch_lists_names(boosting, boosting_models):
    _, x = boosting
    with pytest.raises(ModelRunError) as caught:
        predict(boosting_models[False], _gb_frame(x), favourable_label="1", input_order=["a", "b", "c", "e"])
    assert caught.value.code == "input_mismatch"
    assert "'e'" in caught.value.message and "'d'" in caught.value.message
    with pytest.raises(ModelRunError) as caught:
        predict(boosting_models[False], _gb_frame(x).drop(columns=["d"]), favourable_label="1")
    assert caught.value.code == "input_mismatch"
    assert "input_order" in caught.value.message


def test_favourable_label_that_is_not_a_class_is_an_error(tabular, pipeline_model):
    frame, _ = tabular
    _, path = pipeline_model
    with pytest.raises(ModelRunError) as caught:
        predict(path, frame.head(20), favourable_label="granted")
    assert caught.value.code == "bad_output"
    assert "'granted'" in caught.value.message and "'approved'" in caught.value.message


def test_custom_operator_domain_is_rejected(tmp_path, spawned):
    path = _handmade(
        tmp_path / "custom.onnx",
        [helper.make_node("Evil", ["X"], ["label"], domain="com.example.evil")],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None])],
        opsets=[helper.make_opsetid("", 17), helper.make_opsetid("com.example.evil", 1)],
    )
    with pytest.raises(ModelRunError) as caught:
        predict(path, pd.DataFrame({"X": [1.0]}), favourable_label="1")
    assert caught.value.code == "rejected"
    assert "com.example.evil" in caught.value.message
    assert spawned == []


def test_not_onnx_is_rejected(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x80\x04K\x01.")  # a pickle, not a model
    with pytest.raises(ModelRunError) as caught:
        predict(path, pd.DataFrame({"X": [1.0]}), favourable_label="1")
    assert caught.value.code == "rejected"


def _forever(tmp_path) -> str:
    return endless_loop(tmp_path / "forever.onnx")


def test_a_model_that_runs_too_long_is_stopped(tmp_path, spawned):
    """Killed at the wall-clock limit, the child and its group gone."""
    path = _forever(tmp_path)
    began = time.monotonic()
    with pytest.raises(ModelRunError) as caught:
        predict(path, pd.DataFrame({"X": [1.0, 2.0]}), favourable_label="1", limits=Limits(timeout_seconds=2))
    assert caught.value.code == "timeout"
    assert "2 seconds" in caught.value.message
    assert time.monotonic() - began < 10
    assert len(spawned) == 1 and _gone(spawned[0])


def test_a_model_that_needs_too_much_memory_is_stopped(tmp_path, spawned):
    """ConstantOfShape of 2^31 floats (8 GiB) under a 1 GiB address-space cap."""
    path = _handmade(
        tmp_path / "greedy.onnx",
        [
            helper.make_node("Shape", ["X"], ["rows_and_one"]),
            helper.make_node("Mul", ["rows_and_one", "scale"], ["big_shape"]),
            helper.make_node("ConstantOfShape", ["big_shape"], ["big"]),
            helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
            helper.make_node("Cast", ["total"], ["label"], to=TensorProto.INT64),
        ],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [])],
        [numpy_helper.from_array(np.array([2**28, 2], dtype=np.int64), "scale")],
    )
    with pytest.raises(ModelRunError) as caught:
        predict(
            path,
            pd.DataFrame({"X": [1.0, 2.0, 3.0, 4.0]}),
            favourable_label="1",
            limits=Limits(memory_bytes=1024**3, timeout_seconds=60),
        )
    assert caught.value.code in ("memory", "crashed")
    assert len(spawned) == 1 and _gone(spawned[0])


def test_limits_are_validated():
    with pytest.raises(ValueError):
        Limits(threads=0)
    with pytest.raises(ValueError):
        Limits(timeout_seconds=float("nan"))


def test_empty_data_is_a_caller_error(pipeline_model, tabular):
    frame, _ = tabular
    _, path = pipeline_model
    with pytest.raises(ValueError):
        predict(path, frame.head(0), favourable_label="approved")


def test_a_child_that_dies_is_reported_not_raised_through():
    """How a child without a status file is described: killed → memory, a fault → crashed."""
    import signal

    limits = Limits(memory_bytes=2 * 1024**3)
    assert runner._died(-signal.SIGKILL, "", limits).code == "memory"
    crashed = runner._died(-signal.SIGSEGV, "boom\nSegmentation fault\n", limits)
    assert crashed.code == "crashed" and "SIGSEGV" in crashed.message and "Segmentation fault" in crashed.message
    assert runner._died(-signal.SIGABRT, "terminate called after throwing std::bad_alloc", limits).code == "memory"
    assert runner._died(1, "", limits).code == "crashed"


def test_child_stdout_is_parsed_defensively():
    """Progress lines from the child are checked: wrong totals, regressions and overlong lines are ignored."""
    seen = []
    talk = runner._Conversation(None, 100, lambda done, total: seen.append(done))
    talk.on_stdout(b"ready\nprogress 10 100\nprogress 5 100\nprogress 20 999\nprog")
    talk.on_stdout(b"ress 30 100\n" + b"x" * 10_000 + b" progress 40 100\nprogress 100 100\nprogress 101 100\n")
    assert seen == [10, 30, 100]


# --------------------------------------------------------------------------- warm spares


@pytest.fixture
def spares():
    """Spares started by a test are shut down after it, and none of its children is left."""
    seen = []
    yield seen
    runner.shutdown_spares()
    assert runner._spares == {} and not runner._starting
    for pid in seen:
        assert _gone(pid)


def _ready_spare(limits: Limits, seen: list) -> int:
    runner.prewarm(limits)
    assert runner.spare_ready(limits, timeout=30)
    pid = runner._spares[limits].process.pid
    seen.append(pid)
    return pid


def test_a_prewarmed_spare_serves_the_next_run_and_is_replaced(boosting, boosting_models, spares):
    _, x = boosting
    frame = _gb_frame(x)
    limits = Limits(batch_rows=100)
    cold = predict(boosting_models[False], frame, favourable_label="1", input_order=GB_ORDER, limits=limits)
    runs = runner._warm_runs
    pid = _ready_spare(limits, spares)
    runner.prewarm(limits)  # again: still one spare
    assert runner._spares[limits].process.pid == pid
    seen = []
    warm = predict(
        boosting_models[False],
        frame,
        favourable_label="1",
        input_order=GB_ORDER,
        limits=limits,
        progress=lambda done, total: seen.append(done),
    )
    assert runner._last_pid == pid and runner._warm_runs == runs + 1
    assert _gone(pid)  # one model per child
    np.testing.assert_array_equal(warm.label, cold.label)
    np.testing.assert_array_equal(warm.score, cold.score)
    assert warm.raw_labels == cold.raw_labels
    assert seen == [100, 200, 300]

    following = _ready_spare(limits, spares)  # started in the background after the run
    assert following != pid
    again = predict(boosting_models[False], frame, favourable_label="1", input_order=GB_ORDER, limits=limits)
    assert runner._last_pid == following and runner._warm_runs == runs + 2
    np.testing.assert_array_equal(again.label, cold.label)


def test_a_spare_killed_while_it_waits_is_replaced_by_a_cold_start(tabular, pipeline_model, spares):
    frame, _ = tabular
    pipe, path = pipeline_model
    limits = Limits(timeout_seconds=60)
    pid = _ready_spare(limits, spares)
    os.kill(pid, signal.SIGKILL)
    runs = runner._warm_runs
    result = predict(path, frame, favourable_label="approved", limits=limits)
    np.testing.assert_array_equal(result.label, pipe.predict(frame) == "approved")
    assert runner._last_pid != pid and runner._warm_runs == runs
    assert _gone(pid)  # reaped
    spares.append(runner._last_pid)


def test_a_spare_lost_after_it_was_taken_is_replaced_by_a_cold_start(tabular, pipeline_model, spares, monkeypatch):
    """The spare dies between being taken and taking the job: nothing of the model ran, so a cold child does it."""
    frame, _ = tabular
    pipe, path = pipeline_model
    limits = Limits(timeout_seconds=60)
    pid = _ready_spare(limits, spares)
    take = runner._take_spare

    def take_and_kill(wanted):
        child = take(wanted)
        os.kill(child.process.pid, signal.SIGKILL)
        return child

    monkeypatch.setattr(runner, "_take_spare", take_and_kill)
    result = predict(path, frame, favourable_label="approved", limits=limits)
    np.testing.assert_array_equal(result.label, pipe.predict(frame) == "approved")
    assert runner._last_pid != pid
    assert _gone(pid)
    spares.append(runner._last_pid)


def test_a_warm_child_that_runs_too_long_is_stopped(tmp_path, spares):
    limits = Limits(timeout_seconds=2)
    pid = _ready_spare(limits, spares)
    began = time.monotonic()
    with pytest.raises(ModelRunError) as caught:
        predict(_forever(tmp_path), pd.DataFrame({"X": [1.0, 2.0]}), favourable_label="1", limits=limits)
    assert caught.value.code == "timeout"
    assert time.monotonic() - began < 10
    assert runner._last_pid == pid and _gone(pid)


def test_shutdown_leaves_no_spare_and_no_directory(spares):
    limits = Limits(threads=1, timeout_seconds=30)
    pid = _ready_spare(limits, spares)
    workdir = runner._spares[limits].workdir
    runner.shutdown_spares()
    assert _gone(pid) and not os.path.exists(workdir)
    assert runner._take_spare(limits) is None  # prewarm() forgotten: runs are cold
