"""The privacy officers' console: server-rendered pages over the audit log (docs/console.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.console.web import console_app

__all__ = ["console_app"]


def __getattr__(name: str) -> Any:
    # The web part (the gateway, the schema, starlette, jinja2) is imported when the app asks for it, not by the
    # `hub` commands, which import hub.console.cli only to add their arguments (`hub audit verify`'s memory).
    if name == "console_app":
        from hub.console.web import console_app

        return console_app
    raise AttributeError(name)
