"""Stores over the hub's own database (never department data)."""
