"""The ledger core stands alone: it loads and works with neither Flask nor the database layer present."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, types
# Load registry.ledger without registry/__init__.py (which builds the Flask app), as a verifier would.
package = types.ModuleType("registry")
package.__path__ = [sys.argv[1] + "/registry"]
sys.modules["registry"] = package
from registry.ledger import canonical, checkpoint, merkle, note, proof_file
store = merkle.InMemoryNodeStore()
leaf = canonical.canonical_json({"decision": 1})
merkle.append_leaf(store, 0, merkle.leaf_hash(leaf))
signer = note.Signer.generate("example.org/log")
signed = checkpoint.sign_checkpoint(checkpoint.Checkpoint("example.org/log", 1, merkle.root_at(1, store)), signer)
data = proof_file.format_proof_file(0, merkle.inclusion_proof(0, 1, store), signed)
assert proof_file.verify_proof_file(data, leaf, [signer.verifier.key_string]).index == 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"flask", "sqlalchemy", "sqlmodel", "alembic", "werkzeug"})
assert not heavy, heavy
print("ok")
"""


def test_the_ledger_imports_neither_flask_nor_the_database():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
