"""The public decision log: every decision, suspension, revocation and expiry is an entry that anyone can verify.

Proofs are checked with an RFC 9162 verifier written here from the RFC (independent of registry.ledger), and the
command-line verifier runs against the database and against a live server's public API.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session, select
from werkzeug.serving import make_server

from registry.cli import main
from registry.decision_log.models import LogEntry
from registry.decisions.models import Decision
from registry.filings.models import Filing
from schemas import validation
from tests.conftest import LOG_ORIGIN
from tests.test_decisions import _propose, low_risk  # noqa: F401 - a fixture

# --- an independent verifier (RFC 6962 hashing, RFC 9162 §2.1.3.2 inclusion, C2SP signed note) ---------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node(mth(leaves[:k]), mth(leaves[k:]))


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in proof:
        assert sn != 0
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0
    return r


def open_checkpoint(note_text: str, verifier_key: str) -> tuple[str, int, bytes]:
    """Check the C2SP signed note's Ed25519 signature by hand; return (origin, size, root)."""
    name, key_id_hex, key64 = verifier_key.strip().split("+", 2)
    raw = base64.b64decode(key64)
    assert raw[0] == 1 and len(raw) == 33  # algorithm byte 0x01: Ed25519
    assert hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() == key_id_hex
    text, _, signatures = note_text.partition("\n\n")
    text += "\n"
    lines = [line for line in signatures.split("\n") if line]
    mine = [line for line in lines if line.startswith(f"\u2014 {name} ")]
    assert len(mine) == 1, lines
    blob = base64.b64decode(mine[0].split(" ")[2])
    assert blob[:4].hex() == key_id_hex
    Ed25519PublicKey.from_public_bytes(raw[1:]).verify(blob[4:], text.encode())  # raises if forged
    origin, size, root64 = text.splitlines()[:3]
    return origin, int(size), base64.b64decode(root64)


# --- helpers -------------------------------------------------------------------------------------------------------


def _log(api) -> tuple[str, int, bytes, list[dict]]:
    public = api(None)
    key = public.get("/api/v1/log/public-key").get_data(as_text=True)
    origin, size, root = open_checkpoint(public.get("/api/v1/log/checkpoint").get_data(as_text=True), key)
    entries = public.get(f"/api/v1/log/entries?start=0&end={size}").get_json()
    return origin, size, root, entries


def _leaf(entry: dict) -> dict:
    return json.loads(base64.b64decode(entry["leaf"]))


def _approve_tier_ii(api, filing_in, document) -> int:
    filing_id = filing_in("under_review", document=document)
    assert _propose(api, filing_id).status_code == 201
    return filing_id


# --- tests ---------------------------------------------------------------------------------------------------------


def test_an_approval_becomes_a_signed_entry_with_the_decision_record_and_no_personal_data(
    api,
    filing_in,
    low_risk,  # noqa: F811
):
    filing_id = _approve_tier_ii(api, filing_in, low_risk)
    origin, size, root, entries = _log(api)
    assert origin == LOG_ORIGIN and size == 1 and len(entries) == 1
    leaf = base64.b64decode(entries[0]["leaf"])
    assert entries[0]["leaf_hash"] == leaf_hash(leaf).hex()
    assert mth([leaf]) == root
    record = json.loads(leaf)
    filing = api("zhengzhou").get(f"/api/v1/filings/{filing_id}").get_json()
    decision = api("reviewer1").get(f"/api/v1/filings/{filing_id}/decisions").get_json()["items"][0]
    assert record["event"] == "approved" and record["outcome"] == "approved"
    assert record["filing_number"] == filing["filing_number"]
    assert record["algorithm"]["name_zh"] == low_risk["algorithm"]["name_zh"]
    assert record["city"]["code"] == "410100" and record["decided_by"] == ["reviewer"]
    assert record["audit_report_sha256"] == sorted(decision["audit_report_sha256"])
    assert decision["log_entry"]["index"] == 0 and decision["log_entry"]["leaf_hash"] == entries[0]["leaf_hash"]
    assert api(None).get(decision["log_entry"]["proof_file"]).status_code == 200
    # RFC 8785: the exact bytes are the canonical form (sorted keys, no spaces), so anyone can recompute them.
    assert leaf == json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    for private in ("reviewer1", "reviewer2", "zhengzhou", "proposed_by", "countersigned_by", "note"):
        assert private not in leaf.decode()


def test_a_tier_iii_decision_is_logged_once_when_countersigned_with_both_roles(api, filing_in):
    filing_id = filing_in("under_review")
    decision = _propose(api, filing_id, outcome="rejected", reasons=["Fails the four-fifths rule"]).get_json()
    assert _log(api)[1] == 0  # a proposal is not a decision
    assert api("reviewer2").post(f"/api/v1/decisions/{decision['id']}/countersign").status_code == 200
    _origin, size, _root, entries = _log(api)
    assert size == 1
    record = _leaf(entries[0])
    assert record["event"] == "rejected" and record["filing_number"] is None
    assert record["reasons"] == ["Fails the four-fifths rule"] and record["decided_by"] == ["reviewer", "reviewer"]


def test_suspension_revocation_and_expiry_are_entries_and_every_proof_verifies(app, api, filing_in, low_risk):  # noqa: F811
    first = _approve_tier_ii(api, filing_in, low_risk)
    second = _approve_tier_ii(api, filing_in, low_risk)
    reviewer = api("reviewer1")
    assert reviewer.post(f"/api/v1/filings/{first}/actions/suspend", json={"reason": "Drift"}).status_code == 200
    assert reviewer.post(f"/api/v1/filings/{first}/actions/revoke", json={"reason": "Unfixed"}).status_code == 200
    from audits import policy as policies
    from registry.audit_jobs import schedule

    engine = app.extensions["registry"].engine
    with Session(engine) as session:
        due = session.get(Filing, second).next_audit_due
    grace = policies.load().tier("II").get("grace_period_days", 30)
    with Session(engine, expire_on_commit=False) as session:
        expired = schedule.expire_overdue(session=session, now=due + timedelta(days=grace + 1), policy=policies.load())
        session.commit()
    assert [e.filing.id for e in expired] == [second]

    _origin, size, root, entries = _log(api)
    assert [_leaf(e)["event"] for e in entries] == ["approved", "approved", "suspended", "revoked", "expired"]
    for entry in entries:  # every record is valid against the published schema
        assert validation.validate("decision-log-entry", _leaf(entry)) == []
    assert _leaf(entries[2])["reasons"] == ["Drift"] and _leaf(entries[4])["decided_by"] == ["system"]
    leaves = [base64.b64decode(e["leaf"]) for e in entries]
    assert mth(leaves) == root
    public = api(None)
    for index in range(size):
        for tree_size in range(index + 1, size + 1):
            proof = public.get(f"/api/v1/log/proof/inclusion?index={index}&tree_size={tree_size}").get_json()
            assert proof["index"] == index and proof["tree_size"] == tree_size
            hashes = [bytes.fromhex(h) for h in proof["hashes"]]
            assert root_from_inclusion(index, tree_size, leaves[index], hashes) == mth(leaves[:tree_size])


def test_consistency_proofs_show_the_log_only_grew(api, filing_in, low_risk):  # noqa: F811
    from registry.ledger import merkle

    for _ in range(3):
        _approve_tier_ii(api, filing_in, low_risk)
    _origin, size, root, entries = _log(api)
    leaves = [base64.b64decode(e["leaf"]) for e in entries]
    for first in range(1, size + 1):
        proof = api(None).get(f"/api/v1/log/proof/consistency?first={first}&second={size}").get_json()
        hashes = [bytes.fromhex(h) for h in proof["hashes"]]
        merkle.verify_consistency(first, size, hashes, mth(leaves[:first]), root)  # the vectors test this verifier


def test_the_proof_file_of_an_entry_verifies_against_the_signed_checkpoint(api, filing_in, low_risk):  # noqa: F811
    from registry.ledger import merkle, proof_file

    _approve_tier_ii(api, filing_in, low_risk)
    _approve_tier_ii(api, filing_in, low_risk)
    key = api(None).get("/api/v1/log/public-key").get_data(as_text=True).strip()
    _origin, _size, _root, entries = _log(api)
    response = api(None).get("/api/v1/log/entries/0/proof")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    verified = proof_file.verify_proof_file(response.data, base64.b64decode(entries[0]["leaf"]), [key])
    assert verified.index == 0 and verified.checkpoint.size == 2
    with pytest.raises(merkle.ProofError):  # another entry's leaf does not fit this proof
        proof_file.verify_proof_file(response.data, base64.b64decode(entries[1]["leaf"]), [key])


@pytest.mark.parametrize(
    ("url", "pointer"),
    [
        ("/api/v1/log/proof/inclusion?tree_size=1", "/query/index"),
        ("/api/v1/log/proof/inclusion?index=5&tree_size=1", "/query/index"),
        ("/api/v1/log/proof/inclusion?index=0&tree_size=9", "/query/tree_size"),
        ("/api/v1/log/proof/inclusion?index=x", "/query/index"),
        ("/api/v1/log/proof/consistency?first=2&second=1", "/query/first"),
        ("/api/v1/log/entries?start=0&end=99", "/query/end"),
    ],
)
def test_bad_proof_requests_are_422_naming_the_parameter(api, filing_in, low_risk, url, pointer):  # noqa: F811
    _approve_tier_ii(api, filing_in, low_risk)
    response = api(None).get(url)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert response.get_json()["errors"][0]["pointer"] == pointer


@pytest.mark.parametrize("table", ["log_entry", "log_node", "log_checkpoint"])
@pytest.mark.parametrize("statement", ["UPDATE {t} SET {c} = {c}", "DELETE FROM {t}"])
def test_the_log_tables_refuse_update_and_delete_in_the_database(
    engine,
    api,
    filing_in,
    low_risk,  # noqa: F811
    table,
    statement,
):
    _approve_tier_ii(api, filing_in, low_risk)
    column = {"log_entry": "kind", "log_node": "hash", "log_checkpoint": "note"}[table]
    with pytest.raises(DatabaseError, match="append-only"):
        with engine.begin() as connection:
            connection.execute(sa.text(statement.format(t=table, c=column)))
    assert _log(api)[1] == 1


def test_a_decision_that_cannot_be_logged_does_not_take_effect(app, api, filing_in, monkeypatch):
    from registry.decision_log import keys

    filing_id = filing_in("under_review")
    decision = _propose(api, filing_id).get_json()

    def no_key():
        raise keys.LogKeyError("the signing key is unreadable")

    keys.configure(app.extensions["registry"].engine, no_key)
    response = api("reviewer2").post(f"/api/v1/decisions/{decision['id']}/countersign")
    assert response.status_code == 503
    assert response.get_json()["type"].endswith("log_key_unavailable")
    with Session(app.extensions["registry"].engine) as session:
        assert session.get(Decision, decision["id"]).state == "proposed"
        filing = session.get(Filing, filing_id)
        assert filing.state == "under_review" and filing.filing_number is None
        assert session.exec(select(LogEntry)).first() is None


def _cli(app, monkeypatch, *args):
    monkeypatch.setenv("REGISTRY_INSTANCE", app.config["INSTANCE_PATH"])
    monkeypatch.setenv("DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("REGISTRY_SECRET_KEY", "test-secret-key")
    monkeypatch.setenv("REGISTRY_LOG_SIGNING_KEY_FILE", app.config["LOG_SIGNING_KEY_FILE"])
    return CliRunner().invoke(main, ["log", *args])


def test_log_verify_passes_and_then_fails_when_a_decision_row_is_edited_behind_the_apps_back(
    app,
    engine,
    api,
    filing_in,
    monkeypatch,
):
    filing_id = filing_in("under_review")
    decision = _propose(api, filing_id, outcome="approved_with_conditions", conditions=["Quarterly report"]).get_json()
    assert api("reviewer2").post(f"/api/v1/decisions/{decision['id']}/countersign").status_code == 200
    ok = _cli(app, monkeypatch, "verify")
    assert ok.exit_code == 0, ok.output
    assert "The decision log verifies: 1 entries" in ok.output

    with engine.begin() as connection:  # someone with database access softens the conditions
        connection.execute(sa.text("UPDATE decision SET conditions = '[]'"))
    failed = _cli(app, monkeypatch, "verify")
    assert failed.exit_code == 1
    assert f"decision {decision['id']}" in failed.output and "conditions" in failed.output
    assert "did NOT verify" in failed.output


def test_log_verify_through_the_public_api_keeps_the_checkpoint_and_checks_consistency_next_time(
    app,
    api,
    filing_in,
    low_risk,  # noqa: F811
    monkeypatch,
    tmp_path,
):
    _approve_tier_ii(api, filing_in, low_risk)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    state = tmp_path / "seen.json"
    key = api(None).get("/api/v1/log/public-key").get_data(as_text=True).strip()
    try:
        first = CliRunner().invoke(main, ["log", "verify", "--url", url, "--key", key, "--state", str(state)])
        assert first.exit_code == 0, first.output
        assert json.loads(state.read_text())["tree_size"] == 1

        _approve_tier_ii(api, filing_in, low_risk)
        second = CliRunner().invoke(main, ["log", "verify", "--url", url, "--state", str(state)])
        assert second.exit_code == 0, second.output
        assert "consistent with the checkpoint of size 1" in second.output

        remembered = json.loads(state.read_text())
        remembered["root_hash"] = "00" * 32  # a verifier that saw another tree of that size: a fork
        remembered["tree_size"] = 1
        state.write_text(json.dumps(remembered))
        forked = CliRunner().invoke(main, ["log", "verify", "--url", url, "--state", str(state)])
        assert forked.exit_code == 1
        assert "not consistent with the checkpoint of size 1" in forked.output

        wrong_key = CliRunner().invoke(
            main, ["log", "verify", "--url", url, "--key", key.replace(key.split("+")[0], "other.example/log")]
        )
        assert wrong_key.exit_code == 1
    finally:
        server.shutdown()
        thread.join(5)


def test_the_decision_letter_names_its_log_entry_and_how_to_check_it(api, browser_as, filing_in, low_risk):  # noqa: F811
    filing_id = _approve_tier_ii(api, filing_in, low_risk)
    decision = api("reviewer1").get(f"/api/v1/filings/{filing_id}/decisions").get_json()["items"][0]
    html = browser_as("zhengzhou").get(f"/decisions/{decision['id']}/letter").get_data(as_text=True)
    assert decision["log_entry"]["leaf_hash"] in html
    assert "/api/v1/log/entries/0/proof" in html and "/api/v1/log/public-key" in html


def test_decisions_taken_at_the_same_time_get_distinct_consecutive_entries_and_the_log_verifies(
    app,
    engine,
    api,
    filing_in,
    low_risk,  # noqa: F811
):
    from registry.decision_log import keys, service
    from registry.decision_log import verify as verifier

    filing_ids = [filing_in("under_review", document=low_risk) for _ in range(6)]
    clients = [api("reviewer1") for _ in filing_ids]
    barrier = threading.Barrier(len(filing_ids))
    statuses: list[int] = []

    def decide(client, filing_id):
        barrier.wait(10)
        statuses.append(client.post(f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "approved"}).status_code)

    threads = [threading.Thread(target=decide, args=pair) for pair in zip(clients, filing_ids, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [201] * len(filing_ids)
    with Session(engine) as session:
        entries = session.exec(select(LogEntry).order_by(LogEntry.index)).all()
        assert [e.index for e in entries] == list(range(len(filing_ids)))
        assert sorted(e.filing_id for e in entries) == sorted(filing_ids)
        report = verifier.verify(service.DatabaseSource(session, keys.for_engine(engine)))
        assert report.ok, report.text()
        assert service.records_that_disagree(session) == []
