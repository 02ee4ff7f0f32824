"""The pure core of the tamper-evident decision log: no Flask, no database.

- ``canonical``: RFC 8785 canonical JSON, the bytes of a log leaf;
- ``merkle``: RFC 6962 hashing, nodes of complete subtrees in a ``NodeStore``, inclusion and consistency proofs
  planned and fetched in one ``get_many``, RFC 9162 verifiers;
- ``note``: C2SP signed notes with Ed25519 keys (golang.org/x/mod/sumdb/note compatible);
- ``checkpoint``: C2SP tlog-checkpoint, the signed tree head;
- ``proof_file``: C2SP tlog-proof, the offline proof file of one decision.

Only the standard library, ``cryptography`` and ``rfc8785`` are imported here; a database ``NodeStore`` lives with
the application.
"""
