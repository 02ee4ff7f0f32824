"""Audit jobs: a reviewer queues an audit, a worker runs it, everyone who may read the filing reads the report.

Workers run synchronously here (``registry audits run-pending``, ``claim_next`` + ``run_job``): no sleeps.
"""

from __future__ import annotations

import copy
import io
import threading
from datetime import timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlmodel import Session

from audits import reference
from registry.audit_jobs import service
from registry.audit_jobs.models import AuditJob
from registry.audit_jobs.worker import run_pending
from registry.cli import main
from registry.db import utcnow

DATASET = "german-credit"


@pytest.fixture(scope="session")
def credit_model():
    """A real scikit-learn model exported with skl2onnx: one tensor input of German credit's numeric columns."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    data = reference.load(DATASET)
    columns = [c for c in data.features.columns if data.features[c].dtype.kind in "if"]
    x = data.features[columns].to_numpy(dtype=np.float32)
    model = LogisticRegression(max_iter=2000).fit(x, data.y_true)
    onnx_model = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    accuracy = float((model.predict(x) == data.y_true).mean())
    return {"bytes": onnx_model.SerializeToString(), "columns": columns, "accuracy": accuracy}


def file_credit_filing(api, documents, model_bytes: bytes, columns: list[str]) -> int:
    """File, upload and submit a filing through the API as Zhengzhou; returns its id."""
    city = api("zhengzhou")
    technical = copy.deepcopy(documents.technical_document)
    template = technical["model"]["inputs"][0]
    technical["model"]["inputs"] = [
        template | {"name": name, "description": f"{name} (German credit)", "sensitive_attribute": False}
        for name in columns
    ]
    created = city.post("/api/v1/filings", json={"technical_document": technical, "test_report": documents.test_report})
    assert created.status_code == 201, created.get_json()
    filing_id = created.get_json()["id"]
    upload = city.post(
        f"/api/v1/filings/{filing_id}/attachments",
        data={"kind": "model", "file": (io.BytesIO(model_bytes), "credit.onnx")},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 201, upload.get_json()
    submitted = city.post(f"/api/v1/filings/{filing_id}/submit")
    assert submitted.status_code == 200, submitted.get_json()
    return filing_id


def publish_audited(app, api, filing_id: int, audits: list[dict], **decision) -> list[int]:
    """Take a submitted filing into review, run one audit for each body in ``audits`` (over DATASET, 20 replicates,
    unless a body says otherwise), and decide on it citing them all (approved unless ``decision`` says otherwise;
    countersigned when its tier needs it). Returns the audits' job ids, oldest first."""
    reviewer = api("reviewer1")
    assert reviewer.post(f"/api/v1/filings/{filing_id}/actions/start_review").status_code == 200
    jobs = []
    for body in audits:
        started = reviewer.post(
            f"/api/v1/filings/{filing_id}/audits", json={"dataset": DATASET, "replicates": 20} | body
        )
        assert started.status_code in (200, 201, 202), started.get_json()
        jobs.append(started.get_json()["id"])
        run_pending(engine=app.extensions["registry"].engine, content=app.extensions["registry"].content)
    proposed = reviewer.post(
        f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "approved", "audit_job_ids": jobs} | decision
    )
    assert proposed.status_code in (200, 201), proposed.get_json()
    if proposed.get_json()["state"] == "proposed":
        assert api("reviewer2").post(f"/api/v1/decisions/{proposed.get_json()['id']}/countersign").status_code == 200
    return jobs


def start(api, filing_id: int, **body):
    return api("reviewer1").post(
        f"/api/v1/filings/{filing_id}/audits", json={"dataset": DATASET, "replicates": 20} | body
    )


def run_cli_pending(app, monkeypatch) -> str:
    monkeypatch.setenv("REGISTRY_INSTANCE", app.config["INSTANCE_PATH"])
    monkeypatch.setenv("REGISTRY_LOG_SIGNING_KEY_FILE", app.config["LOG_SIGNING_KEY_FILE"])
    monkeypatch.setenv("DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("REGISTRY_SECRET_KEY", "test-secret-key")
    result = CliRunner().invoke(main, ["audits", "run-pending"])
    assert result.exit_code == 0, result.output
    return result.output


def test_reviewer_audits_a_real_model_and_the_report_measures_what_sklearn_measures(
    app, api, documents, credit_model, monkeypatch
):
    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    reviewer = api("reviewer1")

    answer = start(api, filing_id, sensitive_attributes=["sex", "age_band"], seed=7)
    assert answer.status_code == 202, answer.get_json()
    job = answer.get_json()
    assert job["state"] == "queued" and job["progress"] == 0.0 and job["tier"] in ("I", "II", "III", "IV")
    assert answer.headers["Location"] == f"/api/v1/audits/{job['id']}"
    assert reviewer.get(f"/api/v1/audits/{job['id']}/report").status_code == 409

    output = run_cli_pending(app, monkeypatch)
    assert "Ran 1 audit job(s)." in output

    done = reviewer.get(f"/api/v1/audits/{job['id']}").get_json()
    assert done["state"] == "done" and done["progress"] == 1.0 and done["error"] is None
    assert done["verdict"] in ("meets", "does_not_meet") and done["attempts"] == 1
    report = reviewer.get(f"/api/v1/audits/{job['id']}/report").get_json()
    assert report["overall"]["accuracy"] == pytest.approx(credit_model["accuracy"], abs=1e-12)
    assert report["dataset"]["name"] == DATASET and report["filing_id"] == filing_id
    assert report["sensitive_attributes"] == ["sex", "age_band"]
    assert report["verdict"] == done["verdict"] and report["provenance"]["seed"] == 7
    assert report["claims"] is not None  # the city's test report was compared

    listed = reviewer.get(f"/api/v1/filings/{filing_id}/audits").get_json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_the_job_goes_queued_running_done(app, engine, api, documents, credit_model):
    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    job_id = start(api, filing_id).get_json()["id"]
    content = app.extensions["registry"].content
    with Session(engine, expire_on_commit=False) as s:
        claimed = service.claim_next(session=s, worker="w1", lease_seconds=60)
        s.commit()
    assert claimed.id == job_id
    seen = api("reviewer1").get(f"/api/v1/audits/{job_id}").get_json()
    assert seen["state"] == "running" and seen["attempts"] == 1
    finished = service.run_job(engine=engine, content=content, job_id=job_id, worker="w1")
    assert finished.state == "done" and finished.progress == 1.0 and finished.finished_at is not None
    assert content.exists(finished.report_sha256)


def test_a_model_that_does_not_fit_fails_the_job_with_its_error_and_is_not_retried(app, engine, api, filing_in):
    filing_id = filing_in("submitted")  # the demo's 4-input model: German credit's columns do not fit it
    job_id = start(api, filing_id).get_json()["id"]
    content = app.extensions["registry"].content
    assert run_pending(engine=engine, content=content) == 1
    failed = api("reviewer1").get(f"/api/v1/audits/{job_id}").get_json()
    assert failed["state"] == "failed" and failed["attempts"] == 1
    assert failed["error"] and "input" in failed["error"].lower()
    assert run_pending(engine=engine, content=content) == 0  # not queued again
    assert api("reviewer1").get(f"/api/v1/audits/{job_id}/report").status_code == 409


def test_an_unexpected_error_puts_the_job_back_in_the_queue_until_max_attempts(
    app, engine, api, filing_in, monkeypatch
):
    filing_id = filing_in("submitted")
    job_id = start(api, filing_id).get_json()["id"]
    content = app.extensions["registry"].content

    def broken(*_a, **_k):
        raise OSError("disk went away")

    monkeypatch.setattr(service.audit_engine, "run_audit", broken)
    for attempt in (1, 2):
        with Session(engine, expire_on_commit=False) as s:
            service.claim_next(session=s, worker="w", lease_seconds=60)
            s.commit()
        job = service.run_job(engine=engine, content=content, job_id=job_id, worker="w")
        assert (job.state, job.attempts) == ("queued", attempt)
        assert "disk went away" in job.error
    assert run_pending(engine=engine, content=content) == 1
    job = api("reviewer1").get(f"/api/v1/audits/{job_id}").get_json()
    assert job["state"] == "failed" and job["attempts"] == 3 and "disk went away" in job["error"]


def test_a_job_whose_lease_lapsed_is_claimed_again_and_fails_after_max_attempts(engine, api, filing_in):
    job_id = start(api, filing_in("submitted")).get_json()["id"]

    def lapse():
        with Session(engine, expire_on_commit=False) as s:
            s.execute(
                sa.update(AuditJob).where(AuditJob.id == job_id).values(lease_until=utcnow() - timedelta(seconds=1))
            )
            s.commit()

    with Session(engine, expire_on_commit=False) as s:
        assert service.claim_next(session=s, worker="dead-worker", lease_seconds=60).id == job_id
        s.commit()
    with Session(engine, expire_on_commit=False) as s:  # its lease still holds: nobody else takes it
        assert service.claim_next(session=s, worker="other", lease_seconds=60) is None
    lapse()
    with Session(engine, expire_on_commit=False) as s:
        again = service.claim_next(session=s, worker="other", lease_seconds=60)
        s.commit()
        assert (again.id, again.worker, again.attempts) == (job_id, "other", 2)
    lapse()
    with Session(engine, expire_on_commit=False) as s:
        assert service.claim_next(session=s, worker="third", lease_seconds=60).attempts == 3
        s.commit()
    lapse()
    with Session(engine, expire_on_commit=False) as s:
        assert service.claim_next(session=s, worker="fourth", lease_seconds=60) is None
        s.commit()
    job = api("reviewer1").get(f"/api/v1/audits/{job_id}").get_json()
    assert job["state"] == "failed" and "interrupted 3 times" in job["error"]
    inbox = api("reviewer1").get("/api/v1/notifications").get_json()["items"]
    assert [n["kind"] for n in inbox if n["link"] == f"/audits/{job_id}"] == ["audit_failed"]  # its requester hears


def test_two_workers_never_claim_the_same_job(engine, api, filing_in):
    filing_id = filing_in("submitted")
    job_ids = {start(api, filing_id).get_json()["id"] for _ in range(6)}
    claimed: list[int] = []
    barrier = threading.Barrier(3)

    def claim_all(name: str) -> None:
        barrier.wait()
        while True:
            with Session(engine, expire_on_commit=False) as s:
                job = service.claim_next(session=s, worker=name, lease_seconds=60)
                s.commit()
            if job is None:
                return
            claimed.append(job.id)

    threads = [threading.Thread(target=claim_all, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(job_ids)  # each exactly once


def test_a_city_team_cannot_start_an_audit_but_reads_its_own_report_and_another_city_gets_404(
    app, engine, api, documents, credit_model
):
    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    refused = api("zhengzhou").post(f"/api/v1/filings/{filing_id}/audits", json={"dataset": DATASET})
    assert refused.status_code == 403
    job_id = start(api, filing_id).get_json()["id"]
    run_pending(engine=engine, content=app.extensions["registry"].content)

    own = api("zhengzhou")
    assert own.get(f"/api/v1/audits/{job_id}").get_json()["state"] == "done"
    assert own.get(f"/api/v1/audits/{job_id}/report").get_json()["dataset"]["name"] == DATASET
    assert own.get("/api/v1/reference-datasets").status_code == 403  # the library is the province's

    other = api("luoyang")
    assert other.get(f"/api/v1/audits/{job_id}").status_code == 404
    assert other.get(f"/api/v1/audits/{job_id}/report").status_code == 404
    assert other.get(f"/api/v1/filings/{filing_id}/audits").status_code == 404


def test_bad_requests_name_the_field(api, filing_in):
    filing_id = filing_in("submitted")
    unknown = start(api, filing_id, dataset="my-own-data")
    assert unknown.status_code == 422
    assert unknown.get_json()["errors"][0]["pointer"] == "/dataset"
    bad = start(api, filing_id, sensitive_attributes=["sex", "religion"])
    assert bad.status_code == 422
    assert [e["pointer"] for e in bad.get_json()["errors"]] == ["/sensitive_attributes/1"]
    draft = start(api, filing_in("draft"))
    assert draft.status_code == 404  # a reviewer does not see drafts


def test_reference_datasets_list_names_and_attributes_never_rows(api):
    items = api("reviewer1").get("/api/v1/reference-datasets").get_json()["items"]
    credit = next(d for d in items if d["name"] == DATASET)
    assert credit["rows"] == 1000 and "sex" in credit["sensitive_attributes"]
    assert set(credit) == {"name", "description", "rows", "sensitive_attributes", "default_sensitive"}


def test_idempotency_key_queues_one_audit(api, filing_in):
    filing_id = filing_in("submitted")
    reviewer = api("reviewer1")
    headers = {"Idempotency-Key": "audit-1"}
    first = reviewer.post(f"/api/v1/filings/{filing_id}/audits", json={"dataset": DATASET}, headers=headers)
    again = reviewer.post(f"/api/v1/filings/{filing_id}/audits", json={"dataset": DATASET}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.get_json()["id"] == again.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(reviewer.get(f"/api/v1/filings/{filing_id}/audits").get_json()["items"]) == 1
