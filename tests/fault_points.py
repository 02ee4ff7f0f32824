"""Test-only failpoints for the fault tests: a server process started with ``REGISTRY_FAULT_POINT=<name>`` stops at
that point of its work (it writes ``<REGISTRY_FAULT_DIR>/<name>.reached`` and waits there), so that the test can
SIGKILL it at exactly that moment. Nothing here is imported by the registry itself: production code has no
failpoints. A process that is not killed within HOLD_SECONDS exits without finishing its work.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flask import Flask, request

POINT = "REGISTRY_FAULT_POINT"
FOLDER = "REGISTRY_FAULT_DIR"
HOLD_SECONDS = 120

# name → what the request has done when it stops there
POINTS = {
    "upload-stored": "an uploaded file is complete in incoming/ and checked, not yet kept nor recorded",
    "decision-before-log": "a countersignature is applied (decision, filing, number) but the log entry is not",
    "decision-after-log": "the decision and its log entry are written, not committed",
    "decision-after-commit": "the countersignature is committed, the answer not yet sent",
    "audit-mid-run": "an audit job runs its model over the reference data",
}


def reached_marker(folder: Path, name: str) -> Path:
    return folder / f"{name}.reached"


def hold(name: str) -> None:
    """Say that ``name`` is reached, then wait to be killed; never carry on past a failpoint."""
    reached_marker(Path(os.environ[FOLDER]), name).write_text(str(os.getpid()))
    deadline = time.monotonic() + HOLD_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.05)
    os._exit(99)


def install(app: Flask | None = None) -> str | None:
    """Install the failpoint named by the environment (if any); returns its name."""
    name = os.environ.get(POINT)
    if not name:
        return None
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}; one of {', '.join(POINTS)}")
    if name == "upload-stored":
        from registry.storage.files import LocalContentStore

        put_stream = LocalContentStore.put_stream

        def held_put_stream(self, stream, *, max_bytes, check=None):
            def checked(path):
                if check is not None:
                    check(path)
                hold(name)

            return put_stream(self, stream, max_bytes=max_bytes, check=checked)

        LocalContentStore.put_stream = held_put_stream
    elif name in ("decision-before-log", "decision-after-log"):
        from registry.decision_log import service as decision_log

        append = decision_log.append

        def held_append(*args, **kwargs):
            if name == "decision-before-log":
                hold(name)
            appended = append(*args, **kwargs)
            hold(name)
            return appended

        decision_log.append = held_append
    elif name == "decision-after-commit":
        if app is None:
            raise ValueError("decision-after-commit needs the app")

        @app.after_request
        def _held(response):
            if request.method == "POST" and request.path.endswith("/countersign") and response.status_code == 200:
                hold(name)
            return response
    elif name == "audit-mid-run":
        from registry.audit_jobs import service as audit_jobs

        report = audit_jobs._Lease.report

        def held_report(self, stage, done, total):
            report(self, stage, done, total)
            if done > 0:
                hold(name)

        audit_jobs._Lease.report = held_report
    return name
