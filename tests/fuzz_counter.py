"""Counts the inputs the fuzz tests tried, printed at the end of the run."""

tried = 0
