"""Test bed: slack_api (placeholder until written)."""
