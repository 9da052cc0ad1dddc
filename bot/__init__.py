"""Rollbot: Slack ChatOps for emergency rollbacks."""

__version__ = "0.1.0"
