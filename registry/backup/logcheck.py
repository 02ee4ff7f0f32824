"""Checking the decision log from a backup alone: its entries, stored nodes, newest checkpoint and public key."""

from __future__ import annotations

import base64
import json

from registry.backup import archive, rows
from registry.decision_log import verify as verifier
from registry.ledger import merkle, note


class BackupSource:
    """The log as :mod:`registry.decision_log.verify` reads it, from a verified backup. Proofs come from the
    backup's stored nodes (``log_node``), the ones a restored registry serves, so they are checked too."""

    def __init__(self, backup: archive.Verified) -> None:
        with backup.open() as tar:
            self._key = _text(tar, archive.PUBLIC_KEY_MEMBER) if backup.has(archive.PUBLIC_KEY_MEMBER) else None
            self._note = _text(tar, archive.CHECKPOINT_MEMBER) if backup.has(archive.CHECKPOINT_MEMBER) else None
            self._entries = [
                {"index": r["index"], "leaf": base64.b64encode(r["leaf"]).decode("ascii"), "leaf_hash": r["leaf_hash"]}
                for r in table_rows(backup, tar, "log_entry")
            ]
            self.nodes = merkle.InMemoryNodeStore()
            try:
                self.nodes.put_many([(r["level"], r["index"], r["hash"]) for r in table_rows(backup, tar, "log_node")])
            except ValueError as exc:
                raise archive.BackupError(f"The backup's log nodes are not a Merkle tree: {exc}") from None

    def public_key(self) -> str:
        if self._key is None:
            raise LookupError("the backup holds no log public key")
        return self._key.strip()

    def checkpoint(self) -> str:
        if self._note is None:
            raise LookupError("the backup holds no log checkpoint")
        return self._note

    def entries(self, start: int, end: int) -> list[dict]:
        return self._entries[start:end]

    def inclusion(self, index: int, tree_size: int) -> list[bytes]:
        return merkle.inclusion_proof(index, tree_size, self.nodes)

    def consistency(self, first: int, second: int) -> list[bytes]:
        return merkle.consistency_proof(first, second, self.nodes)


def _text(tar, member: str) -> str:
    return archive.read_member(tar, member).decode("utf-8")


def table_rows(backup: archive.Verified, tar, name: str):
    """The decoded rows (dicts) of table ``name`` in the backup (none if it has no such table)."""
    for table in backup.tables:
        if table["name"] == name:
            yield from (dict(zip(table["columns"], values, strict=True)) for values in read_rows(tar, table))
            return


def read_rows(tar, table: dict):
    """The decoded values of each row of the backup's ``table`` entry, in order. Raises BackupError if the member
    is not the table it claims to be."""
    handle = tar.extractfile(table["member"])
    if _json_line(handle.readline(), table) != {"table": table["name"], "columns": table["columns"]}:
        raise archive.BackupError(f"The member {table['member']} does not hold the table the manifest names.")
    for line in handle:
        values = _json_line(line, table)
        if not isinstance(values, list) or len(values) != len(table["columns"]):
            raise archive.BackupError(f"A row of {table['name']} does not have its {len(table['columns'])} columns.")
        try:
            yield [rows.decode(v) for v in values]
        except rows.RowFormatError as exc:
            raise archive.BackupError(f"A row of {table['name']}: {exc}") from None


def _json_line(line: bytes, table: dict) -> object:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise archive.BackupError(f"A line of {table['member']} is not JSON: {exc}") from None


def check_log(backup: archive.Verified) -> verifier.Report:
    """Verify the backup's decision log against its own public key and newest checkpoint (checks 1–3 of
    :mod:`registry.decision_log.verify`), with the backup's signing key matching that public key."""
    try:
        source = BackupSource(backup)
        report = verifier.verify(source, pinned_key=source.public_key())
    except LookupError as exc:
        report = verifier.Report()
        report.bad(str(exc))
        return report
    if backup.has(archive.LOG_KEY_MEMBER):
        with backup.open() as tar:
            key_text = _text(tar, archive.LOG_KEY_MEMBER).strip()
        try:
            signer_key = note.Signer.from_key_string(key_text).verifier.key_string
        except note.NoteError as exc:
            report.bad(f"the backup's signing key is not a signed-note signer key: {exc}")
            return report
        if signer_key == source.public_key():
            report.good("the backup's signing key is the log's key")
        else:
            report.bad("the backup's signing key does not match the log's public key")
    return report
