"""Read and validate ``policies/``; any problem is a ``ConfigError`` naming the file, entry and line.

Layout: ``purposes.toml`` plus one ``<provider>.toml`` per provider department ("who provides decides").
TOML because a privacy officer can read it without knowing a programming language, comments are allowed,
dates are native values, and the standard library parses it (``tomllib``) without extra dependencies.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from hub.errors import ConfigError
from hub.policy.engine import compile_table
from hub.policy.model import Form, Grant, PolicySet, Purpose, Scope


@dataclass(frozen=True)
class CatalogEntry:
    """What the schema declares about one disclosed field coordinate."""

    coordinate: str
    provider: str
    form: Form
    description: str
    arguments: tuple[str, ...] = ()  # a predicate's arguments (its threshold), which grants must list values for


PURPOSE_KEYS = {"name_zh", "name_en", "legal_basis", "requires_case", "requires_authorization", "retention_days"}
GRANT_KEYS = {"id", "consumers", "purposes", "fields", "scope", "valid_from", "valid_to", "legal_basis"}
OPTIONAL_GRANT_KEYS = {"thresholds"}


def _line_of(text: str, needle: str, after: int = 0) -> int:
    lines = text.splitlines()
    for i in range(after, len(lines)):
        if needle in lines[i]:
            return i + 1
    return after + 1 if after else 0


def _fail(file: Path, line: int, entry: str, message: str) -> ConfigError:
    where = f"{file.name}:{line}" if line else file.name
    return ConfigError(f"{where}: {entry}: {message}", code="POLICY_INVALID")


def _read(file: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file.name}: cannot be read ({exc.__class__.__name__})", code="POLICY_INVALID") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file.name}: not valid TOML: {exc}", code="POLICY_INVALID") from None


def load_purposes(file: Path) -> dict[str, Purpose]:
    text, doc = _read(file)
    raw = doc.get("purposes")
    if not isinstance(raw, dict) or not raw:
        raise _fail(file, 0, "purposes", "expected [purposes.<ID>] tables")
    out: dict[str, Purpose] = {}
    for pid, body in raw.items():
        line = _line_of(text, f"[purposes.{pid}]")
        if not isinstance(body, dict):
            raise _fail(file, line, f"purpose {pid}", "must be a table")
        missing = PURPOSE_KEYS - body.keys()
        unknown = body.keys() - PURPOSE_KEYS
        if missing:
            raise _fail(file, line, f"purpose {pid}", f"missing {', '.join(sorted(missing))}")
        if unknown:
            raise _fail(file, line, f"purpose {pid}", f"unknown key {', '.join(sorted(unknown))}")
        for key in ("requires_case", "requires_authorization"):
            if not isinstance(body[key], bool):
                raise _fail(file, line, f"purpose {pid}", f"{key} must be true or false")
        if not isinstance(body["retention_days"], int) or body["retention_days"] <= 0:
            raise _fail(file, line, f"purpose {pid}", "retention_days must be a positive integer")
        out[pid] = Purpose(
            id=pid,
            name_zh=str(body["name_zh"]),
            name_en=str(body["name_en"]),
            legal_basis=str(body["legal_basis"]),
            requires_case=body["requires_case"],
            requires_authorization=body["requires_authorization"],
            retention_days=body["retention_days"],
        )
    return out


def _str_list(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def load_grants(
    file: Path,
    purposes: Mapping[str, Purpose],
    departments: Mapping[str, object],
    catalog: Mapping[str, CatalogEntry],
    today: date,
) -> list[Grant]:
    text, doc = _read(file)
    provider = doc.get("provider")
    if provider != file.stem:
        raise _fail(file, _line_of(text, "provider"), "provider", f"must be {file.stem!r} (the file's name)")
    if provider not in departments:
        raise _fail(file, _line_of(text, "provider"), "provider", f"unknown department {provider!r}")
    extra = doc.keys() - {"provider", "grants"}
    if extra:
        raise _fail(file, 0, "file", f"unknown key {', '.join(sorted(extra))}")
    raw = doc.get("grants", [])
    if not isinstance(raw, list):
        raise _fail(file, 0, "grants", "expected [[grants]] entries")
    grants: list[Grant] = []
    seen: set[str] = set()
    starts = [i for i, ln in enumerate(text.splitlines()) if ln.strip() == "[[grants]]"]
    for n, body in enumerate(raw):
        start = starts[n] if n < len(starts) else 0
        gid = body.get("id") if isinstance(body, dict) else None
        entry = f"grant {gid!r}" if isinstance(gid, str) else f"grants[{n}]"
        line = start + 1

        def fail(msg: str, needle: str | None = None, *, _e: str = entry, _s: int = start) -> ConfigError:
            return _fail(file, _line_of(text, needle, _s) if needle else _s + 1, _e, msg)

        if not isinstance(body, dict):
            raise fail("must be a table")
        missing = GRANT_KEYS - body.keys()
        if missing:
            raise fail(f"missing {', '.join(sorted(missing))}")
        unknown = body.keys() - GRANT_KEYS - OPTIONAL_GRANT_KEYS
        if unknown:
            raise fail(f"unknown key {', '.join(sorted(unknown))}", sorted(unknown)[0])
        if not isinstance(gid, str) or not gid:
            raise fail("id must be a non-empty string")
        if gid in seen:
            raise fail(f"duplicate grant id {gid!r}")
        seen.add(gid)
        consumers = _str_list(body["consumers"])
        if consumers is None:
            raise fail("consumers must be a non-empty list of department codes", "consumers")
        for c in consumers:
            if c not in departments:
                raise fail(f"unknown consumer department {c!r}", c)
        purpose_ids = _str_list(body["purposes"])
        if purpose_ids is None:
            raise fail("purposes must be a non-empty list of purpose ids", "purposes")
        for p in purpose_ids:
            if p not in purposes:
                raise fail(f"unknown purpose {p!r}", "purposes")
        try:
            scope = Scope(body["scope"])
        except ValueError:
            raise fail(f"unknown scope {body['scope']!r} (jurisdiction or all)", "scope") from None
        vf, vt = body["valid_from"], body["valid_to"]
        if not isinstance(vf, date) or not isinstance(vt, date):
            raise fail("valid_from and valid_to must be dates (YYYY-MM-DD)", "valid_")
        if vf > vt:
            raise fail(f"valid_from {vf} is after valid_to {vt}", "valid_from")
        if vt < today:
            raise fail(f"expired on {vt}; remove it or renew it with a new validity", "valid_to")
        if not isinstance(body["legal_basis"], str) or not body["legal_basis"].strip():
            raise fail("legal_basis must name the law or agreement", "legal_basis")
        fields_raw = body["fields"]
        if not isinstance(fields_raw, dict) or not fields_raw:
            raise fail("fields must map field coordinates to forms", "fields")
        fields: dict[str, Form] = {}
        for coordinate, form_name in fields_raw.items():
            try:
                form = Form(form_name)
            except ValueError:
                forms = ", ".join(f.value for f in Form)
                raise fail(f"unknown form {form_name!r} for {coordinate} ({forms})", coordinate) from None
            known = catalog.get(coordinate)
            if known is None:
                raise fail(f"unknown field {coordinate!r}", coordinate)
            if known.provider != provider:
                raise fail(f"{coordinate} is provided by {known.provider}, not {provider}", coordinate)
            if known.form is not form:
                raise fail(f"{coordinate} is disclosed as {known.form.value}, not {form.value}", coordinate)
            fields[coordinate] = form
        thresholds = _thresholds(body.get("thresholds", {}), fields, catalog, fail)
        grants.append(
            Grant(
                id=gid,
                provider=provider,
                consumers=consumers,
                purposes=purpose_ids,
                fields=fields,
                scope=scope,
                valid_from=vf,
                valid_to=vt,
                legal_basis=body["legal_basis"],
                file=f"{file.name}:{line}",
                thresholds=thresholds,
            )
        )
    return grants


def _thresholds(
    raw: Any, fields: Mapping[str, Form], catalog: Mapping[str, CatalogEntry], fail: Any
) -> dict[str, tuple[int, ...]]:
    """``[grants.thresholds]``: for every granted predicate that takes a threshold, the values it may be asked
    with (the law's fixed figures). A threshold predicate without a list would disclose the value by bisection."""
    if not isinstance(raw, dict):
        raise fail("thresholds must map predicate coordinates to lists of whole numbers", "thresholds")
    out: dict[str, tuple[int, ...]] = {}
    for coordinate, values in raw.items():
        entry = catalog.get(coordinate)
        if coordinate not in fields or entry is None:
            raise fail(f"thresholds for {coordinate}, which this grant does not list in fields", coordinate)
        if not entry.arguments:
            raise fail(f"{coordinate} takes no threshold", coordinate)
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        ):
            raise fail(f"thresholds for {coordinate} must be a non-empty list of whole numbers", coordinate)
        out[coordinate] = tuple(sorted(set(values)))
    for coordinate in fields:
        entry = catalog.get(coordinate)
        if entry is not None and entry.arguments and coordinate not in out:
            raise fail(
                f"{coordinate} takes a threshold ({', '.join(entry.arguments)}): list the allowed values under "
                "[grants.thresholds]",
                coordinate,
            )
    return out


def load_policies(
    policy_dir: Path, departments: Mapping[str, object], catalog: Mapping[str, CatalogEntry], today: date
) -> PolicySet:
    """Load, validate and compile the whole folder; raise ``ConfigError`` on the first problem."""
    if not policy_dir.is_dir():
        raise ConfigError(f"policy folder {policy_dir} does not exist", code="POLICY_INVALID")
    purposes_file = policy_dir / "purposes.toml"
    if not purposes_file.is_file():
        raise ConfigError(f"{policy_dir}/purposes.toml is missing", code="POLICY_INVALID")
    purposes = load_purposes(purposes_file)
    grants: list[Grant] = []
    ids: dict[str, str] = {}
    for file in sorted(policy_dir.glob("*.toml")):
        if file.name == "purposes.toml":
            continue
        for g in load_grants(file, purposes, departments, catalog, today):
            if g.id in ids:
                raise ConfigError(f"{g.file}: grant {g.id!r} also defined in {ids[g.id]}", code="POLICY_INVALID")
            ids[g.id] = g.file
            grants.append(g)
    policy = PolicySet(purposes=purposes, grants=grants)
    compile_table(policy)
    return policy
