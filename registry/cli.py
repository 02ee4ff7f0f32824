"""The `registry` command: serve, worker, audits run-pending, reaudit due, db, users, tokens, demo load, library."""

from __future__ import annotations

import getpass
import sys

import click

from registry import create_app
from registry.db import transaction


def _app(demo: bool = False):
    """The app for one command; its database connections are closed when the command ends."""
    app = create_app({"DEMO": True} if demo else None)
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(app.extensions["registry"].engine.dispose)
    return app


def _check_broker(app) -> None:
    """With a broker configured, Celery must be installed (it is an extra)."""
    if app.config.get("BROKER_URL"):
        try:
            import celery  # noqa: F401
        except ImportError:
            from registry.audit_jobs.worker import CELERY_MISSING

            raise click.ClickException(CELERY_MISSING) from None


def _build_library_index(engine) -> None:
    """After an upgrade: fill the public library's search index if it is new (migration 0008 cannot)."""
    from registry.library import search

    with transaction(engine) as session:
        built = search.ensure_built(session)
    if built:
        click.echo(f"Built the library's search index: {built} public filing(s).")


def _check_log_key(app) -> None:
    """Decisions are logged and signed: refuse to start without the key rather than fail on the first decision."""
    from registry.decision_log import keys

    try:
        made = keys.load(app.config)
    except keys.LogKeyError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Decision log {made.origin}, verifier key {made.verifier_key}")


@click.group(help="The algorithm filing and audit registry (人工智能审批算法备案库).")
def main() -> None:
    pass


@main.command()
@click.option(
    "--demo", is_flag=True, help="Seed the Henan demo province and its demo accounts (password: demo-password)."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(demo: bool, host: str, port: int) -> None:
    """Run the registry with its built-in server (use gunicorn at scale; see the README)."""
    from registry import demo as demo_data
    from registry import migrations

    app = _app(demo)
    _check_broker(app)
    _check_log_key(app)
    engine = app.extensions["registry"].engine
    if app.config["MIGRATIONS_ON_START"] == "upgrade":
        migrations.upgrade(engine)
        _build_library_index(engine)
    else:
        pending = migrations.pending(engine)
        if pending:
            raise click.ClickException(
                f"The database needs {len(pending)} migration(s); run `registry db upgrade` first."
            )
    if demo:
        with transaction(engine) as session:
            created = demo_data.load(session=session, content=app.extensions["registry"].content)
        click.echo(
            f"Demo data: {created}. Log in as zhengzhou, luoyang, reviewer1, reviewer2 or admin with 'demo-password'."
        )
    from werkzeug.serving import run_simple

    from registry.audit_jobs.worker import InProcessWorker

    if app.config.get("BROKER_URL"):
        worker = None  # Celery workers run the audits (`celery -A registry.jobs worker`)
        click.echo("Audit jobs go to the Celery workers of REGISTRY_BROKER_URL.")
    else:
        worker = InProcessWorker(app)  # audit jobs run in this process; queued and interrupted ones resume
        worker.start()
    mail = _mailer_thread(app)
    click.echo(f"Serving on http://{host}:{port}/  (Ctrl+C to stop)")
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        if worker is not None:
            worker.stop(timeout=5)
        if mail is not None:
            mail.stop(timeout=5)


def _mailer_thread(app):
    """When SMTP is configured, a background thread that sends the e-mail outbox (None otherwise)."""
    from registry.notifications.mailer import MailerThread, MailSettings

    settings = MailSettings.from_config(app.config)
    if settings is None:
        return None
    thread = MailerThread(app.extensions["registry"].engine, settings)
    thread.start()
    click.echo(f"E-mail notifications go through {settings.host}:{settings.port}.")
    return thread


@main.command("worker")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--poll-seconds", default=1.0, show_default=True, type=float)
def worker_command(threads: int, poll_seconds: float) -> None:
    """Run audit jobs in the foreground (a pool of THREADS) until Ctrl+C; with REGISTRY_BROKER_URL set, a Celery
    worker with THREADS processes instead (the same as `celery -A registry.jobs worker -c THREADS`)."""
    import time

    from registry.audit_jobs.worker import InProcessWorker

    app = _app()
    _check_broker(app)
    if app.config.get("BROKER_URL"):
        from registry.jobs import make_celery

        app.extensions["registry"].engine.dispose()
        make_celery(app.config).worker_main(["worker", "--loglevel=INFO", f"--concurrency={threads}"])
        return
    pool = InProcessWorker(app, threads=threads, poll_seconds=poll_seconds)
    pool.start()
    click.echo(f"Running audit jobs with {threads} thread(s)  (Ctrl+C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("Stopping after the current jobs…")
    finally:
        pool.stop()
        app.extensions["registry"].engine.dispose()


@main.group()
def audits() -> None:
    """Audit jobs."""


@audits.command("run-pending")
def audits_run_pending() -> None:
    """Run every queued audit job (and any whose worker died) in this process, then exit (cron-friendly)."""
    from registry.audit_jobs.worker import run_pending

    app = _app()
    state = app.extensions["registry"]
    try:
        count = run_pending(engine=state.engine, content=state.content)
    finally:
        state.engine.dispose()
    click.echo(f"Ran {count} audit job(s).")


@main.group()
def reaudit() -> None:
    """Periodic re-audits."""


@reaudit.command("due")
@click.option("--now", "now_text", metavar="ISO8601", help="Act as if it were this time (UTC when no offset).")
def reaudit_due(now_text: str | None) -> None:
    """Expire filings whose re-audit is overdue beyond the grace period, queue every re-audit that is due, then
    exit (cron-friendly; Celery beat at scale). Prints one line per action and a summary."""
    from datetime import UTC, datetime

    from registry.audit_jobs.periodic import reaudit_due as run_due
    from registry.audit_jobs.worker import queue_for
    from registry.db import utcnow

    if now_text:
        try:
            now = datetime.fromisoformat(now_text)
        except ValueError:
            raise click.BadParameter(f"{now_text!r} is not an ISO 8601 time.", param_hint="--now") from None
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    else:
        now = utcnow()
    app = _app()
    engine = app.extensions["registry"].engine
    try:
        run = run_due(engine, now=now)
        queue = queue_for(app)
        for job_id in run.job_ids:
            queue.enqueue(job_id)  # the rows are committed: a queue only wakes the workers
    finally:
        engine.dispose()
    for line in run.lines:
        click.echo(line)
    click.echo(run.summary)


@main.group()
def mail() -> None:
    """E-mail notifications."""


@mail.command("send-pending")
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1, 100_000))
def mail_send_pending(limit: int) -> None:
    """Send the e-mails waiting in the outbox through the configured SMTP server, then exit (cron-friendly).
    A failed e-mail keeps its error and is tried again on a later run, after a pause."""
    from registry.notifications.mailer import MailSettings, deliver_pending

    app = _app()
    settings = MailSettings.from_config(app.config)
    if settings is None:
        raise click.ClickException("No SMTP server is configured; set REGISTRY_SMTP_HOST (see the README).")
    engine = app.extensions["registry"].engine
    try:
        done = deliver_pending(engine, settings, limit=limit)
    finally:
        engine.dispose()
    click.echo(f"Sent {done.sent} e-mail(s); {done.retrying} to try again later, {done.failed} given up.")


@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from registry import migrations

    app = _app()
    migrations.upgrade(app.extensions["registry"].engine, revision)
    if revision == "head":
        _build_library_index(app.extensions["registry"].engine)
    click.echo(f"Database at {migrations.current(app.extensions['registry'].engine)}")


@db.command("check")
def db_check() -> None:
    """Fail if the models and the migrations disagree (alembic check)."""
    from registry import migrations

    app = _app()
    migrations.check(app.extensions["registry"].engine)
    click.echo("Models and migrations agree.")


@main.group()
def users() -> None:
    """Accounts."""


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["city", "reviewer", "admin"]), required=True)
@click.option("--city", "city_code", help="GB/T 2260 code of the city (city teams only)")
@click.option("--display-name")
@click.option("--email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of prompting.")
def users_create(username, role, city_code, display_name, email, password_stdin) -> None:
    """Create an account. The password is prompted for (or read from stdin), never taken on the command line."""
    from registry.accounts import service as accounts
    from registry.errors import DomainError

    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("Password: ")
    app = _app()
    try:
        with transaction(app.extensions["registry"].engine) as session:
            user = accounts.create_user(
                session=session,
                username=username,
                password=password,
                role=role,
                city_code=city_code,
                display_name=display_name,
                email=email,
            )
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Created {user.role} account {user.username}.")


@users.command("unlock")
@click.argument("username")
def users_unlock(username: str) -> None:
    """Lift the lock that failed logins put on USERNAME and clear its failures (recorded in the login trail)."""
    from registry.accounts import login, trail
    from registry.errors import DomainError

    app = _app()
    try:
        with transaction(app.extensions["registry"].engine) as session:
            was_locked = login.unlock(
                session=session, username=username, client=trail.Client(user_agent="registry users unlock")
            )
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Unlocked {username}." if was_locked else f"{username} was not locked; its failed logins are cleared.")


@main.group()
def tokens() -> None:
    """API tokens."""


@tokens.command("create")
@click.option("--user", "username", required=True)
@click.option("--label", default="")
def tokens_create(username: str, label: str) -> None:
    """Make an API token for USER; the token is printed once, as the last word of the last line."""
    from registry.accounts import service as accounts
    from registry.errors import DomainError

    app = _app()
    try:
        with transaction(app.extensions["registry"].engine) as session:
            user = accounts.get_user_by_name(session=session, username=username)
            token, record = accounts.create_token(session=session, user=user, label=label)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Token {record.prefix}… for {username} (keep it secret; it is not shown again):")
    click.echo(token)


@main.group()
def demo() -> None:
    """Demo data."""


@demo.command("load")
def demo_load() -> None:
    """Seed the Henan demo province, its accounts and filings in every state (idempotent)."""
    from registry import demo as demo_data
    from registry import migrations

    app = _app(demo=True)
    migrations.upgrade(app.extensions["registry"].engine)
    with transaction(app.extensions["registry"].engine) as session:
        created = demo_data.load(session=session, content=app.extensions["registry"].content)
    click.echo(f"Demo data: {created}")


@main.group("library")
def library_group() -> None:
    """The public library."""


@library_group.command("reindex")
def library_reindex() -> None:
    """Rebuild the library's search index from the filings (after an upgrade, or to repair it), in one transaction."""
    from registry.library import search

    app = _app()
    engine = app.extensions["registry"].engine
    try:
        with transaction(engine) as session:
            count = search.reindex(session)
    finally:
        engine.dispose()
    click.echo(f"Indexed {count} public filing(s).")


@main.group("log")
def log_group() -> None:
    """The public decision log: keys and verification."""


@log_group.command("keygen")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Where to write the secret key.")
@click.option("--origin", default=None, help="The log's origin (the key's name); default from the province code.")
def log_keygen(out: str, origin: str | None) -> None:
    """Make the log's Ed25519 signing key (mode 0600; never overwrites). Point REGISTRY_LOG_SIGNING_KEY_FILE at it
    and keep a copy with the backups: without it no new checkpoint can be signed."""
    from pathlib import Path

    from registry import config as config_module
    from registry.decision_log import keys

    settings = dict(config_module.DEFAULTS) | config_module.from_environment()
    name = origin or settings.get("LOG_ORIGIN") or keys.default_origin(str(settings["PROVINCE_CODE"]))
    try:
        made = keys.write_new_key(Path(out), name)
    except FileExistsError:
        raise click.ClickException(f"{out} exists; a log key is never overwritten.") from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote the signing key of {made.origin} to {out}.")
    click.echo(f"Verifier key (public): {made.verifier_key}")


@log_group.command("verify")
@click.option("--url", default=None, help="A registry's base URL: verify through its public API only.")
@click.option("--key", "pinned", default=None, help="The verifier key to trust (name+keyid+base64key).")
@click.option(
    "--state",
    "state_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Where the last "
    "verified checkpoint is kept (default: per URL in the user's app folder; locally in the instance).",
)
def log_verify(url: str | None, pinned: str | None, state_path: str | None) -> None:
    """Rebuild the tree from every entry and check the signed checkpoint, the inclusion proofs and consistency
    with the checkpoint seen last time; without --url also that each entry still matches the database's rows.
    Prints each check; exits 1 if any fails."""
    import hashlib
    from pathlib import Path

    from registry.decision_log import verify as verifier

    if url:
        source = verifier.HttpSource(url)
        default = (
            Path(click.get_app_dir("algorithm-registry")) / f"log-{hashlib.sha256(url.encode()).hexdigest()[:16]}.json"
        )
        path = Path(state_path) if state_path else default
        state = verifier.load_state(path)
        try:
            report = verifier.verify(source, pinned_key=pinned, state=state)
        except (OSError, LookupError, ValueError) as exc:
            raise click.ClickException(f"Could not read the log at {url}: {exc}") from None
        extra: list[str] = []
    else:
        from sqlmodel import Session

        from registry.decision_log import keys
        from registry.decision_log import service as log

        app = _app()
        path = Path(state_path) if state_path else Path(app.config["INSTANCE_PATH"]) / "log-verify-state.json"
        state = verifier.load_state(path)
        try:
            log_keys = keys.load(app.config)
        except keys.LogKeyError as exc:
            raise click.ClickException(exc.message) from None
        engine = app.extensions["registry"].engine
        try:
            with Session(engine) as session:
                report = verifier.verify(log.DatabaseSource(session, log_keys), pinned_key=pinned, state=state)
                extra = log.records_that_disagree(session)
        finally:
            engine.dispose()
        if extra:
            for problem in extra:
                report.bad(problem)
        else:
            report.good("every entry matches the decision rows, and every decision taken is logged")
    click.echo(report.text())
    if not report.ok:
        click.echo("The decision log did NOT verify.", err=True)
        sys.exit(1)
    verifier.save_state(path, key=report.key, origin=report.origin, tree_size=report.tree_size, root=report.root)
    click.echo(f"The decision log verifies: {report.tree_size} entries. Kept this checkpoint in {path}.")


@main.command("backup")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--verify", "verify_only", is_flag=True, help="Only check the existing backup at PATH; change nothing.")
def backup_command(path: str, verify_only: bool) -> None:
    """Back up the database, the stored files, the keys and the decision log into one file PATH (.tar, or
    .tar.gz/.tar.xz to compress). The file is made with mode 0600: it holds secrets (the password hashes, the log's
    signing key, the session key). With --verify, check a backup instead: every member against its manifest and
    the decision log from the backup alone (exits 1 if anything fails)."""
    from pathlib import Path

    from registry import backup

    if verify_only:
        _check_backup(Path(path))
        return
    try:
        made = backup.create_backup(backup.Instance.from_environment(), Path(path))
    except backup.BackupError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(
        f"Backed up {made.rows} row(s) of {made.tables} table(s) at schema revision {made.revision}, "
        f"{made.files} stored file(s) ({made.file_bytes} bytes), the decision log ({made.log_size} entries) "
        f"and {len(made.keys)} key file(s) to {made.path}."
    )
    for warning in made.warnings:
        click.echo(f"Warning: {warning}.", err=True)
    click.echo("The file is readable by its owner only (0600): it holds secrets; keep it as safe as the keys.")


def _check_backup(path) -> None:
    from registry import backup

    try:
        checked = backup.check_backup(path)
    except backup.BackupError as exc:
        raise click.ClickException(exc.message) from None
    manifest = checked.manifest
    click.echo(
        f"✓ all {len(manifest['members'])} members match the manifest (made {manifest['created_at']} by registry "
        f"{manifest['app_version']}, schema revision {manifest['alembic_revision']}, "
        f"{sum(t['rows'] for t in manifest['database']['tables'])} rows, {manifest['files']['count']} files)"
    )
    click.echo(checked.log.text())
    if not checked.ok:
        click.echo("The backup's decision log did NOT verify.", err=True)
        sys.exit(1)
    click.echo(f"The backup checks out; its decision log verifies: {checked.log.tree_size} entries.")


@main.command("restore")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--check", "check_only", is_flag=True, help="Only check the backup (as `backup --verify`).")
def restore_command(path: str, check_only: bool) -> None:
    """Restore the backup PATH into this instance (REGISTRY_INSTANCE, DATABASE_URL, REGISTRY_LOG_SIGNING_KEY_FILE),
    whose database must be empty: a restore never mixes a backup with other data and never overwrites a key.
    The backup is checked first (nothing is written if any member differs from its manifest); then the files and
    the keys are copied, the schema is made at the backup's revision and every row inserted in one transaction,
    and the decision log is verified (exits 1 if it does not)."""
    from pathlib import Path

    from registry import backup

    if check_only:
        _check_backup(Path(path))
        return
    instance = backup.Instance.from_environment()
    try:
        done = backup.restore_backup(Path(path), instance)
    except backup.BackupError as exc:
        raise click.ClickException(exc.message) from None
    manifest = done.manifest
    click.echo(
        f"Restored {done.rows} row(s) at schema revision {manifest['alembic_revision']} (backup of "
        f"{manifest['created_at']}), {done.files_copied} stored file(s) copied ({done.files_present} already there), "
        f"key file(s) written: {', '.join(done.keys_written) or 'none'}."
    )
    for note in done.notes:
        click.echo(f"Note: {note}.")
    if done.pending_migrations:
        click.echo(f"The database needs {done.pending_migrations} migration(s) of this version: `registry db upgrade`.")
    click.echo(done.log.text())
    if not done.log.ok:
        click.echo("The restored decision log did NOT verify.", err=True)
        sys.exit(1)
    click.echo(f"The decision log verifies: {done.log.tree_size} entries.")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
