"""The privacy officers' console: server-rendered pages over the audit log (docs/console.md)."""

from hub.console.web import console_app

__all__ = ["console_app"]
