"""Configuration: defaults, then environment variables, then a test override.

Every setting can come from the environment (``REGISTRY_<NAME>``), so a deployment needs no file in the
repository; ``DATABASE_URL`` is read as well, as most platforms set it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

MIB = 1024 * 1024

DEFAULTS: dict[str, object] = {
    # Where the SQLite database, stored files and generated keys live.
    "INSTANCE_PATH": None,
    "DATABASE_URL": None,  # None: a SQLite file in the instance folder
    "SECRET_KEY": None,  # None: generated once into the instance folder (demo and development only)
    # "upgrade": `serve` applies pending migrations at start; "check": refuses to start until `registry db upgrade`.
    "MIGRATIONS_ON_START": "upgrade",
    "MAX_MODEL_BYTES": 200 * MIB,
    "MAX_DOCUMENT_BYTES": 2 * MIB,
    "MAX_DATASET_BYTES": 200 * MIB,  # a reference data file an administrator uploads (CSV or Parquet)
    "DEMO": False,
    "SESSION_HOURS": 8,
    "API_PAGE_SIZE": 50,
    "BABEL_DEFAULT_LOCALE": "zh_CN",
    "LANGUAGES": ("zh_CN", "en"),
    "PROVINCE_ABBREVIATION": "豫",
    "PROVINCE_CODE": "410000",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
    # Audit jobs: None runs them in the app's own bounded pool; redis://… sends them to Celery workers.
    "BROKER_URL": None,
    # The decision log's Ed25519 signer key file (`registry log keygen`); demo mode makes one in the instance folder.
    "LOG_SIGNING_KEY_FILE": None,
    "LOG_ORIGIN": None,  # the origin of a key made in demo mode (otherwise the key's name is the origin)
    "CELERY_QUEUE": "audits",
    "AUDIT_LEASE_SECONDS": 60,  # a running job whose worker stops beating for this long is claimed again
    "SWEEP_SECONDS": 60,  # Celery beat: how often jobs without a message (broker was down, worker died) are sent
    "REAUDIT_EVERY_SECONDS": 3600,  # Celery beat: how often `reaudit due` runs
    "BROKER_VISIBILITY_SECONDS": 3600,  # Redis: an unacknowledged message is delivered again after this long
    # E-mail notifications: sent only when SMTP_HOST is set (each account's inbox works without it).
    "SMTP_HOST": None,
    "SMTP_PORT": 25,
    "SMTP_USERNAME": None,
    "SMTP_PASSWORD": None,
    "SMTP_STARTTLS": False,
    "SMTP_FROM": "registry@localhost",
    "SMTP_TIMEOUT": 30,
    "MAIL_MAX_ATTEMPTS": 5,  # an e-mail that fails this many times is given up (its error is kept)
    "PUBLIC_URL": None,  # e.g. https://registry.example.gov.cn: the absolute links in e-mails
    # Rate limits per client address (the public concern form). Counts live in memory, per process, unless a
    # shared storage is named (e.g. the Redis broker's URL), as it must be with several workers.
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URL": None,  # None: memory://
    "RATELIMIT_PROXY_HOPS": 0,  # trusted reverse proxies in front (their X-Forwarded-For names the client)
    # Trusted reverse proxies in front of the app: their X-Forwarded-For/-Proto/-Host are believed (werkzeug's
    # ProxyFix), so a request that reached the proxy over TLS counts as secure (HSTS, secure links). 0: none.
    "PROXY_HOPS": 0,
    "CONCERN_RATE_LIMIT": "5 per hour;20 per day",  # concerns one address may send (every attempt counts)
    "LOGIN_RATE_LIMIT": "10 per minute;100 per hour",  # login attempts one address may make (every POST counts)
    "TOKEN_FAILURE_RATE_LIMIT": "10 per minute;100 per hour",  # unknown API tokens one address may send (then 429)
    # Account lockout: this many consecutive failed logins for one user name lock it for this many minutes.
    "LOGIN_LOCKOUT_FAILURES": 5,
    "LOGIN_LOCKOUT_MINUTES": 15,
    # How long the public library's pages are served from the page cache at most (registry.library.cache): a
    # decision, a lifecycle step or an audit shows at once; this bounds only what time alone changes. 0: no cache.
    "LIBRARY_CACHE_SECONDS": 300,
    # The page cache's size in each worker process, in MiB of kept (compressed) pages: ~15 kB an entry page.
    "LIBRARY_CACHE_MEGABYTES": 256,
    # The worker processes of one machine share the pages they made (an SQLite file in the instance folder,
    # registry.library.shared_pages), each then keeping them in memory too; false: each process for itself.
    "LIBRARY_CACHE_SHARED": True,
}

_INT_KEYS = {
    "MAX_MODEL_BYTES",
    "MAX_DOCUMENT_BYTES",
    "MAX_DATASET_BYTES",
    "SESSION_HOURS",
    "API_PAGE_SIZE",
    "AUDIT_LEASE_SECONDS",
    "SWEEP_SECONDS",
    "REAUDIT_EVERY_SECONDS",
    "BROKER_VISIBILITY_SECONDS",
    "SMTP_PORT",
    "SMTP_TIMEOUT",
    "MAIL_MAX_ATTEMPTS",
    "RATELIMIT_PROXY_HOPS",
    "PROXY_HOPS",
    "LIBRARY_CACHE_SECONDS",
    "LIBRARY_CACHE_MEGABYTES",
}
_BOOL_KEYS = {"DEMO", "SESSION_COOKIE_SECURE", "SMTP_STARTTLS", "RATELIMIT_ENABLED", "LIBRARY_CACHE_SHARED"}


def from_environment(environ: os._Environ | dict | None = None) -> dict[str, object]:
    """Read ``REGISTRY_*`` variables (and ``DATABASE_URL``) into configuration keys."""
    environ = os.environ if environ is None else environ
    found: dict[str, object] = {}
    for name, raw in environ.items():
        if not name.startswith("REGISTRY_"):
            continue
        key = name.removeprefix("REGISTRY_")
        if key in _INT_KEYS:
            found[key] = int(raw)
        elif key in _BOOL_KEYS:
            found[key] = raw.strip().lower() in {"1", "true", "yes", "on"}
        elif key == "INSTANCE":
            found["INSTANCE_PATH"] = raw
        else:
            found[key] = raw
    if environ.get("DATABASE_URL") and "DATABASE_URL" not in found:
        found["DATABASE_URL"] = environ["DATABASE_URL"]
    return found


def default_instance_path() -> Path:
    return Path.cwd() / "instance"


def database_url(instance_path: Path, configured: object) -> str:
    if configured:
        url = str(configured)
        # Platforms hand out postgres://; SQLAlchemy wants an explicit driver.
        if url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgres://")
        elif url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url
    return f"sqlite:///{instance_path / 'registry.sqlite3'}"


def instance_secret_key(instance_path: Path) -> str:
    """The secret key kept in the instance folder, made on first use (mode 0600)."""
    path = instance_path / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()
