"""Running a submitted ONNX model on reference data, in a bounded separate process.

:func:`predict` checks the model with :func:`audits.model_check.check_model_file`,
maps the data frame's columns onto the model's inputs, and runs the model with
onnxruntime in a child process (``python -m audits._runner_child``) that has

* its own session and process group, killed as a whole at the wall-clock timeout;
* an address-space cap (``RLIMIT_AS``), no core files, few file descriptors, a CPU
  time cap and a file-size cap, all set before onnxruntime is imported;
* one onnxruntime intra-op thread pool of ``Limits.threads`` threads without
  spinning, one inter-op thread, and never a custom-operator library;
* a minimal environment (nothing of the caller's secrets), and a private
  temporary directory as its working directory.

Starting a child costs about a quarter of a second. A process that runs many
audits calls :func:`prewarm` once: a *spare* child is then kept started, limited
and imported for those :class:`Limits`, waiting for a job, and :func:`predict`
hands it the model and the data instead of starting one, then starts the next
spare in the background. Every child, spare or not, serves exactly one model
and exits. :func:`shutdown_spares` (also run at exit) stops the spare.

The child re-checks its own copy of the model (defence in depth). Data go in and
results come back as files in that private directory: one ``.npy`` per model
input (numbers, or fixed-width unicode for strings; never object arrays) and,
back, ``.npy`` files read with ``allow_pickle=False`` plus a small JSON status
file. Nothing the child produces is unpickled or trusted beyond what is checked
here. Rows are fed in batches of ``Limits.batch_rows``; the child prints a line
after each batch, and the parent turns it into ``progress(done, total)``.

Input mapping
-------------
* **By name** when the model has several inputs, or one input that takes a
  single column and is named like a column of the data: each input takes the
  column of the same name, cast to the input's element type (``float`` →
  float32, ``double`` → float64, ``int64`` → int64 — a non-integral or missing
  value is an error naming the column —, ``bool``, ``string`` → text with
  missing values as ``""``), shaped ``[N, 1]`` (or ``[N]`` for a rank-1 input).
  ``input_order`` is not used. Every input needs its column and every column its
  input.
* **By order** for a single tensor input of shape ``[N, k]``: the columns named
  in ``input_order`` (the column order declared in the technical document), in
  that order; without ``input_order`` the data frame's own column order is used,
  but only when it has exactly ``k`` columns. The data must hold exactly those
  columns.

A mismatch raises :class:`ModelRunError` with code ``"input_mismatch"`` and a
message listing the missing and the extra column names.

Labels and probabilities
------------------------
A prediction is favourable when ``str(value) == favourable_label``. For a bool
label output ``"True"`` and ``"1"`` mean ``True``, ``"False"`` and ``"0"`` mean
``False``. The probability of the favourable class is taken from the model's
probability output — a ``[N, classes]`` float tensor (skl2onnx with
``zipmap=False``) or a ZipMap sequence of maps — in the class order found on the
classifier node (``classlabels_ints``/``classlabels_int64s``/``classlabels_strings``
of LinearClassifier, TreeEnsembleClassifier, SVMClassifier...) or in the maps'
keys. When no class order is found, or it does not cover the predicted labels,
``score`` is ``None``. When a class order is found and covers the predicted
labels but the favourable label is not one of the classes, that is an error
(``"bad_output"``): the technical document and the model disagree.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from audits.model_check import ModelRejected, ModelSummary, check_model_file

__all__ = [
    "Limits",
    "ModelRunError",
    "Predictions",
    "fed_columns",
    "predict",
    "prewarm",
    "shutdown_spares",
    "spare_ready",
]

_CODES = frozenset({"rejected", "input_mismatch", "timeout", "memory", "crashed", "bad_output", "runtime_error"})
_STDERR_KEPT = 4096  # bytes of the child's stderr kept for error messages
_STATUS_MAX_BYTES = 1024 * 1024
_LINE_MAX = 256  # longest stdout line the parent will parse
_WRITE_BLOCK_BYTES = 1024 * 1024  # rows laid out at a time when a table is written for the child
_SHOWN_NAMES = 20  # names listed in an input_mismatch message before "and N more"
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)

# ONNX tensor element type (as ModelSummary spells it) -> numpy dtype fed to onnxruntime
_NUMERIC = {
    "float": np.float32,
    "double": np.float64,
    "float16": np.float16,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
}


class ModelRunError(RuntimeError):
    """Running a model failed; the caller is unharmed.

    Attributes:
        code: ``"rejected"`` (:func:`check_model_file` refused the model),
            ``"input_mismatch"`` (the data do not fit the model's inputs),
            ``"timeout"``, ``"memory"``, ``"crashed"`` (the child died),
            ``"bad_output"`` (the model's outputs cannot be read as a label and
            probabilities), ``"runtime_error"`` (onnxruntime failed).
        message: one English sentence; for ``input_mismatch`` it lists the
            missing and the extra column names.
        stderr: the last few KB of the child's error output ("" if none).
    """

    code: str
    message: str
    stderr: str

    def __init__(self, code: str, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.stderr = stderr

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ModelRunError(code={self.code!r}, message={self.message!r})"


@dataclass(frozen=True)
class Limits:
    """Bounds on one model run.

    ``memory_bytes`` caps the child's address space (``RLIMIT_AS``); onnxruntime
    needs headroom beyond the data (about 200 MB to start). ``timeout_seconds``
    is wall-clock time from when the data are handed to the child.
    """

    threads: int = 1
    memory_bytes: int = 4 * 1024**3
    timeout_seconds: float = 600.0
    batch_rows: int = 200_000
    max_model_bytes: int = 200 * 1024**2

    def __post_init__(self) -> None:
        for name in ("threads", "memory_bytes", "batch_rows", "max_model_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive integer, not {value!r}")
        seconds = self.timeout_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0 or math.isinf(seconds):
            raise ValueError(f"Limits.timeout_seconds must be a positive finite number, not {seconds!r}")


@dataclass(frozen=True)
class Predictions:
    """What a model predicted for each row.

    Attributes:
        label: bool, True where the model predicts the favourable label.
        score: float64 probability of the favourable class, or None when the
            model gives no probabilities (or no class order for them).
        raw_labels: the distinct predicted labels as strings, sorted in the
            labels' natural order.
        seconds: wall-clock seconds of the whole run (check, child process,
            inference, reading the results).
    """

    label: np.ndarray
    score: np.ndarray | None
    raw_labels: tuple[str, ...]
    seconds: float


# --------------------------------------------------------------------------- input mapping


@dataclass(frozen=True)
class _Feed:
    name: str  # the model input
    columns: tuple[str, ...]  # data columns, in order
    elem: str  # ONNX element type name
    rank: int  # 1: feed [rows]; 2: feed [rows, len(columns)]
    file: str = ""


def _names(names: Sequence[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(repr(n) for n in names[:_SHOWN_NAMES])
    if len(names) > _SHOWN_NAMES:
        shown += f" and {len(names) - _SHOWN_NAMES} more"
    return shown


def _mismatch(missing: Sequence[str], extra: Sequence[str], why: str = "") -> ModelRunError:
    return ModelRunError(
        "input_mismatch",
        f"The data do not match the model's inputs{why}: missing columns {_names(missing)}; "
        f"extra columns (not used by the model) {_names(extra)}.",
    )


def _normalised(name: str) -> str:
    """Names compared loosely: skl2onnx turns 'education-num' into 'education_num', so case, '-', '.' and ' '
    do not matter."""
    return re.sub(r"[^0-9a-z]+", "_", name.casefold()).strip("_")


def _resolve(names: Sequence[str], columns: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Each model input name → its data column (exact name first, then the loose match when it is unique);
    returns (resolved, missing)."""
    loose: dict[str, list[str]] = {}
    for column in columns:
        loose.setdefault(_normalised(column), []).append(column)
    resolved, missing = {}, []
    for name in names:
        if name in columns:
            resolved[name] = name
        elif len(loose.get(_normalised(name), [])) == 1:
            resolved[name] = loose[_normalised(name)][0]
        else:
            missing.append(name)
    return resolved, missing


def _check_type(value: dict) -> None:
    elem = value["elem_type"]
    if elem not in _NUMERIC and elem not in ("string", "bool"):
        raise ModelRunError(
            "input_mismatch",
            f"The model input {value['name']!r} has type {elem}, which cannot be fed from a data column; "
            "only numeric, bool and string tensor inputs are supported.",
        )


def _plan(summary: ModelSummary, columns: list[str], input_order: list[str] | None) -> list[_Feed]:
    inputs = list(summary.inputs)
    if not inputs:
        raise ModelRunError("input_mismatch", "The model declares no inputs, so no data can be fed to it.")
    for value in inputs:
        _check_type(value)

    def width(value: dict) -> tuple[int, int | None]:
        shape = value["shape"]
        if shape is None:
            return 2, None
        if len(shape) == 1:
            return 1, 1
        if len(shape) == 2:
            return 2, shape[1] if isinstance(shape[1], int) else None
        raise ModelRunError(
            "input_mismatch",
            f"The model input {value['name']!r} has {len(shape)} dimensions; only [rows] and [rows, columns] "
            "inputs can be fed from a table.",
        )

    single_by_name = (
        len(inputs) == 1 and not _resolve([inputs[0]["name"]], columns)[1] and width(inputs[0])[1] in (1, None)
    )
    if len(inputs) > 1 or (single_by_name and input_order is None):
        for value in inputs:
            _rank, k = width(value)
            if k is not None and k != 1:
                raise ModelRunError(
                    "input_mismatch",
                    f"The model input {value['name']!r} takes {k} columns; when a model has several inputs, "
                    "each must take exactly one column, named like the input.",
                )
        resolved, missing = _resolve([v["name"] for v in inputs], columns)
        if missing:
            used = set(resolved.values())
            raise _mismatch(missing, [c for c in columns if c not in used])
        # Columns the model does not take are simply not fed (a reference data set has more than any one model uses).
        return [_Feed(v["name"], (resolved[v["name"]],), v["elem_type"], width(v)[0]) for v in inputs]

    value = inputs[0]
    rank, k = width(value)
    name = value["name"]
    if input_order is not None:
        order = [str(c) for c in input_order]
        doubled = sorted({c for c in order if order.count(c) > 1})
        if doubled:
            raise ModelRunError("input_mismatch", f"input_order names the columns {_names(doubled)} more than once.")
        if k is not None and len(order) != k:
            raise ModelRunError(
                "input_mismatch",
                f"The model input {name!r} takes {k} columns but input_order names {len(order)}: {_names(order)}.",
            )
        resolved, missing = _resolve(order, columns)
        if missing:
            used = set(resolved.values())
            raise _mismatch(
                missing,
                [c for c in columns if c not in used],
                f" (input {name!r} takes the columns named in input_order)",
            )
        return [_Feed(name, tuple(resolved[c] for c in order), value["elem_type"], rank)]
    if k is not None and len(columns) == k:
        return [_Feed(name, tuple(columns), value["elem_type"], rank)]
    takes = f"{k} columns" if k is not None else "an undeclared number of columns"
    raise ModelRunError(
        "input_mismatch",
        f"The model's single input {name!r} takes {takes} and the data have {len(columns)} "
        f"({_names(columns)}); give input_order, the column order declared in the technical document.",
    )


def fed_columns(summary: ModelSummary, columns: Sequence[str], input_order: list[str] | None = None) -> list[str]:
    """The data columns :func:`predict` feeds to the model ``summary`` describes, in feed order.

    ``columns`` are the data's column names. Raises :class:`ModelRunError` (``"input_mismatch"``) exactly when
    :func:`predict` would.
    """
    return [c for feed in _plan(summary, [str(c) for c in columns], input_order) for c in feed.columns]


# --------------------------------------------------------------------------- casting


def _cast_error(column: str, feed: _Feed, what: str) -> ModelRunError:
    return ModelRunError(
        "input_mismatch",
        f"Column {column!r} cannot be fed to the model's {feed.elem} input {feed.name!r}: {what}.",
    )


def _as_numbers(series: pd.Series, column: str, feed: _Feed) -> np.ndarray:
    """The column as float64 (or as its own integer/bool dtype); text is parsed, "" counts as missing."""
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        if pd.api.types.is_integer_dtype(series.dtype) and not series.hasnans:
            return series.to_numpy()
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    text = series.astype(object)
    blank = text.isna() | text.map(lambda v: isinstance(v, str) and not v.strip())
    parsed = pd.to_numeric(text.where(~blank, None), errors="coerce")
    bad = parsed.isna() & ~blank
    if bad.any():
        raise _cast_error(column, feed, f"it holds the non-numeric value {_shown(text[bad].iloc[0])}")
    return parsed.to_numpy(dtype=np.float64, na_value=np.nan)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "…"


def _cast(series: pd.Series, column: str, feed: _Feed) -> np.ndarray:
    """One data column as a 1-D array of the input's element type."""
    elem = feed.elem
    if elem == "string":
        if isinstance(series.dtype, pd.CategoricalDtype):  # each category cast once, rows taken by code
            categories = np.asarray([str(c) for c in series.cat.categories] + [""], dtype=str)
            return categories[series.cat.codes.to_numpy()]  # code -1 (missing) takes the last entry, ""
        if pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(series.dtype):
            return np.asarray(series.fillna("").to_numpy(dtype=object), dtype=str)
        values = series.astype(object)
        values = values.where(~values.isna(), "")
        return np.asarray(values.map(str).to_numpy(dtype=object), dtype=str)
    numbers = _as_numbers(series, column, feed)
    if elem in ("float", "double", "float16"):
        return numbers.astype(_NUMERIC[elem], copy=False)
    if numbers.dtype.kind == "f":
        bad = ~np.isfinite(numbers) | (numbers != np.floor(numbers))
        if bad.any():
            first = numbers[bad][0]
            what = (
                "it has missing values"
                if np.isnan(first)
                else f"it holds the non-integral value {_shown(float(first))}"
            )
            raise _cast_error(column, feed, what)
    if elem == "bool":
        if numbers.dtype.kind != "b" and not np.isin(numbers, (0, 1)).all():
            raise _cast_error(column, feed, "it holds values other than true/false and 1/0")
        return numbers.astype(np.bool_)
    target = np.dtype(_NUMERIC[elem])
    info = np.iinfo(target)
    if numbers.size and (numbers.min() < info.min or numbers.max() > info.max):
        raise _cast_error(column, feed, f"it holds values outside the {elem} range")
    return numbers.astype(target, copy=False)


def _write_feed(feed: _Feed, frame: pd.DataFrame, by_str: dict[str, object], path: str) -> None:
    """Write one input as a C-order .npy file: [N] for one column, [N, k] for several."""
    if len(feed.columns) == 1:
        column = feed.columns[0]
        np.save(path, _cast(frame[by_str[column]], column, feed), allow_pickle=False)
        return
    rows = len(frame)
    labels = [by_str[c] for c in feed.columns]
    if feed.elem in ("float", "double") and all(
        pd.api.types.is_numeric_dtype(frame[c].dtype) and not pd.api.types.is_bool_dtype(frame[c].dtype) for c in labels
    ):
        dtype = np.dtype(_NUMERIC[feed.elem])
        columns = []
        for label in labels:
            series = frame[label]
            if isinstance(series.dtype, np.dtype) and series.dtype.kind in "fiu":
                columns.append(series.to_numpy())  # usually no copy: cast block by block below
            else:  # nullable and other extension types: missing values become NaN
                columns.append(series.to_numpy(dtype=dtype, na_value=np.nan))
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (rows, len(labels))}
        # Rows are laid out block by block in a small buffer and written with write(): far cheaper than
        # faulting in a shared mapping of the whole file, or a transposed copy of the whole table.
        block = max(1, _WRITE_BLOCK_BYTES // (dtype.itemsize * len(labels)))
        buffer = np.empty((min(block, rows), len(labels)), dtype=dtype)
        with open(path, "xb") as f:
            np.lib.format.write_array_header_2_0(f, header)
            for start in range(0, rows, block):
                stop = min(rows, start + block)
                part = buffer[: stop - start]
                for j, column in enumerate(columns):
                    part[:, j] = column[start:stop]
                f.write(part.data)
        return
    parts = [_cast(frame[by_str[c]], c, feed) for c in feed.columns]
    if feed.elem == "string":
        width = max(p.dtype.itemsize for p in parts) // 4
        dtype = np.dtype(f"<U{max(width, 1)}")
    else:
        dtype = parts[0].dtype
    out = np.empty((rows, len(parts)), dtype=dtype)
    for j, part in enumerate(parts):
        out[:, j] = part
    np.save(path, out, allow_pickle=False)


# --------------------------------------------------------------------------- the child


def _copy_model(source: str | os.PathLike, target: str, max_bytes: int, sha256: str) -> None:
    """Copy the checked model into the private directory, refusing it if it changed since the check."""
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as src, open(target, "xb") as dst:
        while chunk := src.read(1024 * 1024):
            size += len(chunk)
            if size > max_bytes:
                break
            digest.update(chunk)
            dst.write(chunk)
    if size > max_bytes or digest.hexdigest() != sha256:
        raise ModelRunError("rejected", "The model file changed while it was being read; submit it again.")


def _child_env(threads: int, workdir: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONPATH": _PACKAGE_ROOT,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "MALLOC_ARENA_MAX": "2",
    }
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[name] = str(threads)
    return env


def _spawn(command: list[str], **kwargs) -> subprocess.Popen:
    """Start the child (a seam for tests that want its pid)."""
    return subprocess.Popen(command, **kwargs)  # noqa: S603 - a fixed command: this interpreter and our module


@dataclass(eq=False)
class _Child:
    """A started child and its private directory; ``warm`` when it was started ahead of time as a spare."""

    process: subprocess.Popen
    workdir: str
    limits: Limits
    warm: bool = False
    waiting: bool = False  # it printed "waiting": numpy and onnxruntime are imported
    early: bytes = b""  # stdout read while it was a spare, handed to the conversation


def _start_child(limits: Limits, *, warm: bool = False) -> _Child:
    """Make a private directory and start a child in it; it sets its limits, imports, and waits for a job."""
    workdir = tempfile.mkdtemp(prefix="audit-run-")
    try:
        setup = {
            "threads": limits.threads,
            "memory_bytes": limits.memory_bytes,
            "cpu_seconds": math.ceil(limits.timeout_seconds * limits.threads) + 60,
            "max_model_bytes": limits.max_model_bytes,
            "parent_pid": os.getpid(),
        }
        with open(os.path.join(workdir, "setup.json"), "x", encoding="utf-8") as f:
            json.dump(setup, f)
        process = _spawn(
            [sys.executable, "-m", "audits._runner_child", workdir],
            cwd=workdir,
            env=_child_env(limits.threads, workdir),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return _Child(process, workdir, limits, warm=warm)


def _discard(child: _Child, *, later: bool = False) -> None:
    """Kill the child's process group if it still runs, reap it, close its pipes, remove its directory
    (``later``: in the background thread, off the caller's path; the child is gone by then)."""
    process = child.process
    if process.returncode is None:
        _kill(process)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError:  # a pipe to a dead child may fail to flush
                pass
    if later:
        _housekeep(child.workdir)
    else:
        shutil.rmtree(child.workdir, ignore_errors=True)


def _send(child: _Child, message: dict) -> bool:
    """Write one JSON line to the child's stdin; False if the child no longer reads it."""
    try:
        child.process.stdin.write(json.dumps(message, ensure_ascii=True).encode("ascii") + b"\n")
        child.process.stdin.flush()
    except (BrokenPipeError, OSError, ValueError):
        return False
    return True


def _kill(process: subprocess.Popen) -> None:
    """Kill the child's whole process group and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.kill()
    except ProcessLookupError:
        pass
    process.wait()


class _Conversation:
    """Reads the child's stdout lines (progress) and keeps the tail of its stderr, within a deadline."""

    def __init__(self, process: subprocess.Popen, total: int, progress: Callable[[int, int], None] | None) -> None:
        self.process = process
        self.total = total
        self.progress = progress
        self.done = 0
        self.stderr = bytearray()
        self._line = bytearray()
        self._skipping = False
        self.took_job = False  # the child said "job": it had the model in hand

    def on_stdout(self, data: bytes) -> None:
        """Split into lines; a line longer than _LINE_MAX is skipped whole."""
        parts = data.split(b"\n")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if not self._skipping:
                self._line += part
                if len(self._line) > _LINE_MAX:
                    self._line.clear()
                    self._skipping = True
            if not last:
                if not self._skipping:
                    self._handle(bytes(self._line))
                self._line.clear()
                self._skipping = False

    def _handle(self, line: bytes) -> None:
        if line == b"job":
            self.took_job = True
            return
        words = line.split()
        if len(words) != 3 or words[0] != b"progress":
            return
        try:
            done, total = int(words[1]), int(words[2])
        except ValueError:
            return
        if total != self.total or not self.done < done <= total:
            return
        self.done = done
        if self.progress is not None:
            self.progress(done, total)

    def on_stderr(self, data: bytes) -> None:
        self.stderr += data
        if len(self.stderr) > _STDERR_KEPT:
            del self.stderr[: len(self.stderr) - _STDERR_KEPT]

    def run(self, deadline: float) -> bool:
        """Pump both pipes until the child closes them and exits; False if the deadline passed first."""
        selector = selectors.DefaultSelector()
        handlers = {}
        for stream, handler in ((self.process.stdout, self.on_stdout), (self.process.stderr, self.on_stderr)):
            selector.register(stream, selectors.EVENT_READ)
            handlers[stream.fileno()] = (stream, handler)
        try:
            while handlers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                for key, _ in selector.select(timeout=min(remaining, 1.0)):
                    stream, handler = handlers[key.fd]
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(stream)
                        del handlers[key.fd]
                        continue
                    handler(data)
        finally:
            selector.close()
        remaining = deadline - time.monotonic()
        try:
            self.process.wait(timeout=max(remaining, 0.001))
        except subprocess.TimeoutExpired:
            return False
        return True

    def stderr_text(self) -> str:
        return bytes(self.stderr).decode("utf-8", errors="replace")


def _tail(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    return last if len(last) <= limit else "…" + last[-limit:]


def _memory_words(text: str) -> bool:
    lowered = text.lower()
    return any(
        w in lowered
        for w in (
            "memoryerror",
            "bad_alloc",
            "bad allocation",
            "failed to allocate",
            "cannot allocate",
            "out of memory",
        )
    )


def _died(returncode: int, stderr: str, limits: Limits) -> ModelRunError:
    """A ModelRunError for a child that exited without a status file."""
    tail = _tail(stderr)
    said = f"; its last error output was {tail!r}" if tail else ""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if number == signal.SIGXCPU:
            return ModelRunError(
                "timeout", f"The model used more CPU time than allowed and was stopped{said}.", stderr=stderr
            )
        if number == signal.SIGKILL or _memory_words(stderr):
            return ModelRunError(
                "memory",
                f"The model process was killed ({name}), most likely for exceeding the memory limit of "
                f"{limits.memory_bytes} bytes{said}.",
                stderr=stderr,
            )
        return ModelRunError("crashed", f"The model process crashed ({name}){said}.", stderr=stderr)
    if _memory_words(stderr):
        return ModelRunError(
            "memory", f"The model ran out of memory (limit {limits.memory_bytes} bytes){said}.", stderr=stderr
        )
    return ModelRunError(
        "crashed", f"The model process exited with code {returncode} without a result{said}.", stderr=stderr
    )


def _read_status(workdir: str) -> dict | None:
    path = os.path.join(workdir, "status.json")
    try:
        with open(path, "rb") as f:
            data = f.read(_STATUS_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(data) > _STATUS_MAX_BYTES:
        raise ModelRunError("bad_output", "The model process wrote a status file that is too large.")
    try:
        status = json.loads(data)
    except ValueError:
        raise ModelRunError("bad_output", "The model process wrote an unreadable status file.") from None
    if not isinstance(status, dict):
        raise ModelRunError("bad_output", "The model process wrote an unreadable status file.")
    return status


def _load(workdir: str, name: str) -> np.ndarray:
    """A result array, mapped read-only and without pickles (its header is checked before any allocation)."""
    try:
        return np.load(os.path.join(workdir, name), mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelRunError("bad_output", f"The model process wrote an unreadable result file {name}: {exc}.") from None


# --------------------------------------------------------------------------- interpreting


def _favourable(label: np.ndarray, favourable_label: str) -> np.ndarray:
    kind = label.dtype.kind
    if kind == "b":
        if favourable_label in ("True", "1"):
            return np.array(label, dtype=bool)
        if favourable_label in ("False", "0"):
            return ~np.asarray(label, dtype=bool)
        return np.zeros(label.shape[0], dtype=bool)
    if kind in "iu":
        try:
            wanted = int(favourable_label)
        except ValueError:
            return np.zeros(label.shape[0], dtype=bool)
        if str(wanted) != favourable_label:
            return np.zeros(label.shape[0], dtype=bool)
        return np.asarray(label == wanted)
    if kind == "U":
        return np.asarray(label == favourable_label)
    values = _distinct_values(label)  # floats: compare the text of each distinct value
    hits = [v for v in values if str(v.item()) == favourable_label]
    return np.isin(label, hits) if hits else np.zeros(label.shape[0], dtype=bool)


def _distinct_values(label: np.ndarray) -> np.ndarray:
    if label.dtype.kind == "U":
        return np.unique(label)
    return np.sort(pd.unique(np.asarray(label)))


def _text(value: np.generic) -> str:
    return str(value.item())


def _distinct(label: np.ndarray, classes: list[str] | None) -> tuple[str, ...]:
    """Distinct labels as text, in the labels' natural order; fast when the classes are known."""
    if classes and len(classes) <= 64 and label.dtype.kind in "iuU":
        try:
            candidates = [int(c) if label.dtype.kind in "iu" else c for c in classes]
        except ValueError:
            candidates = None
        if candidates is not None:
            counts = [(c, int(np.count_nonzero(label == c))) for c in candidates]
            if sum(n for _, n in counts) == label.shape[0]:
                present = sorted(c for c, n in counts if n)
                return tuple(str(c) for c in present)
    return tuple(_text(v) for v in _distinct_values(label))


def _score(
    probability: np.ndarray | None,
    classes: list[str] | None,
    raw_labels: tuple[str, ...],
    label_kind: str,
    favourable_label: str,
) -> np.ndarray | None:
    if probability is None or not classes or len(classes) != probability.shape[1]:
        return None
    alias = {"True": "1", "False": "0", "1": "1", "0": "0"} if label_kind == "b" else {}
    seen = [alias.get(r, r) for r in raw_labels]
    if not set(seen) <= set(classes):
        return None  # the class order does not describe these labels: do not guess
    wanted = alias.get(favourable_label, favourable_label)
    if wanted not in classes:
        raise ModelRunError(
            "bad_output",
            f"The favourable label {favourable_label!r} is not one of the model's classes ({_names(classes)}).",
        )
    return np.array(probability[:, classes.index(wanted)], dtype=np.float64)


# --------------------------------------------------------------------------- entry point


def predict(
    model_path: str | os.PathLike,
    features: pd.DataFrame,
    *,
    favourable_label: str,
    input_order: list[str] | None = None,
    limits: Limits = Limits(),  # noqa: B008 - frozen dataclass
    progress: Callable[[int, int], None] | None = None,
) -> Predictions:
    """Run an ONNX classifier on ``features`` in a bounded child process.

    Args:
        model_path: the submitted ``.onnx`` file.
        features: one row per case, one column per model feature (see the module
            documentation for how columns map onto model inputs).
        favourable_label: the label that counts as the favourable decision,
            compared with ``str(predicted value)`` (bool outputs also accept
            ``"1"``/``"0"``).
        input_order: for a model with a single ``[N, k]`` input, the k column
            names in the order the technical document declares.
        limits: threads, memory, wall-clock, batch size and model size bounds.
        progress: called in this thread as ``progress(done_rows, total_rows)``
            after each batch.

    Returns:
        :class:`Predictions`.

    Raises:
        ModelRunError: see its ``code``; the caller's process is never harmed.
        ValueError: ``features`` is empty or has duplicate column names,
            or ``favourable_label`` is not a string (caller errors).
        OSError: the model file cannot be read.
    """
    started = time.perf_counter()
    if not isinstance(favourable_label, str):
        raise ValueError(f"favourable_label must be a string, not {favourable_label!r}")
    if not isinstance(features, pd.DataFrame):
        raise ValueError("features must be a pandas DataFrame")
    total = len(features)
    if total == 0:
        raise ValueError("features has no rows; there is nothing to predict")
    by_str: dict[str, object] = {}
    for column in features.columns:
        if str(column) in by_str:
            raise ValueError(f"features has the column {str(column)!r} more than once")
        by_str[str(column)] = column
    columns = list(by_str)

    try:
        summary = check_model_file(model_path, max_bytes=limits.max_model_bytes)
    except ModelRejected as exc:
        raise ModelRunError("rejected", exc.message) from None
    feeds = _plan(summary, columns, input_order)

    child = _take_spare(limits)
    try:
        if child is None:
            child = _start_child(limits)
        try:
            status = _serve(child, model_path, summary.sha256, feeds, features, by_str, limits, progress)
        except _SpareLost:
            # The spare died before it took the job (killed while it waited): nothing of the model ran yet.
            _discard(child)
            child = _start_child(limits)
            status = _serve(child, model_path, summary.sha256, feeds, features, by_str, limits, progress)
        return _results(child.workdir, status, total, favourable_label, started)
    finally:
        if child is not None:
            _discard(child, later=True)
        _replace_spare(limits)


class _SpareLost(Exception):
    """A warm child was gone before it took its job."""


def _serve(
    child: _Child,
    model_path: str | os.PathLike,
    sha256: str,
    feeds: list[_Feed],
    features: pd.DataFrame,
    by_str: dict[str, object],
    limits: Limits,
    progress: Callable[[int, int], None] | None,
) -> dict:
    """Hand one model and its data to the child and wait for it; the child's (successful) status."""
    global _last_pid, _warm_runs
    workdir = child.workdir
    process = child.process
    total = len(features)
    _copy_model(model_path, os.path.join(workdir, "model.onnx"), limits.max_model_bytes, sha256)
    job = {"workdir": workdir, "model": "model.onnx", "file_bytes": 256 * 1024**2 + total * 4096}
    if not _send(child, job) and child.warm:
        raise _SpareLost
    # The child loads the model while the data are written.
    inputs = []
    for i, feed in enumerate(feeds):
        name = f"input_{i}.npy"
        _write_feed(feed, features, by_str, os.path.join(workdir, name))
        inputs.append({"name": feed.name, "file": name, "rank": feed.rank})
    deadline = time.monotonic() + limits.timeout_seconds
    _send(child, {"rows": total, "batch_rows": limits.batch_rows, "inputs": inputs})  # if not, the status says why
    try:
        process.stdin.close()
    except OSError:
        pass
    conversation = _Conversation(process, total, progress)
    conversation.on_stdout(child.early)
    finished = conversation.run(deadline)
    if finished and child.warm and not conversation.took_job:
        raise _SpareLost
    _last_pid = process.pid
    _warm_runs += child.warm
    if not finished:
        _kill(process)
        raise ModelRunError(
            "timeout",
            f"The model did not finish within the time limit of {limits.timeout_seconds:g} seconds and was stopped.",
            stderr=conversation.stderr_text(),
        )
    stderr = conversation.stderr_text()
    status = _read_status(workdir)
    if status is None:
        raise _died(process.returncode, stderr, limits)
    if status.get("ok") is not True:
        code = status.get("code")
        message = status.get("message")
        if code not in _CODES or not isinstance(message, str):
            raise ModelRunError(
                "bad_output", "The model process reported a failure it could not describe.", stderr=stderr
            )
        raise ModelRunError(code, message[:1000], stderr=stderr)
    return status


# --------------------------------------------------------------------------- warm spares
#
# Starting a child costs about a quarter of a second (Python, numpy, onnxruntime), more than running a small
# model on a million rows. A process that audits models can call prewarm() once: a spare child is then kept
# ready for those limits — started, limited and imported, waiting on its stdin — and predict() hands it the
# job instead of starting one, then asks for the next spare. A spare serves one model and exits, like any
# child. Spares are started by one long-lived thread, because a child asks to be killed when the *thread*
# that started it ends (PR_SET_PDEATHSIG), and a caller's thread may end long before the process.

_spares_lock = threading.Condition()
_spares: dict[Limits, _Child] = {}  # one ready (or starting-up) spare per Limits
_wanted: set[Limits] = set()  # prewarm() was called for these
_starting: set[Limits] = set()  # the starter thread is starting a spare for these
_requests: list[Limits | str] = []  # for the starter thread: spares to start, directories to remove
_starter: threading.Thread | None = None
_busy = False  # the starter thread is handling a request
_owner = os.getpid()  # the process the spares belong to (not a fork of it)
_orphans: list[_Child] = []  # a forked process's copies of its parent's spares: never used, never collected
_last_pid: int | None = None  # the child that served the last job (for tests)
_warm_runs = 0  # jobs served by a spare (for tests and benchmarks)
_START_WAIT = 5.0  # seconds predict() waits for a spare that is being started


def prewarm(limits: Limits = Limits()) -> None:  # noqa: B008 - frozen dataclass
    """Keep a warm spare child ready for runs with these limits, started in the background.

    The spare sets its limits, imports numpy and onnxruntime, and waits for one
    job; :func:`predict` with the same limits uses it and starts the next one.
    Safe to call repeatedly: there is at most one spare per ``Limits`` value.
    Spares die with this process (and :func:`shutdown_spares` stops them).
    """
    if not isinstance(limits, Limits):
        raise ValueError("limits must be a Limits")
    with _spares_lock:
        _wanted.add(limits)
    _replace_spare(limits)


def spare_ready(limits: Limits = Limits(), timeout: float = 0.0) -> bool:  # noqa: B008 - frozen dataclass
    """True when a spare for these limits has imported everything and waits for a job; waits up to ``timeout``.

    For tests and benchmarks: it polls the spare in short slices under the module lock.
    """
    deadline = time.monotonic() + timeout
    while True:
        dead = None
        with _spares_lock:
            while limits in _starting and (remaining := deadline - time.monotonic()) > 0:
                _spares_lock.wait(remaining)
            child = _spares.get(limits) if os.getpid() == _owner else None
            if child is not None and not child.waiting:
                _poll_waiting(child, min(max(deadline - time.monotonic(), 0.0), 0.02))
                if child.process.poll() is not None:
                    dead = _spares.pop(limits)
        if dead is not None:
            _discard(dead)
            return False
        if child is None or child.waiting or time.monotonic() >= deadline:
            return child is not None and child.waiting


def _poll_waiting(child: _Child, timeout: float) -> None:
    """Read what a spare printed so far (at most ``timeout`` seconds); notes when it said "waiting"."""
    fd = child.process.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not child.waiting and selector.select(timeout):
            data = os.read(fd, 4096)
            if not data:
                return
            child.early += data
            if len(child.early) > _LINE_MAX:  # a spare prints one short line; anything else is not "waiting"
                return
            child.waiting = b"waiting\n" in child.early
            timeout = 0


def shutdown_spares() -> None:
    """Stop keeping spares: kill the ones that wait and forget every prewarm() call (runs after this are cold)."""
    with _spares_lock:
        _wanted.clear()
        deadline = time.monotonic() + _START_WAIT
        while (_starting or _busy) and (remaining := deadline - time.monotonic()) > 0:
            _spares_lock.wait(remaining)
        children = list(_spares.values()) if os.getpid() == _owner else []
        _spares.clear()
        leftovers = [r for r in _requests if isinstance(r, str)]  # directories not yet removed
        _requests[:] = [r for r in _requests if not isinstance(r, str)]
    for child in children:
        _discard(child)
    for workdir in leftovers:
        shutil.rmtree(workdir, ignore_errors=True)


def _take_spare(limits: Limits) -> _Child | None:
    """The spare for these limits, if one is alive (it leaves the pool: it will serve this one job)."""
    with _spares_lock:
        if os.getpid() != _owner or limits not in _wanted:
            return None
        deadline = time.monotonic() + _START_WAIT
        while limits in _starting and (remaining := deadline - time.monotonic()) > 0:
            _spares_lock.wait(remaining)
        child = _spares.pop(limits, None)
    if child is not None and child.process.poll() is not None:  # died while it waited (killed, out of memory)
        _discard(child)
        return None
    return child


def _replace_spare(limits: Limits) -> None:
    """Ask the starter thread for a spare for these limits, if prewarm() wants one and none is there."""
    with _spares_lock:
        if os.getpid() != _owner or limits not in _wanted or limits in _starting:
            return
        child = _spares.get(limits)
        if child is not None and child.process.poll() is None:
            return
        _starting.add(limits)
        _ask(limits)
    if child is not None:
        _discard(child)  # a spare that died while it waited


def _housekeep(workdir: str) -> None:
    """Remove a finished run's directory in the background (unlinking its files takes milliseconds)."""
    with _spares_lock:
        if os.getpid() == _owner:
            _ask(workdir)
            return
    shutil.rmtree(workdir, ignore_errors=True)


def _ask(request: Limits | str) -> None:
    """Queue a request for the starter thread (a spare to start, or a directory to remove); holds the lock."""
    global _starter
    _requests.append(request)
    if _starter is None:
        _starter = threading.Thread(target=_start_spares, name="audits-spare-starter", daemon=True)
        _starter.start()
    _spares_lock.notify_all()


def _start_spares() -> None:
    """The starter thread: starts the spares asked for and removes old directories, while the process lives."""
    global _busy
    while True:
        with _spares_lock:
            _busy = False
            _spares_lock.notify_all()
            while not _requests:
                _spares_lock.wait()
            limits = _requests.pop(0)
            _busy = True
        if isinstance(limits, str):
            shutil.rmtree(limits, ignore_errors=True)
            continue
        child = None
        try:
            child = _start_child(limits, warm=True)
        except Exception:  # noqa: S110 - no spare this time: runs start their own child
            pass
        with _spares_lock:
            _starting.discard(limits)
            if child is not None and limits in _wanted and limits not in _spares:
                _spares[limits], child = child, None
            _spares_lock.notify_all()
        if child is not None:
            _discard(child)


def _after_fork_in_child() -> None:
    """A forked process does not own its parent's spares: forget them (its copies of their pipes closed)."""
    global _spares_lock, _starter, _owner, _busy
    _spares_lock = threading.Condition()
    _starter = None
    _busy = False
    _owner = os.getpid()
    for child in _spares.values():
        for stream in (child.process.stdin, child.process.stdout, child.process.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        child.process.poll()  # not this process's child: Popen records it as gone, so it is never waited for
        _orphans.append(child)
    _spares.clear()
    _wanted.clear()
    _starting.clear()
    _requests.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(shutdown_spares)


def _results(workdir: str, status: dict, total: int, favourable_label: str, started: float) -> Predictions:
    label = _load(workdir, "label.npy")
    if label.ndim != 1 or label.shape[0] != total or label.dtype.kind not in "biufU":
        raise ModelRunError(
            "bad_output",
            f"The model's label output has shape {list(label.shape)} and type {label.dtype}, "
            f"not one label per row for {total} rows.",
        )
    probability = None
    if status.get("probability_output") is not None:
        probability = _load(workdir, "probability.npy")
        if (
            probability.ndim != 2
            or probability.shape[0] != total
            or probability.shape[1] < 1
            or probability.dtype not in (np.float32, np.float64)
        ):
            raise ModelRunError(
                "bad_output",
                f"The model's probability output has shape {list(probability.shape)}, not one row of class "
                f"probabilities per input row for {total} rows.",
            )
    classes = status.get("classes")
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        classes = None
    favourable = _favourable(label, favourable_label)
    raw_labels = _distinct(label, classes)
    score = _score(probability, classes, raw_labels, label.dtype.kind, favourable_label)
    del label, probability
    return Predictions(
        label=favourable,
        score=score,
        raw_labels=raw_labels,
        seconds=time.perf_counter() - started,
    )
