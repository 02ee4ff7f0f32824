"""Where an instance keeps what a backup holds, resolved from the settings alone (no app is built: building one
would generate a session key into the instance folder before a restore could put the original there)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from registry import config as config_module
from registry.decision_log.keys import DEMO_KEY_FILE

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - the file registry.config.instance_secret_key makes
FILES_FOLDER = "files"  # registry.create_app: LocalContentStore(instance / "files")


@dataclass(frozen=True)
class Instance:
    path: Path
    database_url: str
    log_key_file: Path  # the configured signing key file, else the instance folder's
    secret_key_file: Path

    @property
    def files(self) -> Path:
        return self.path / FILES_FOLDER

    def database_exists(self) -> bool:
        """False only for a SQLite file that is not there (connecting would create it); a server is asked later."""
        url = sa.engine.make_url(self.database_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return True
        return Path(url.database).exists()

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Instance:
        """The locations of the instance that ``settings`` (registry.config keys) describe."""
        path = Path(str(settings.get("INSTANCE_PATH") or config_module.default_instance_path())).resolve()
        configured_key = settings.get("LOG_SIGNING_KEY_FILE")
        return cls(
            path=path,
            database_url=config_module.database_url(path, settings.get("DATABASE_URL")),
            log_key_file=Path(str(configured_key)) if configured_key else path / DEMO_KEY_FILE,
            secret_key_file=path / SECRET_KEY_FILE,
        )

    @classmethod
    def from_environment(cls) -> Instance:
        """The instance that the REGISTRY_* environment variables (and DATABASE_URL) describe."""
        return cls.from_settings(dict(config_module.DEFAULTS) | config_module.from_environment())
