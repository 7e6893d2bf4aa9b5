"""The hub's error tree. Every error has a stable ``code`` and a message safe to show users.

HubError
 ├── RequestError            400  malformed request, bad arguments
 │    ├── QueryLimitError     400  a query limit was exceeded (depth, aliases, tokens, ...)
 │    ├── BodyTooLarge        413
 │    └── BodyTimeout         408  the body did not arrive within HUB_BODY_TIMEOUT
 ├── AuthenticationError     401  missing/invalid/expired token
 ├── ForbiddenError          403  authenticated, but not allowed (purpose, case, role)
 │    └── PolicyDenied        403  one or more field coordinates are not granted
 ├── ConfigError             -    invalid settings or policy files (refuses to start)
 ├── UpstreamUnavailable     -    a department source failed (field-level)
 └── AuditUnavailable        503  the audit entry could not be made durable: no data leaves

Internal detail goes to the server log only; the client sees ``code``, ``message`` and the request id.
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    code = "HUB_ERROR"
    status = 500

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out


class RequestError(HubError):
    code = "BAD_REQUEST"
    status = 400


class QueryLimitError(RequestError):
    code = "QUERY_LIMIT"


class BodyTooLarge(RequestError):
    code = "BODY_TOO_LARGE"
    status = 413


class BodyTimeout(RequestError):
    code = "BODY_TIMEOUT"
    status = 408


class AuthenticationError(HubError):
    code = "UNAUTHENTICATED"
    status = 401


class ForbiddenError(HubError):
    code = "FORBIDDEN"
    status = 403


class PolicyDenied(ForbiddenError):
    code = "POLICY_DENIED"


class ConfigError(HubError):
    code = "CONFIG_ERROR"


class UpstreamUnavailable(HubError):
    code = "UPSTREAM_UNAVAILABLE"
    status = 502


class AuditUnavailable(HubError):
    code = "AUDIT_UNAVAILABLE"
    status = 503
