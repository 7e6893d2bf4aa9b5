"""The privacy officers' API: search the audit log, residents' access reports, tree heads and proofs.

Open only to clients with the ``officer`` role (the planner refuses everyone else before execution).
Every search is itself audited like any other request.
"""

from __future__ import annotations

from datetime import datetime

import anyio
import strawberry
from strawberry.types import Info

from hub.audit.head import SignedHead, head_at
from hub.audit.query import AuditSearch, access_report, search
from hub.errors import RequestError
from hub.ids import id_problem
from hub.schema.context import ctx

OFFICER = "officer"


@strawberry.type(description="A field coordinate disclosed by a request, and its form.")
class DisclosedField:
    coordinate: str
    form: str


@strawberry.type(description="An argument a request gave a threshold predicate, e.g. threshold 20000.")
class AskedThreshold:
    coordinate: str
    argument: str
    value: int | None = strawberry.field(description="Null when the request gave no whole number.")


def _asked(args: object) -> list[AskedThreshold]:
    out = []
    for coordinate, given in sorted((args or {}).items()) if isinstance(args, dict) else ():
        for name, v in sorted(given.items()) if isinstance(given, dict) else ():
            number = v if isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**31 else None
            out.append(AskedThreshold(coordinate=coordinate, argument=name, value=number))
    return out


@strawberry.type(description="One audit entry. Residents appear only as a count; values never appear.")
class AuditEntry:
    seq: int
    at: str
    request_id: str
    client_id: str
    department: str
    officer: str
    purpose: str
    case_ref: str
    operation_name: str
    operation_sha256: str = strawberry.field(
        description="Entries of format v1 only: SHA-256 of the query text (empty in v2 entries, see requestDigest)."
    )
    request_digest: str = strawberry.field(
        description="Entries of format v2: keyed HMAC-SHA256 of the request body (docs/audit.md); the client "
        "received the same value in extensions.digests."
    )
    fields: list[DisclosedField]
    subject_count: int
    decision: str
    reasons: list[str]
    status: int
    upstream_failures: list[str]
    thresholds: list[AskedThreshold] = strawberry.field(
        description="The thresholds the request gave threshold predicates, allowed or refused."
    )
    flags: list[str] = strawberry.field(
        description="Anomaly leads: NO_CASE_REFERENCE, MANY_RESIDENTS_PER_HOUR, OUT_OF_AREA_ATTEMPT, "
        "REPEATED_DENIALS, NIGHT_TIME_BULK, THRESHOLD_PROBING (several distinct thresholds of one predicate about "
        "one resident), ID_PROBING (an ID lookup refused as mostly misses or over the miss budget)."
    )


@strawberry.type
class AuditPage:
    entries: list[AuditEntry]
    has_more: bool
    end_cursor: int | None = strawberry.field(description="Pass as `after` for the next page.")


@strawberry.input(description="Filters; all optional and combined with AND.")
class AuditFilter:
    department: str | None = None
    client_id: str | None = None
    officer: str | None = None
    purpose: str | None = None
    case_ref: str | None = None
    id_number: str | None = strawberry.field(default=None, description="A resident; pseudonymised server-side.")
    field: str | None = strawberry.field(default=None, description="A field coordinate such as TaxRecord.incomeBand.")
    decision: str | None = strawberry.field(default=None, description="allow, deny or error.")
    since: datetime | None = None
    until: datetime | None = None


@strawberry.type(description="One access to a resident's data: when, who, why and which fields.")
class AccessRecord:
    at: str
    seq: int
    department: str
    client_id: str
    officer: str
    purpose: str
    case_ref: str
    fields: list[str]
    request_id: str
    refused: bool = strawberry.field(
        default=False,
        description="The request named this resident but disclosed nothing about them (denied, or out of area).",
    )


def _entry(found: object) -> AuditEntry:
    e = found.entry  # type: ignore[attr-defined]
    return AuditEntry(
        seq=e["seq"],
        at=e["at"],
        request_id=e["request_id"],
        client_id=e["client_id"],
        department=e["department"],
        officer=e["officer"],
        purpose=e["purpose"],
        case_ref=e["case_ref"],
        operation_name=e["operation_name"],
        operation_sha256=e.get("operation_sha256", ""),
        request_digest=e.get("request_digest", ""),
        fields=[DisclosedField(coordinate=f["coordinate"], form=f["form"]) for f in e["fields"]],
        subject_count=len(e.get("subjects", [])),
        decision=e["decision"],
        reasons=e["reasons"],
        status=e["status"],
        upstream_failures=e["upstream_failures"],
        thresholds=_asked(e.get("predicate_args")),
        flags=found.flags,  # type: ignore[attr-defined]
    )


def _pseudonym(info: Info, id_number: str) -> str:
    problem = id_problem(id_number)
    if problem:
        raise RequestError(f"idNumber: {problem}", code="BAD_ID_NUMBER")
    c = ctx(info)
    c.subjects.add(id_number)  # the officer looked this resident up: that is recorded too
    return str(c.audit_log().pseudonym(id_number))


async def audit_entries(
    info: Info, filter: AuditFilter | None = None, first: int = 50, after: int | None = None
) -> AuditPage:
    if not 1 <= first <= 500:
        raise RequestError("first must be between 1 and 500", code="BAD_ARGUMENT")
    f = filter or AuditFilter()
    s = AuditSearch(
        department=f.department,
        client_id=f.client_id,
        officer=f.officer,
        purpose=f.purpose,
        case_ref=f.case_ref,
        subject=_pseudonym(info, f.id_number) if f.id_number else None,
        field=f.field,
        decision=f.decision,
        since=f.since,
        until=f.until,
    )
    page, more = await anyio.to_thread.run_sync(search, ctx(info).audit_log().engine, s, first, after)
    entries = [_entry(p) for p in page]
    return AuditPage(entries=entries, has_more=more, end_cursor=entries[-1].seq if entries else None)


async def resident_access_report(info: Info, id_number: str) -> list[AccessRecord]:
    subject = _pseudonym(info, id_number)
    c = ctx(info)
    rows = await anyio.to_thread.run_sync(access_report, c.audit_log().engine, subject, 1000, c.data_dir)
    return [AccessRecord(**r) for r in rows]


@strawberry.type(description="A signed tree head: the Merkle root over the first `treeSize` entries, Ed25519-signed.")
class SignedTreeHead:
    tree_size: int
    root_hash: str = strawberry.field(description="Hex SHA-256 root (RFC 6962 MTH).")
    signed_at: str
    key_id: str
    signature: str = strawberry.field(description="Hex Ed25519 signature over the head message (docs/audit.md).")

    @classmethod
    def of(cls, h: SignedHead) -> SignedTreeHead:
        """The GraphQL view of the one signed-head type."""
        d = h.to_json()
        return cls(
            tree_size=h.tree_size,
            root_hash=d["root_hash"],
            signed_at=d["signed_at"],
            key_id=h.key_id,
            signature=d["signature"],
        )


@strawberry.type(description="An RFC 9162 inclusion proof of one entry in a signed tree.")
class InclusionProof:
    seq: int
    tree_size: int
    leaf_hash: str
    path: list[str]
    root_hash: str


@strawberry.type(description="An RFC 9162 consistency proof between two signed tree sizes.")
class ConsistencyProof:
    first_size: int
    second_size: int
    path: list[str]


async def audit_tree_head(info: Info, sign_now: bool = False) -> SignedTreeHead | None:
    log = ctx(info).audit_log()
    if sign_now:
        return SignedTreeHead.of(await anyio.to_thread.run_sync(log.sign_head))
    heads = await anyio.to_thread.run_sync(log.heads)
    return SignedTreeHead.of(heads[-1]) if heads else None


async def audit_inclusion_proof(info: Info, seq: int, tree_size: int | None = None) -> InclusionProof:
    log = ctx(info).audit_log()
    heads = await anyio.to_thread.run_sync(log.heads)
    size = head_at(heads, tree_size).tree_size
    if not 0 <= seq < size:
        raise RequestError(f"entry {seq} is not in the tree of size {size}", code="BAD_ARGUMENT")
    tree = await anyio.to_thread.run_sync(log.tree)
    return InclusionProof(
        seq=seq,
        tree_size=size,
        leaf_hash=tree.leaf(seq).hex(),
        path=[p.hex() for p in tree.inclusion_proof(seq, size)],
        root_hash=tree.root(size).hex(),
    )


async def audit_consistency_proof(info: Info, first_size: int, second_size: int | None = None) -> ConsistencyProof:
    log = ctx(info).audit_log()
    heads = await anyio.to_thread.run_sync(log.heads)
    second = head_at(heads, second_size).tree_size
    head_at(heads, first_size)
    if not 0 < first_size <= second:
        raise RequestError("firstSize must be between 1 and secondSize", code="BAD_ARGUMENT")
    tree = await anyio.to_thread.run_sync(log.tree)
    return ConsistencyProof(
        first_size=first_size,
        second_size=second,
        path=[p.hex() for p in tree.consistency_proof(first_size, second)],
    )
