"""Test bed: git (placeholder until written)."""
