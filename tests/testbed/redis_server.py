"""Test bed: redis_server (placeholder until written)."""
