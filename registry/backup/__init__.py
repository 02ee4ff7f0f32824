"""Backup and restore of a whole registry: the database, the stored files, the keys and the decision log.

No Flask here: ``registry backup`` and ``registry restore`` (registry/cli.py) resolve the instance's locations from
the configuration and call :func:`create_backup`, :func:`check_backup` and :func:`restore_backup`.

A backup is one tar file (plain, or gzip/xz/bz2 compressed by its name's suffix), created with mode 0600 because it
holds secrets (the password hashes, the decision log's signing key, the session key). Its ``manifest.json`` names
the format version, the app version, the Alembic revision, when it was made, the row count of every table and the
sha256 and size of every other member; :mod:`registry.backup.archive` describes the layout.
"""

from registry.backup.archive import BackupError
from registry.backup.create import create_backup
from registry.backup.instance import Instance
from registry.backup.restore import check_backup, restore_backup

__all__ = ["BackupError", "Instance", "check_backup", "create_backup", "restore_backup"]
