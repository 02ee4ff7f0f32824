"""The public, tamper-evident log of filing decisions (issue 5): entries, stored Merkle nodes, signed checkpoints."""
