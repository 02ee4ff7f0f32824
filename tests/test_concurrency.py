"""Two requests that change the same filing at once: one wins, the other gets a 409 problem, never a 500."""

import pytest
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session

from registry.filings import service
from registry.filings.models import Filing


def test_a_lost_optimistic_lock_is_a_409_problem_and_nothing_is_half_written(app, api, filing_in, monkeypatch):
    filing_id = filing_in("draft")
    before = api("zhengzhou").get(f"/api/v1/filings/{filing_id}/history").get_json()["items"]

    def collide(**_kwargs):
        raise StaleDataError("UPDATE statement on table 'filing' expected to update 1 row(s); 0 were matched.")

    monkeypatch.setattr(service, "apply_transition", collide)
    response = api("zhengzhou").post(f"/api/v1/filings/{filing_id}/submit")
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"].endswith("concurrent_change")
    monkeypatch.undo()
    after = api("zhengzhou").get(f"/api/v1/filings/{filing_id}")
    assert after.get_json()["state"] == "draft"
    assert api("zhengzhou").get(f"/api/v1/filings/{filing_id}/history").get_json()["items"] == before


def test_the_version_column_really_detects_a_concurrent_change(app, filing_in):
    """Two sessions load the same filing; the second to commit loses (SQLAlchemy's version_id_col)."""
    filing_id = filing_in("draft")
    engine = app.extensions["registry"].engine
    with Session(engine) as first, Session(engine) as second:
        a, b = first.get(Filing, filing_id), second.get(Filing, filing_id)
        a.algorithm_version = "first"
        first.commit()
        b.algorithm_version = "second"
        with pytest.raises(StaleDataError):
            second.commit()
