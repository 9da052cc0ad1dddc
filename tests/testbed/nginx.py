"""Test bed: nginx (placeholder until written)."""
