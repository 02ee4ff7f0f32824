"""The `registry` command: db upgrade, users create, tokens create, demo load, serve's migration policy."""

import subprocess
import sys

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from registry import cli, create_app, migrations
from registry.accounts import service as accounts
from registry.accounts.models import User
from registry.filings.lifecycle import State
from registry.filings.models import Filing


@pytest.fixture
def instance(tmp_path, monkeypatch, log_key_file):
    monkeypatch.setenv("REGISTRY_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.setenv("REGISTRY_LOG_SIGNING_KEY_FILE", log_key_file)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return tmp_path / "instance"


def _engine(instance):
    return create_app({"INSTANCE_PATH": str(instance)}).extensions["registry"].engine


def test_db_upgrade_creates_the_schema_in_a_new_instance(instance):
    result = CliRunner().invoke(cli.main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (instance / "registry.sqlite3").exists()
    assert migrations.pending(_engine(instance)) == []


def test_users_create_and_tokens_create_print_a_working_token_as_the_last_word(instance):
    runner = CliRunner()
    assert runner.invoke(cli.main, ["db", "upgrade"]).exit_code == 0
    from registry.cities import service as cities

    with Session(_engine(instance)) as s:
        cities.add_city(session=s, code="410100", name_zh="郑州市", name_en="Zhengzhou", province_code="410000")
        s.commit()
    created = runner.invoke(
        cli.main,
        ["users", "create", "zz", "--role", "city", "--city", "410100", "--password-stdin"],
        input="a-long-password\n",
    )
    assert created.exit_code == 0, created.output
    issued = runner.invoke(cli.main, ["tokens", "create", "--user", "zz"])
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip().splitlines()[-1].split()[-1]
    app = create_app({"INSTANCE_PATH": str(instance)})
    me = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.get_json()["username"] == "zz"


def test_users_create_reports_a_rule_as_one_clear_error(instance):
    runner = CliRunner()
    runner.invoke(cli.main, ["db", "upgrade"])
    result = runner.invoke(
        cli.main, ["users", "create", "x", "--role", "city", "--password-stdin"], input="a-long-password\n"
    )
    assert result.exit_code != 0
    assert "city code" in result.output


def test_demo_load_seeds_accounts_and_filings_in_every_state_once(instance):
    runner = CliRunner()
    first = runner.invoke(cli.main, ["demo", "load"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli.main, ["demo", "load"])
    assert "already loaded" in second.output
    with Session(_engine(instance)) as s:
        names = set(s.exec(select(User.username)))
        assert {"zhengzhou", "luoyang", "reviewer1", "reviewer2", "admin"} <= names
        assert accounts.authenticate(session=s, username="reviewer1", password="demo-password") is not None
        states = set(s.exec(select(Filing.state)))
        assert states == {state.value for state in State}
        numbers = [n for n in s.exec(select(Filing.filing_number)) if n]
        assert len(numbers) == len(set(numbers)) > 0


def test_without_demo_there_are_no_default_accounts(instance):
    CliRunner().invoke(cli.main, ["db", "upgrade"])
    with Session(_engine(instance)) as s:
        assert s.exec(select(User)).all() == []


def test_serve_refuses_to_start_on_an_unmigrated_database_when_told_to_check(instance, monkeypatch):
    monkeypatch.setenv("REGISTRY_MIGRATIONS_ON_START", "check")
    result = CliRunner().invoke(cli.main, ["serve", "--port", "0"])
    assert result.exit_code != 0
    assert "registry db upgrade" in result.output


def test_the_command_line_lists_its_commands():
    result = subprocess.run(
        [sys.executable, "-m", "registry.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for command in ("serve", "db", "users", "tokens", "demo"):
        assert command in result.stdout


def test_the_demo_has_a_filing_a_reviewer_can_really_audit(instance):
    """The reference-data pilot: its model reads German credit's columns, so its audit completes with a report."""
    from registry.audit_jobs import service as audit_jobs
    from registry.audit_jobs.models import AuditJob

    runner = CliRunner()
    assert runner.invoke(cli.main, ["demo", "load"]).exit_code == 0
    with Session(_engine(instance)) as s:
        pilot = s.exec(select(Filing).where(Filing.algorithm_version == "0.9.0")).one()
        assert pilot.state == "under_review"
        reviewer = accounts.actor_for(accounts.get_user_by_name(session=s, username="reviewer1"))
        job = audit_jobs.start_audit(
            session=s, actor=reviewer, filing_id=pilot.id, dataset="german-credit", replicates=50
        )
        s.commit()
        job_id = job.id
    ran = runner.invoke(cli.main, ["audits", "run-pending"])
    assert ran.exit_code == 0, ran.output
    with Session(_engine(instance)) as s:
        job = s.get(AuditJob, job_id)
        assert job.state == "done", job.error
        assert job.verdict in {"meets", "does_not_meet"} and job.report_sha256
