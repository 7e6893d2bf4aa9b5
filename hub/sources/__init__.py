"""Department sources: live, read-only access to each department's own data."""
