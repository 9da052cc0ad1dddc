"""Test bed: rollbot_process (placeholder until written)."""
