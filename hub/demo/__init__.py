"""Synthetic demo data: one SQLite database per department, flagged synthetic."""
