"""The child process of :mod:`audits.runner`: runs one ONNX model under OS limits.

Started as ``python -m audits._runner_child WORKDIR`` in a new session, with a
minimal environment — either for one run right away, or ahead of time as a warm
*spare* that waits for its run. Everything it exchanges with the parent is a
file in WORKDIR (a private directory the parent made) or a short text line:

* reads ``WORKDIR/setup.json`` (limits, the parent's pid) at start;
* sets its resource limits *before* importing numpy or onnxruntime, imports
  them, prints ``waiting``;
* reads one JSON line on stdin, the job: ``{"workdir": WORKDIR, "model":
  "model.onnx", "file_bytes": N}`` (end of file means "stop": it exits without a
  status), prints ``job`` (nothing of the model has been touched before this
  line), caps the size of the files it may write;
* re-checks the model with :func:`audits.model_check.check_model_file`, builds
  the onnxruntime session, prints ``ready``;
* reads a second JSON line, the data: ``{"rows": N, "batch_rows": B, "inputs":
  [{"name": ..., "file": "input_0.npy", "rank": 1 or 2}, ...]}`` (one ``.npy``
  file per model input; end of file means "stop");
* runs the model batch by batch, printing ``progress DONE TOTAL`` after each;
* writes ``label.npy`` (int64, bool, float64 or fixed-width unicode, one value
  per row), ``probability.npy`` (float32 or float64, rows × classes) when the model gives
  probabilities, and last ``status.json``: ``{"ok": true, "label_output": ...,
  "probability_output": ..., "classes": [...] | null, "rows": N}`` or
  ``{"ok": false, "code": ..., "message": ...}``.

It serves exactly one model and exits.

Only ``.npy`` files without pickles and JSON cross the boundary. The parent
never trusts anything here beyond what it validates itself.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

_SETUP_MAX_BYTES = 64 * 1024
_JOB_MAX_BYTES = 64 * 1024  # the first stdin line: the model to run
_DATA_MAX_BYTES = 16 * 1024 * 1024  # the second stdin line: the input files


class _Stopped(Exception):
    """The parent closed stdin before giving a job (a spare that is no longer needed)."""


class _Failure(Exception):
    """A failure with a machine code, reported through status.json."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _read_json(path: str, max_bytes: int) -> dict:
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _Failure("runtime_error", f"{os.path.basename(path)} is too large.")
    value = json.loads(data)
    if not isinstance(value, dict):
        raise _Failure("runtime_error", f"{os.path.basename(path)} is not a JSON object.")
    return value


def _write_status(workdir: str, status: dict) -> None:
    tmp = os.path.join(workdir, "status.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(status, f, ensure_ascii=True)
    os.replace(tmp, os.path.join(workdir, "status.json"))


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _read_line(max_bytes: int) -> dict | None:
    """One JSON object on one stdin line; None at end of file."""
    line = sys.stdin.buffer.readline(max_bytes + 1)
    if not line:
        return None
    if len(line) > max_bytes or not line.endswith(b"\n"):
        raise _Failure("runtime_error", "The model runner was given an overlong or unfinished line.")
    value = json.loads(line)
    if not isinstance(value, dict):
        raise _Failure("runtime_error", "The model runner was given a line that is not a JSON object.")
    return value


def _cap(which: int, value: int) -> None:
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _set_limits(setup: dict) -> None:
    """Resource limits first, before any large library is loaded (the file-size cap comes with the job)."""
    _cap(resource.RLIMIT_CORE, 0)
    _cap(resource.RLIMIT_AS, int(setup["memory_bytes"]))
    _cap(resource.RLIMIT_NOFILE, 256)
    _cap(resource.RLIMIT_CPU, int(setup["cpu_seconds"]))
    threads = str(int(setup["threads"]))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[name] = threads
    _die_with_parent(int(setup["parent_pid"]))


def _die_with_parent(parent_pid: int) -> None:
    """Best effort (Linux): be killed when the parent dies, so no run is orphaned."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except Exception:  # noqa: S110 - best effort only
        pass
    if os.getppid() != parent_pid:  # the parent already went away
        os._exit(3)


# --------------------------------------------------------------------------- model


def _class_labels(node) -> list[str] | None:
    for attr in node.attribute:
        if attr.name == "classlabels_strings" and len(attr.strings) > 0:
            return [s.decode("utf-8", errors="replace") for s in attr.strings]
        if attr.name in ("classlabels_ints", "classlabels_int64s") and len(attr.ints) > 0:
            return [str(int(i)) for i in attr.ints]
    return None


def _classes_for(model, output_name: str) -> list[str] | None:
    """The class order of a probability tensor: the nearest ancestor node carrying
    ``classlabels_*`` (LinearClassifier, TreeEnsembleClassifier, SVMClassifier,
    ZipMap...); else the class list all such nodes of the main graph agree on."""
    graph = model.graph
    producer = {}
    for node in graph.node:
        for out in node.output:
            producer[out] = node
    seen: set[str] = set()
    frontier = [output_name]
    while frontier:  # breadth first: the nearest ancestor wins
        following: list[str] = []
        for name in frontier:
            if name in seen:
                continue
            seen.add(name)
            node = producer.get(name)
            if node is None:
                continue
            labels = _class_labels(node)
            if labels is not None:
                return labels
            following.extend(node.input)
        frontier = following
    found = [labels for node in graph.node if (labels := _class_labels(node)) is not None]
    if found and all(labels == found[0] for labels in found):
        return found[0]
    return None


def _pick_outputs(session) -> tuple[str, str | None, str | None]:
    """(label output, probability output or None, probability kind: "tensor"/"map"/None)."""
    outputs = session.get_outputs()
    label_types = {"tensor(int64)", "tensor(int32)", "tensor(string)", "tensor(bool)"}
    labels = [o for o in outputs if o.type in label_types]
    if not labels:
        described = ", ".join(f"{o.name!r} ({o.type})" for o in outputs[:10])
        raise _Failure(
            "bad_output",
            f"The model has no predicted-label output (an int64, string or bool tensor); its outputs are {described}.",
        )
    labels.sort(key=lambda o: 0 if "label" in o.name.lower() else 1)
    label = labels[0].name
    maps = [o for o in outputs if o.type.startswith("seq(map(") and o.type.endswith(",tensor(float)))")]
    maps += [o for o in outputs if o.type.startswith("seq(map(") and o.type.endswith(",tensor(double)))")]
    tensors = [o for o in outputs if o.type in ("tensor(float)", "tensor(double)") and len(o.shape or []) == 2]
    candidates = [(o, "tensor") for o in tensors] + [(o, "map") for o in maps]
    if not candidates:
        return label, None, None
    candidates.sort(key=lambda c: 0 if "prob" in c[0].name.lower() else 1)
    chosen, kind = candidates[0]
    return label, chosen.name, kind


def _maps_to_matrix(np, maps: list, classes: list | None) -> tuple:
    """A ZipMap output (a list of {class: probability}) as a float64 matrix and its class keys."""
    rows = len(maps)
    if rows == 0:
        keys = classes if classes is not None else []
        return np.zeros((0, len(keys)), dtype=np.float64), keys
    keys = list(maps[0].keys())
    first = maps[0].keys()
    width = len(keys)
    for m in maps:
        if m.keys() != first:
            raise _Failure("bad_output", "The model's probability maps do not all have the same classes.")
    values = np.fromiter((v for m in maps for v in m.values()), dtype=np.float64, count=rows * width)
    return values.reshape(rows, width), keys


# --------------------------------------------------------------------------- data


def _open_rows(np, path: str):
    """Header of a .npy file: (shape, dtype, data offset); object arrays are refused."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        offset = f.tell()
    if dtype.hasobject or fortran:
        raise _Failure("runtime_error", f"Input file {os.path.basename(path)} is not a plain C-order array.")
    return shape, dtype, offset


def _batch(np, path: str, shape, dtype, offset: int, start: int, stop: int, rank: int):
    """Rows [start, stop) of a .npy file, memory-mapped (only this batch is mapped)."""
    row_items = 1
    for dim in shape[1:]:
        row_items *= dim
    rows = stop - start
    array = np.memmap(
        path,
        dtype=dtype,
        mode="r",
        offset=offset + start * row_items * dtype.itemsize,
        shape=(rows, *shape[1:]),
    )
    array = np.asarray(array)  # a plain ndarray view of the mapping
    if len(shape) == 1:
        array = array.reshape(rows, 1) if rank == 2 else array
    return array


# --------------------------------------------------------------------------- main


def _run(workdir: str) -> dict:
    setup = _read_json(os.path.join(workdir, "setup.json"), _SETUP_MAX_BYTES)
    _set_limits(setup)

    limit = int(setup["memory_bytes"])
    try:
        import numpy as np
        import onnx
        import onnxruntime as ort

        from audits.model_check import ModelRejected, check_model_file
    except (MemoryError, ImportError, OSError) as exc:
        if isinstance(exc, MemoryError) or _looks_like_memory(_first_line(exc)):
            raise _Failure(
                "memory",
                f"The model runner could not start within the memory limit of {limit} bytes; "
                "onnxruntime needs a few hundred megabytes of address space before any data.",
            ) from None
        raise

    _say("waiting")  # a warm spare: everything slow to start is done

    job = _read_line(_JOB_MAX_BYTES)
    if job is None:
        raise _Stopped
    if os.path.realpath(str(job["workdir"])) != os.path.realpath(workdir):
        raise _Failure("runtime_error", "The model runner was given a job for another directory.")
    _say("job")  # the job is taken; nothing of the model was touched before this line
    _cap(resource.RLIMIT_FSIZE, int(job["file_bytes"]))
    model_path = os.path.join(workdir, os.path.basename(str(job["model"])))
    try:
        check_model_file(model_path, max_bytes=int(setup["max_model_bytes"]))
    except ModelRejected as exc:
        raise _Failure("rejected", exc.message) from None
    with open(model_path, "rb") as f:
        model_bytes = f.read()
    model = onnx.load_model_from_string(model_bytes)  # no external data: refused by the check above

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(setup["threads"])
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise _onnxruntime_failure(exc, limit, "could not load the model") from None
    del model_bytes

    label_name, prob_name, prob_kind = _pick_outputs(session)
    classes = _classes_for(model, prob_name) if prob_kind == "tensor" else None
    del model
    _say("ready")

    job = _read_line(_DATA_MAX_BYTES)
    if job is None:
        raise _Failure("runtime_error", "The model runner was stopped before it was given data.")
    total = int(job["rows"])
    batch_rows = int(job["batch_rows"])
    feeds = []
    for item in job["inputs"]:
        path = os.path.join(workdir, os.path.basename(str(item["file"])))
        shape, dtype, offset = _open_rows(np, path)
        if not shape or shape[0] != total:
            raise _Failure("runtime_error", f"Input file {item['file']} does not hold {total} rows.")
        feeds.append((str(item["name"]), path, shape, dtype, offset, int(item["rank"])))

    wanted = [label_name] + ([prob_name] if prob_name else [])
    labels: list = []
    probabilities: list = []
    map_keys = None
    started = time.perf_counter()
    done = 0
    while done < total:
        stop = min(total, done + batch_rows)
        batch = {
            name: _batch(np, path, shape, dtype, offset, done, stop, rank)
            for name, path, shape, dtype, offset, rank in feeds
        }
        try:
            result = session.run(wanted, batch)
        except Exception as exc:
            raise _onnxruntime_failure(exc, limit, "failed while running the model") from None
        del batch
        label = np.asarray(result[0])
        if label.ndim == 2 and label.shape[1] == 1:
            label = label.reshape(-1)
        if label.ndim != 1 or label.shape[0] != stop - done:
            raise _Failure("bad_output", f"The label output has shape {list(label.shape)}, not one value per row.")
        labels.append(label)
        if prob_name is not None:
            if prob_kind == "map":
                matrix, keys = _maps_to_matrix(np, result[1], None)
                keys = [str(k) for k in keys]
                if map_keys is None:
                    map_keys = keys
                elif keys != map_keys:
                    raise _Failure("bad_output", "The model's probability maps change classes between batches.")
            else:
                matrix = np.asarray(result[1])
            if matrix.ndim != 2 or matrix.shape[0] != stop - done:
                raise _Failure(
                    "bad_output", f"The probability output has shape {list(matrix.shape)}, not one row per input row."
                )
            probabilities.append(matrix)
        del result
        done = stop
        _say(f"progress {done} {total}")
    seconds = time.perf_counter() - started

    if any(part.dtype.kind == "O" for part in labels):  # string tensors come back as object arrays of str
        labels = [part.astype(str) for part in labels]
    label_type = np.result_type(*labels) if labels else np.dtype(np.int64)
    if label_type.kind in "iu":
        label_type = np.dtype(np.int64)
    _save_parts(np, os.path.join(workdir, "label.npy"), labels, label_type, total)
    del labels
    if prob_name is not None:
        prob_type = np.result_type(*probabilities) if probabilities else np.dtype(np.float64)
        if prob_type != np.float32:
            prob_type = np.dtype(np.float64)
        _save_parts(np, os.path.join(workdir, "probability.npy"), probabilities, prob_type, total)
        del probabilities
        if prob_kind == "map":
            classes = map_keys
    return {
        "ok": True,
        "rows": total,
        "label_output": label_name,
        "probability_output": prob_name,
        "classes": classes,
        "seconds": seconds,
    }


def _save_parts(np, path: str, parts: list, dtype, total: int) -> None:
    """The batches' results as one .npy file of ``total`` rows, written part by part (never joined in memory)."""
    columns = parts[0].shape[1:] if parts else ()
    if any(part.shape[1:] != columns for part in parts):
        raise _Failure("bad_output", "The model's outputs change shape between batches.")
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (total, *columns)}
    with open(path, "xb") as f:
        np.lib.format.write_array_header_2_0(f, header)
        for part in parts:
            f.write(np.ascontiguousarray(part, dtype=dtype).data)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:500]


_MEMORY_WORDS = ("bad_alloc", "bad allocation", "failed to allocate", "out of memory", "cannot allocate", "map segment")


def _onnxruntime_failure(exc: BaseException, limit: int, doing: str) -> _Failure:
    """An onnxruntime error as the failure the parent reports: out of memory, or a runtime error."""
    if isinstance(exc, MemoryError):
        return _Failure("memory", _out_of_memory(limit, ""))
    text = _first_line(exc)
    if _looks_like_memory(text):
        return _Failure("memory", _out_of_memory(limit, text))
    return _Failure("runtime_error", f"onnxruntime {doing}: {text}")


def _looks_like_memory(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _MEMORY_WORDS)


def _out_of_memory(limit: int, text: str) -> str:
    """One sentence; onnxruntime's own words kept from "Failed to allocate..." on (no source paths)."""
    detail = ""
    at = text.lower().find("failed to allocate")
    if at >= 0:
        detail = f" (onnxruntime: {text[at : at + 200].rstrip('. ')})"
    return f"The model needed more memory than the limit of {limit} bytes allows{detail}."


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m audits._runner_child WORKDIR\n")
        return 2
    workdir = argv[0]
    try:
        status = _run(workdir)
    except _Stopped:
        return 0
    except _Failure as exc:
        status = {"ok": False, "code": exc.code, "message": exc.message}
    except MemoryError:
        status = {
            "ok": False,
            "code": "memory",
            "message": "The model ran out of memory (the memory limit was reached).",
        }
    except Exception as exc:  # any other failure is reported, not raised
        status = {"ok": False, "code": "runtime_error", "message": f"The model runner failed: {_first_line(exc)}"}
    try:
        _write_status(workdir, status)
    except MemoryError:
        return 4
    return 0 if status.get("ok") else 1


if __name__ == "__main__":
    _code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_code)  # skip interpreter teardown (onnxruntime's is slow); every file is already closed
