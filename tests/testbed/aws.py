"""Test bed: aws (placeholder until written)."""
