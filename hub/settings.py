"""Settings: the only module that reads ``HUB_*`` environment variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hub.departments import SOURCE_DEPARTMENTS
from hub.errors import ConfigError

# name -> help; a test checks every setting is documented in docs/settings.md
HELP: dict[str, str] = {
    "data_dir": "Folder for the hub's own files: hub database (SQLite default), keys, demo department databases.",
    "database_url": "SQLAlchemy URL of the hub's own database (clients, authorizations, audit log).",
    "policy_dir": "Folder of policy files (purposes.toml and one <provider>.toml per provider department).",
    "department_urls": "Per-department database URLs, from HUB_DEPT_<CODE>_URL; default one SQLite file each.",
    "issuer": "The `iss` of tokens this hub issues and accepts.",
    "audience": "The `aud` this hub requires in access tokens.",
    "token_ttl": "Lifetime of issued access tokens, in seconds.",
    "dev_mode": "Enables GraphiQL and introspection. Off in production.",
    "max_body_bytes": "Largest accepted request body; larger bodies get 413 before parsing.",
    "body_timeout": "Seconds a client may take to send a request body (slow senders get 408 and the connection ends).",
    "token_failures_per_client": "Failed secret checks per client id within the window before the token endpoint "
    "refuses that client id for a while (429).",
    "token_failures_per_address": "Failed secret checks from one network address within the window before the "
    "token endpoint refuses that address for a while (429).",
    "token_failure_window": "Seconds over which failed token-endpoint authentications are counted.",
    "client_secret_scrypt_n": "scrypt cost (N, a power of two) of the client secrets the hub hashes; lower it only "
    "in tests.",
    "max_tokens": "Largest number of lexical tokens in a GraphQL document.",
    "max_depth": "Deepest field nesting allowed.",
    "max_aliases": "Most aliases allowed in one document.",
    "max_root_fields": "Most root fields in one operation.",
    "max_directives": "Most directives in one document.",
    "max_cost": "Highest estimated query cost (list fields multiply by their size).",
    "max_batch": "Most ID numbers or households in one list argument.",
    "compiled": "Run person/people/household queries on the compiled path (hub/compiled/, docs/performance.md) "
    "instead of graphql-core's per-field resolution; same answers and audit entries. On by default.",
    "breaker_threshold": "Consecutive failures of a department before its circuit opens (calls are skipped).",
    "breaker_reset": "Seconds a department's circuit stays open before one trial call is let through.",
    "db_busy_timeout": "Seconds a write to the hub's SQLite database waits for a lock before failing (fail closed).",
    "source_timeout": "Seconds a department source may take before its fields come back UPSTREAM_UNAVAILABLE.",
    "lookup_miss_budget": "ID numbers a client may look up without finding them (not found or out of area) per window.",
    "lookup_miss_window": "Seconds over which a client's lookup misses count against its budget.",
    "source_max_bytes": "Largest answer read from a department subgraph or a remote hub (bytes, decoded); larger "
    "answers are cut off and that source's fields come back UPSTREAM_UNAVAILABLE.",
    "predicates_in_hub": "Subgraph departments whose predicates the hub evaluates itself from the compared columns "
    "(comma-separated codes, from HUB_PREDICATES_IN_HUB); by default a subgraph answers predicates itself.",
    "external_jwks_url": "Optional: accept tokens from an external identity provider with this JWKS URL.",
    "external_issuer": "Optional: the issuer of the external identity provider.",
    "audit_origin": "Origin line (and key name) of the audit log's C2SP checkpoints, e.g. hub.example.gov.cn/audit.",
    "witnesses": "Witnesses asked to cosign every checkpoint, from HUB_WITNESSES='<witness vkey>=<url>,...'.",
    "rate_limit": "Requests per minute each client may make to /graphql, shared by all hub processes on one hub "
    "database (a token bucket of HUB_RATE_BURST); 0: no limit.",
    "token_rate_limit": "Requests per minute to the token endpoint from one network address, and for one client; "
    "0: no limit.",
    "rate_burst": "The most requests a client (or token endpoint caller) may make at once before the rate limit "
    "spaces them out (the bucket's size).",
    "otlp_endpoint": "OTLP/HTTP endpoint traces are exported to (e.g. http://collector:4318/v1/traces); empty: no "
    "tracing.",
    "log_format": "Log line format of `hub serve`: `text` (readable) or `json` (one object per line); both carry the "
    "request id (docs/operations.md).",
    # monitoring (docs/monitoring.md)
    "monitor": "Run the monitor in the background: read departments' change events and raise alerts. Off by "
    "default; `hub demo` turns it on.",
    "monitor_interval": "Seconds the monitor waits between polls of the outboxes when there was nothing to do.",
    "monitor_batch": "Most change events the monitor reads from one department's outbox per batch.",
    "monitor_client": "Client id the monitor asks the hub as (department civil_affairs, purpose MON); registered "
    "at start if missing.",
    "monitor_area": "Area-code prefix of the monitoring client's jurisdiction, used when it is first registered.",
    # the privacy officers' console (docs/console.md)
    "console_session_ttl": "Seconds a console sign-in lasts; the officer signs in again after that.",
    "console_page_size": "Audit entries per page in the console's search (and most entries in one export).",
    "oidc_issuer": "Issuer URL of the organisation's OpenID Connect provider; set: officers may sign in to the "
    "console through it (authorization code with PKCE). Empty: local accounts only.",
    "oidc_client_id": "The console's client id at the OpenID Connect provider.",
    "oidc_client_secret": "The console's client secret at the OpenID Connect provider.",
    "oidc_claim": "The id_token claim whose value names the officer account (matched to `hub officers add "
    "--oidc-subject`).",
    "oidc_create_officers": "Create an officer account (role officer) for an unknown identity at its first "
    "sign-in; off: an unknown identity is refused.",
    "oidc_redirect_url": "The console's callback URL registered at the provider; empty: derived from the request "
    "(<scheme>://<host>/console/oidc/callback).",
    # federation (docs/federation.md)
    "remote_hubs": "Other regions' hubs asked for residents not found here, from HUB_REMOTE_HUBS='name=url,...'.",
    "remote_credentials": "This hub's client id and secret at each remote hub, from "
    "HUB_REMOTE_<NAME>_CLIENT_ID and HUB_REMOTE_<NAME>_CLIENT_SECRET.",
}


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".hub")
    database_url: str = ""
    policy_dir: Path = Path("policies")
    department_urls: Mapping[str, str] = field(default_factory=dict)
    issuer: str = "https://hub.local"
    audience: str = "hub"
    token_ttl: int = 300
    dev_mode: bool = False
    max_body_bytes: int = 1_000_000
    body_timeout: float = 10.0
    token_failures_per_client: int = 5
    token_failures_per_address: int = 20
    token_failure_window: float = 300.0
    client_secret_scrypt_n: int = 2**14
    max_tokens: int = 2_000
    max_depth: int = 8
    max_aliases: int = 30
    max_root_fields: int = 10
    max_directives: int = 50
    max_cost: int = 50_000
    max_batch: int = 1_000
    compiled: bool = True  # HUB_COMPILED (docs/performance.md)
    source_timeout: float = 5.0
    source_max_bytes: int = 4_000_000
    predicates_in_hub: str = ""  # comma-separated department codes (docs/federation.md)
    db_busy_timeout: float = 5.0
    breaker_threshold: int = 3
    breaker_reset: float = 10.0
    lookup_miss_budget: int = 100
    lookup_miss_window: float = 86_400.0
    external_jwks_url: str = ""
    external_issuer: str = ""
    audit_origin: str = "hub.local/audit"
    witnesses: str = ""
    log_format: str = "text"  # text | json (hub/logs.py)
    otlp_endpoint: str = ""  # OpenTelemetry traces (hub/tracing.py)
    rate_limit: float = 0.0  # per minute, per client (hub/ratelimit.py)
    token_rate_limit: float = 0.0
    rate_burst: int = 20
    monitor: bool = False
    monitor_interval: float = 2.0
    monitor_batch: int = 500
    monitor_client: str = "hub-monitor"
    monitor_area: str = "33"
    console_session_ttl: int = 28_800
    console_page_size: int = 50
    oidc_issuer: str = ""  # OpenID Connect sign-in to the console (hub/console/oidc.py)
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    oidc_claim: str = "sub"
    oidc_create_officers: bool = False
    oidc_redirect_url: str = ""
    # federation (docs/federation.md)
    remote_hubs: Mapping[str, str] = field(default_factory=dict)  # name -> base URL, asked in this order
    remote_credentials: Mapping[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.data_dir / 'hub.sqlite'}")
        n = self.client_secret_scrypt_n
        if n < 2 or n & (n - 1):
            raise ConfigError(f"HUB_CLIENT_SECRET_SCRYPT_N: {n} is not a power of two", code="BAD_SETTING")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"HUB_LOG_FORMAT: {self.log_format!r} is not one of text, json", code="BAD_SETTING")

    @property
    def key_dir(self) -> Path:
        return self.data_dir / "keys"

    def department_url(self, code: str) -> str:
        url = self.department_urls.get(code)
        if url:
            return url
        return f"sqlite:///{self.data_dir / 'departments' / (code + '.sqlite')}"

    def with_data_dir(self, data_dir: str | Path | None) -> Settings:
        """``hub --data-dir DIR``: the hub's files under DIR, and the database URL reset to the SQLite default there."""
        return self if not data_dir else self.replace(data_dir=Path(data_dir), database_url="")

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        kwargs: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            key = "HUB_" + f.name.upper()
            if f.name in ("department_urls", "remote_hubs", "remote_credentials") or key not in env:
                continue
            raw = env[key]
            try:
                if f.type in ("int",):
                    kwargs[f.name] = int(raw)
                elif f.type in ("float",):
                    kwargs[f.name] = float(raw)
                elif f.type in ("bool",):
                    if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError(raw)
                    kwargs[f.name] = raw.lower() in ("1", "true", "yes", "on")
                elif f.type in ("Path",):
                    kwargs[f.name] = Path(raw)
                else:
                    kwargs[f.name] = raw
            except ValueError:
                raise ConfigError(f"{key}: {raw!r} is not a valid {f.type}", code="BAD_SETTING") from None
        urls = {
            k[len("HUB_DEPT_") : -len("_URL")].lower(): v
            for k, v in env.items()
            if k.startswith("HUB_DEPT_") and k.endswith("_URL")
        }
        unknown = sorted(set(urls) - set(SOURCE_DEPARTMENTS))
        if unknown:  # a misspelt variable would otherwise leave the department on its default database
            names = ", ".join(f"HUB_DEPT_{u.upper()}_URL" for u in unknown)
            known = ", ".join(sorted(SOURCE_DEPARTMENTS))
            raise ConfigError(f"{names}: no such source department (known: {known})", code="BAD_SETTING")
        kwargs["department_urls"] = urls
        in_hub = {x.strip() for x in str(kwargs.get("predicates_in_hub", "")).split(",") if x.strip()}
        if in_hub - set(SOURCE_DEPARTMENTS):
            names = ", ".join(sorted(in_hub - set(SOURCE_DEPARTMENTS)))
            raise ConfigError(f"HUB_PREDICATES_IN_HUB: no such source department: {names}", code="BAD_SETTING")
        # federation: HUB_REMOTE_HUBS="name=url,..." and HUB_REMOTE_<NAME>_CLIENT_ID / _CLIENT_SECRET
        remotes: dict[str, str] = {}
        for item in filter(None, (x.strip() for x in env.get("HUB_REMOTE_HUBS", "").split(","))):
            name, sep, url = item.partition("=")
            if not sep or not name.strip() or not url.strip():
                raise ConfigError(f"HUB_REMOTE_HUBS: {item!r} is not name=url", code="BAD_SETTING")
            remotes[name.strip()] = url.strip()
        kwargs["remote_hubs"] = remotes
        prefixes = {n: "HUB_REMOTE_" + n.upper().replace("-", "_") for n in remotes}
        kwargs["remote_credentials"] = {
            n: (env.get(p + "_CLIENT_ID", ""), env.get(p + "_CLIENT_SECRET", "")) for n, p in prefixes.items()
        }
        return cls(**kwargs)  # type: ignore[arg-type]
