"""The console's routes (mounted at ``/console`` by ``hub.app``).

Officers sign in as people: local accounts in the hub database (``hub.store.officers``: scrypt password, optional
TOTP) or the organisation's OpenID Connect provider (``hub.console.oidc``); the session cookie is signed with the key
ring's console key, ``HttpOnly`` and ``SameSite=Strict``; every form carries a CSRF token; every page carries a
strict Content-Security-Policy (no script at all). Each page an officer opens is itself an audit entry (purpose
AUDIT, the officer named, the residents looked up as pseudonyms), written before the page is sent: if the log
cannot take it, the page is not shown. The data come from ``hub.audit.query`` and ``hub.audit.head``; nothing
here searches or verifies the log a second way. The alerts are read with ``hub.monitor.alerts.AlertStore`` and
the approved operations are listed, approved and retired with ``hub.operations.OperationDesk``, the same calls as
the GraphQL API and ``hub operations``.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import jinja2
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hub.audit.head import SignedHead, key_fingerprint, load_public_key
from hub.audit.merkle import ProofError, leaf_hash, verify_inclusion
from hub.audit.query import AuditSearch, FoundEntry, access_report, flags_for, search
from hub.audit.search import FLAGS, search_page
from hub.auth.attempts import FailedAttempts
from hub.clock import CHINA, china_date
from hub.console.chart import DECISIONS, bars
from hub.console.oidc import STATE_COOKIE, STATE_PATH, STATE_TTL, OidcLogin, OidcRefusal, state_secret
from hub.db import audit_entries, witnessed_checkpoints
from hub.departments import DEPARTMENTS
from hub.errors import AuditUnavailable, ForbiddenError, HubError, RequestError
from hub.gateway import Exchange, audit_body
from hub.ids import id_problem
from hub.monitor.alerts import STATUSES, Alert
from hub.operations import OperationDesk
from hub.policy.explain import explain_rows
from hub.state import HubState
from hub.store.officers import OFFICER_ROLE, Officer, OfficerStore, check_login
from hub.store.operations import DOCUMENT_ID, Operation

log = logging.getLogger("hub.console")

HERE = Path(__file__).parent
COOKIE = "hub_console"
PURPOSE = "AUDIT"
FILTERS = ("subject", "officer", "consumer", "department", "purpose", "field", "decision", "flag", "since", "until")
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-store",
}
EXPORT_PAGES = 10  # an export holds at most this many search pages
FLAG_SCAN_PAGES = 20  # a flag filter reads at most this many pages of entries to fill one page


class FormExpired(ForbiddenError):
    """A console form posted without this session's CSRF token (docs/errors/FORM_EXPIRED.md)."""

    code = "FORM_EXPIRED"


class EntryNotFound(RequestError):
    code = "NOT_FOUND"
    status = 404


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response


@dataclass
class Page:
    """What a view produced: a template and its values, or a ready response; and what the audit entry names."""

    template: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    response: Response | None = None
    subjects: list[str] = field(default_factory=list)  # pseudonyms the officer looked up
    details: dict[str, Any] = field(default_factory=dict)  # what was asked (never an ID number)


class Console:
    def __init__(self, state: HubState) -> None:
        self.state = state
        s = state.settings
        self.officers = OfficerStore(state.engine, state.clock, s.client_secret_scrypt_n, state.keys.totp_seal_key())
        legacy = s.data_dir / "console" / "officers.json"
        if legacy.exists():  # accounts of a hub before migration 0007: moved into the hub database once, at start
            imported = self.officers.import_json(legacy)
            log.warning("console officers imported from %s into the hub database: %s", legacy, ", ".join(imported))
        self.oidc = OidcLogin(s) if s.oidc_issuer else None
        self.desk = OperationDesk(
            state.operations,
            state.clients,
            state.graphql_schema,
            state.catalog,
            state.policy,
            record=lambda body: state.audit.write([(dict(body, console={"via": "console"}), [])]),
            blank_entry=lambda: audit_body(Exchange(request_id=uuid.uuid4().hex, started=time.perf_counter())),
            today=lambda: china_date(state.clock()),
        )
        self.signer = URLSafeTimedSerializer(state.keys.console_session_key(), salt="hub-console-session")
        self.failures = FailedAttempts(state.settings.token_failures_per_client, state.settings.token_failure_window)
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
        self.env.globals["DEPARTMENTS"] = DEPARTMENTS
        self.env.globals["FLAGS"] = FLAGS
        self.env.globals["DECISIONS"] = DECISIONS
        self.env.globals["OIDC"] = self.oidc is not None
        self.env.filters["cn"] = china_time

    # -- sessions ----------------------------------------------------------------------------------------
    def session(self, request: Request) -> dict[str, str]:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return {}
        try:
            data = self.signer.loads(raw, max_age=self.state.settings.console_session_ttl)
        except BadSignature:
            return {}
        return data if isinstance(data, dict) else {}

    def set_session(self, request: Request, response: Response, data: dict[str, str]) -> None:
        response.set_cookie(
            COOKIE,
            self.signer.dumps(data),
            max_age=self.state.settings.console_session_ttl,
            path="/console",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def officer(self, request: Request) -> Officer | None:
        name = self.session(request).get("o")
        officer = self.officers.get(name) if name else None
        return officer if officer is not None and officer.may_use_console else None

    def render(self, request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        s = self.session(request)
        html = self.env.get_template(template).render(
            csrf=s.get("c", ""),
            officer=s.get("o", ""),
            path=request.url.path,
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            **values,
        )
        return HTMLResponse(html, status_code=status)

    def expired(self, request: Request) -> HTMLResponse:
        e = FormExpired("the form expired (it lacks this session's CSRF token); reload the page and send it again")
        return self.render(request, "error.html", e.status, code=e.code, message=e.message)

    async def csrf_ok(self, request: Request) -> tuple[bool, Any]:
        form = await request.form()
        expected = self.session(request).get("c", "")
        given = str(form.get("csrf", ""))
        return bool(expected) and hmac.compare_digest(expected, given), form

    async def posted(self, request: Request) -> tuple[Officer, Any] | Response:
        """A form posted by a signed-in officer with this session's CSRF token: (officer, form); otherwise the
        answer to send instead (to the sign-in page, or "the form expired")."""
        officer = self.officer(request)
        if officer is None:
            return RedirectResponse("/console/login", status_code=303)
        ok, form = await self.csrf_ok(request)
        if not ok:
            return self.expired(request)
        return officer, form

    # -- the audit entry of a page view ------------------------------------------------------------------
    async def record(
        self, request: Request, officer: str, department: str, view: str, decision: str, status: int, **extra: Any
    ) -> None:
        ex = Exchange(request_id=uuid.uuid4().hex, started=time.perf_counter())
        ex.officer, ex.purpose, ex.decision, ex.status = officer, PURPOSE, decision, status
        ex.operation_name = f"console.{view}"
        subjects = list(extra.pop("subjects", []))
        body = audit_body(ex)
        body.update(route=request.url.path, client_id="console", department=department, subject_count=len(subjects))
        if extra:
            body["console"] = extra
        await self.state.audit.append(body, subjects)

    def guarded(self, view: str, fn: Callable[[Request, Officer], Awaitable[Page]]) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            officer = self.officer(request)
            if officer is None:
                name = self.session(request).get("o")
                if name:  # signed in, but not (or no longer) an officer
                    return self.render(request, "refused.html", status=403, name=name)
                return RedirectResponse("/console/login", status_code=303)
            decision, status = "allow", 200
            try:
                page = await fn(request, officer)
            except HubError as e:
                decision, status = "deny", e.status
                page = Page("error.html", {"code": e.code, "message": e.message}, details={"reason": e.code})
            try:
                await self.record(
                    request, officer.name, officer.department, view, decision, status, subjects=page.subjects,
                    **page.details,
                )  # fmt: skip
            except AuditUnavailable:  # fail closed: no entry, no page
                return self.render(request, "error.html", 503, code="AUDIT_UNAVAILABLE", message="audit log down")
            if page.response is not None:
                return page.response
            return self.render(request, page.template, status=status, view=view, **page.values)

        return endpoint

    # -- sign-in -----------------------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        s = self.session(request)
        if request.method == "GET":
            if s.get("c"):
                return self.render(request, "login.html", error="")
            s = {"c": secrets.token_urlsafe(24)}  # a session before sign-in, for the form's CSRF token
            response = self.render_with(request, "login.html", s, error="")
            self.set_session(request, response, s)
            return response
        ok, form = await self.csrf_ok(request)
        if not ok:
            return self.render(request, "login.html", status=403, error="expired")
        name, password = str(form.get("name", ""))[:64], str(form.get("password", ""))
        code = str(form.get("code", ""))[:12]
        if self.failures.retry_after(name) > 0:
            return self.render(request, "login.html", status=429, error="locked")
        officer = await anyio.to_thread.run_sync(self.officers.authenticate, name, password, code)
        if officer is None or not officer.may_use_console:
            if officer is None:
                self.failures.failed(name)
            known = self.officers.get(name)
            await self.record(
                request,
                known.name if known else "",
                known.department if known else "",
                "login",
                "deny",
                401,
                reason="OFFICER_AUTH_FAILED" if officer is None else "NOT_AN_OFFICER",
            )
            return self.render(request, "login.html", status=401, error="failed")
        await self.record(request, officer.name, officer.department, "login", "allow", 200)
        done = RedirectResponse("/console/", status_code=303)
        self.set_session(request, done, {"o": officer.name, "c": secrets.token_urlsafe(24)})
        return done

    # -- sign-in through the organisation's identity provider ---------------------------------------------
    async def oidc_login(self, request: Request) -> Response:
        if self.oidc is None:
            return self.render(request, "error.html", 404, code="NOT_FOUND", message="no identity provider configured")
        try:
            return await self.oidc.start(request)
        except Exception:  # the provider's metadata cannot be read: say so, keep the local sign-in
            log.exception("OIDC: the provider's metadata could not be read")
            return self.render(
                request, "error.html", 502, code="OIDC_PROVIDER_ERROR", message="the identity provider did not answer"
            )

    def oidc_officer(self, claims: dict[str, Any]) -> tuple[Officer | None, str]:
        """The account the claims name (created when HUB_OIDC_CREATE_OFFICERS is on), and the claim's value."""
        s = self.state.settings
        value = claims.get(s.oidc_claim)
        subject = str(value)[:255] if isinstance(value, str | int) and str(value) else ""
        if not subject:
            return None, ""
        officer = self.officers.by_subject(subject)
        if officer is None and s.oidc_create_officers:
            wanted = str(claims.get("preferred_username", ""))
            try:
                login = check_login(wanted) if self.officers.get(wanted) is None else ""
            except RequestError:
                login = ""
            login = login or "oidc-" + hashlib.sha256(subject.encode()).hexdigest()[:12]
            name = str(claims.get("name", ""))[:120]
            officer = self.officers.add(login, None, display_name=name, roles=(OFFICER_ROLE,), oidc_subject=subject)
        return officer, subject

    async def oidc_callback(self, request: Request) -> Response:
        if self.oidc is None:
            return self.render(request, "error.html", 404, code="NOT_FOUND", message="no identity provider configured")
        try:
            claims = await self.oidc.finish(request)
        except OidcRefusal as e:
            log.warning("OIDC sign-in refused: %s %s", e.reason, e.detail)
            await self.record(request, "", "", "login", "deny", 401, reason=e.reason, detail=e.detail)
            return self.render(request, "oidc_refused.html", 401, reason=e.reason, detail=e.detail, subject="")
        officer, subject = await anyio.to_thread.run_sync(self.oidc_officer, claims)
        if officer is None or not officer.may_use_console:
            reason = "OIDC_UNKNOWN_IDENTITY" if officer is None else "NOT_AN_OFFICER"
            await self.record(
                request, officer.name if officer else "", officer.department if officer else "", "login", "deny",
                403, reason=reason, via="oidc",
            )  # fmt: skip
            return self.render(request, "oidc_refused.html", 403, reason=reason, detail="", subject=subject)
        await self.record(request, officer.name, officer.department, "login", "allow", 200, via="oidc")
        session = {"o": officer.name, "c": secrets.token_urlsafe(24)}
        # A page, not a redirect: the provider's redirect here is a cross-site navigation, and a SameSite=Strict
        # cookie set now is only sent by the browser from the next, same-site, navigation (the refresh below).
        response = self.render_with(request, "signed_in.html", session)
        self.set_session(request, response, session)
        return response

    def render_with(self, request: Request, template: str, session: dict[str, str], **values: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(
            csrf=session.get("c", ""), officer=session.get("o", ""), path=request.url.path, **values
        )
        return HTMLResponse(html)

    async def logout(self, request: Request) -> Response:
        ok, _ = await self.csrf_ok(request)
        if not ok:
            return self.expired(request)
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    # -- views -------------------------------------------------------------------------------------------
    def latest_head(self) -> tuple[SignedHead | None, bool]:
        heads = self.state.audit.heads()
        if not heads:
            return None, False
        head = heads[-1]
        return head, head.verifies(load_public_key(self.state.keys.audit_public_path))

    async def overview(self, request: Request, officer: Officer) -> Page:
        now = self.state.clock()
        today = china_date(now)
        days = [today - timedelta(days=i) for i in range(13, -1, -1)]
        since = datetime.combine(days[0], datetime.min.time(), CHINA)

        def read() -> dict[str, Any]:
            t = audit_entries
            per_day: Counter[tuple[date, str]] = Counter()
            per_dept: Counter[tuple[str, str]] = Counter()
            with self.state.engine.connect() as conn:
                for at, dept, decision in conn.execute(
                    select(t.c.at, t.c.department, t.c.decision).where(t.c.at >= since)
                ):
                    at = at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite gives naive UTC times
                    per_day[(china_date(at), decision)] += 1
                    per_dept[(dept or "—", decision)] += 1
                newest = conn.execute(select(func.max(t.c.seq))).scalar()
                witnessed = 0
                head, head_ok = self.latest_head()
                if head is not None:
                    witnessed = conn.execute(
                        select(func.count())
                        .select_from(witnessed_checkpoints)
                        .where(witnessed_checkpoints.c.tree_size == head.tree_size)
                    ).scalar_one()
            recent, _ = search(
                self.state.engine, AuditSearch(since=now - timedelta(days=7)), 200, max(-1, (newest or 0) - 200)
            )
            flagged = Counter(f for e in recent for f in e.flags)
            total = sum(per_day.values())
            denied = sum(n for (_, k), n in per_day.items() if k == "deny")
            return {
                "chart": bars(days, per_day),
                "departments": sorted({d for d, _ in per_dept}),
                "per_dept": per_dept,
                "total": total,
                "denied_share": (denied / total) if total else 0.0,
                "flagged": sorted(flagged.items()),
                "flagged_scanned": len(recent),
                "head": head,
                "head_ok": head_ok,
                "witnessed": witnessed,
                "size": (newest + 1) if newest is not None else 0,
                "first_day": days[0],
                "last_day": today,
            }

        values = await anyio.to_thread.run_sync(read)
        return Page("overview.html", values)

    def filters(self, request: Request) -> dict[str, str]:
        q = request.query_params
        return {k: q.get(k, "").strip() for k in FILTERS if q.get(k, "").strip()}

    def to_search(self, f: dict[str, str]) -> AuditSearch:
        def day(key: str) -> datetime | None:
            if key not in f:
                return None
            try:
                d = date.fromisoformat(f[key])
            except ValueError:
                raise RequestError(f"{key}: expected a date as YYYY-MM-DD", code="BAD_ARGUMENT") from None
            return datetime.combine(d, datetime.min.time(), CHINA) + (
                timedelta(days=1) if key == "until" else timedelta()
            )

        if "subject" in f and not (len(f["subject"]) == 64 and set(f["subject"]) <= set("0123456789abcdef")):
            raise RequestError(
                "subject: a pseudonym is 64 hex digits; search by ID number with the form", code="BAD_ARGUMENT"
            )
        if "flag" in f and f["flag"] not in FLAGS:
            raise RequestError(f"flag: one of {', '.join(FLAGS)}", code="BAD_ARGUMENT")
        return AuditSearch(
            department=f.get("department"),
            client_id=f.get("consumer"),
            officer=f.get("officer"),
            purpose=f.get("purpose"),
            subject=f.get("subject"),
            field=f.get("field"),
            decision=f.get("decision"),
            since=day("since"),
            until=day("until"),
        )

    def run_search(self, f: dict[str, str], after: int | None, size: int) -> tuple[list[FoundEntry], int | None]:
        """One page (``size`` entries) and the cursor of the next page (None: no more). A flag filter keeps
        reading pages of the search until the page is full or ``FLAG_SCAN_PAGES`` pages were read."""
        return search_page(self.state.engine, self.to_search(f), f.get("flag"), after, size, FLAG_SCAN_PAGES)

    async def search_view(self, request: Request, officer: Officer) -> Page:
        f = self.filters(request)
        after_raw = request.query_params.get("after", "")
        after = int(after_raw) if after_raw.isdigit() else None
        size = self.state.settings.console_page_size
        entries, next_after = await anyio.to_thread.run_sync(self.run_search, f, after, size)
        base = urlencode(f)
        return Page(
            "search.html",
            {
                "f": f,
                "entries": entries,
                "next_url": f"/console/search?{urlencode({**f, 'after': next_after})}"
                if next_after is not None
                else "",
                "first_url": f"/console/search?{base}" if after is not None else "",
                "query": base,
                "purposes": sorted(self.state.policy.purposes),
                "error": "",
            },
            subjects=[f["subject"]] if "subject" in f else [],
            details={"filters": {k: v for k, v in f.items() if k != "subject"}, "after": after},
        )

    async def find(self, request: Request) -> Response:
        """The resident form: the ID number is posted (never in a URL, so never in an access log), turned into
        the pseudonym here, and the officer is sent to the search or the timeline for that pseudonym."""
        posted = await self.posted(request)
        if isinstance(posted, Response):
            return posted
        officer, form = posted
        id_number = str(form.get("id_number", "")).strip().upper()
        problem = id_problem(id_number)
        if problem:
            await self.record(request, officer.name, officer.department, "find", "deny", 400, reason="BAD_ID_NUMBER")
            return self.render(request, "error.html", 400, code="BAD_ID_NUMBER", message=f"ID number: {problem}")
        subject = str(self.state.audit.pseudonym(id_number))
        target = "timeline" if form.get("view") == "timeline" else "search"
        url = f"/console/resident/{subject}" if target == "timeline" else f"/console/search?subject={subject}"
        return RedirectResponse(url, status_code=303)

    def proofs(self, seqs: list[int]) -> tuple[SignedHead | None, dict[int, dict[str, Any]]]:
        head, _ = self.latest_head()
        if head is None:
            return None, {}
        tree = self.state.audit.tree()
        out = {}
        for seq in seqs:
            if seq < head.tree_size:
                out[seq] = {
                    "leaf_hash": tree.leaf(seq).hex(),
                    "path": [p.hex() for p in tree.inclusion_proof(seq, head.tree_size)],
                    "tree_size": head.tree_size,
                }
        return head, out

    async def export(self, request: Request, officer: Officer) -> Page:
        f = self.filters(request)
        kind = request.path_params["kind"]
        if kind not in ("csv", "json"):
            raise EntryNotFound("export as search.csv or search.json")
        size = self.state.settings.console_page_size

        def collect() -> tuple[list[FoundEntry], bool]:
            out: list[FoundEntry] = []
            cursor: int | None = None
            for _ in range(EXPORT_PAGES):
                page, cursor = self.run_search(f, cursor, size)
                out.extend(page)
                if cursor is None:
                    return out, False
            return out, True

        entries, cut = await anyio.to_thread.run_sync(collect)
        details = {"filters": {k: v for k, v in f.items() if k != "subject"}, "export": kind, "entries": len(entries)}
        subjects = [f["subject"]] if "subject" in f else []
        headers = {"content-disposition": f'attachment; filename="hub-audit-search.{kind}"'}
        if kind == "csv":
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(
                [
                    "seq",
                    "at",
                    "department",
                    "client_id",
                    "officer",
                    "purpose",
                    "case_ref",
                    "decision",
                    "fields",
                    "flags",
                ]
            )
            for e in entries:
                x = e.entry
                w.writerow(
                    [
                        x["seq"], x["at"], x["department"], x["client_id"], x["officer"], x["purpose"],
                        x["case_ref"], x["decision"], " ".join(fd["coordinate"] for fd in x.get("fields", [])),
                        " ".join(e.flags),
                    ]
                )  # fmt: skip
            response: Response = Response(buf.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
        else:
            head, proofs = await anyio.to_thread.run_sync(self.proofs, [e.seq for e in entries])
            doc = {
                "format": "hub-console-search/v1",
                "filters": f,
                "truncated": cut,
                "head": head.to_json() if head else None,
                "entries": [{"entry": e.entry, "flags": e.flags, "proof": proofs.get(e.seq)} for e in entries],
            }
            response = Response(json.dumps(doc, ensure_ascii=False), media_type="application/json", headers=headers)
        return Page(response=response, subjects=subjects, details=details)

    async def entry(self, request: Request, officer: Officer) -> Page:
        seq = int(request.path_params["seq"])

        def read() -> dict[str, Any]:
            t = audit_entries
            with self.state.engine.connect() as conn:
                row = conn.execute(select(t.c.entry, t.c.leaf_hash).where(t.c.seq == seq)).first()
                if row is None:
                    raise EntryNotFound(f"no entry {seq} in the log (archived entries are read from the archive files)",
                                   )  # fmt: skip
                text, stored_leaf = str(row[0]), bytes(row[1])
                entry = json.loads(text)
                flags = flags_for(conn, entry)
            head, head_ok = self.latest_head()
            check: dict[str, Any] = {"head": head, "head_ok": head_ok, "covered": False, "ok": False, "problem": ""}
            if head is not None and seq < head.tree_size:
                tree = self.state.audit.tree()
                path = tree.inclusion_proof(seq, head.tree_size)
                leaf = leaf_hash(text.encode())
                check.update(covered=True, leaf=leaf.hex(), path=[p.hex() for p in path])
                try:
                    if leaf != stored_leaf or leaf != tree.leaf(seq):
                        raise ProofError("the entry's text does not hash to its stored leaf")
                    verify_inclusion(leaf, seq, head.tree_size, path, head.root_hash)
                    if not head_ok:
                        raise ProofError("the tree head's signature does not verify with the audit public key")
                    check["ok"] = True
                except ProofError as e:
                    check["problem"] = str(e)
            return {"entry": entry, "flags": flags, "check": check}

        values = await anyio.to_thread.run_sync(read)
        values["searched"] = request.query_params.get("subject", "")
        values["fingerprint"] = key_fingerprint(load_public_key(self.state.keys.audit_public_path))
        return Page("entry.html", values, details={"seq": seq})

    async def sign_now(self, request: Request) -> Response:
        posted = await self.posted(request)
        if isinstance(posted, Response):
            return posted
        officer, form = posted
        head = await anyio.to_thread.run_sync(self.state.audit.sign_head)
        await self.record(
            request, officer.name, officer.department, "sign_head", "allow", 200, tree_size=head.tree_size
        )
        back = str(form.get("back", "/console/"))
        return RedirectResponse(back if back.startswith("/console/") else "/console/", status_code=303)

    async def timeline(self, request: Request, officer: Officer) -> Page:
        subject = request.path_params["subject"]
        if not (len(subject) == 64 and set(subject) <= set("0123456789abcdef")):
            raise RequestError("a pseudonym is 64 hex digits; look a resident up with the form", code="BAD_ARGUMENT")
        rows = await anyio.to_thread.run_sync(
            access_report, self.state.engine, subject, 1000, self.state.settings.data_dir
        )
        return Page(
            "timeline.html",
            {"subject": subject, "rows": rows, "printed": self.state.clock().astimezone(CHINA)},
            subjects=[subject],
        )

    async def policies(self, request: Request, officer: Officer) -> Page:
        q = request.query_params
        consumer, purpose = q.get("consumer", ""), q.get("purpose", "")
        rows: list[tuple[str, str, str, str]] = []
        today = china_date(self.state.clock())
        if consumer and purpose:
            rows = await anyio.to_thread.run_sync(explain_rows, self.state.settings, consumer, purpose, today)
        purposes = self.state.policy.purposes
        return Page(
            "policies.html",
            {
                "consumer": consumer,
                "purpose": purpose,
                "rows": rows,
                "purposes": purposes,
                "today": today,
                "visible": sum(1 for r in rows if r[2] == "VISIBLE"),
            },  # fmt: skip
            details={"consumer": consumer, "purpose": purpose},
        )

    # -- alerts (read-only; hub.monitor.alerts) ----------------------------------------------------------
    def alert_values(self, a: Alert) -> dict[str, Any]:
        """What the console shows of an alert: the resident as the audit log's pseudonym, never the ID number."""
        return {"a": a, "pseudonym": str(self.state.audit.pseudonym(a.id_number))}

    async def alerts_view(self, request: Request, officer: Officer) -> Page:
        q = request.query_params
        status, rule = q.get("status", ""), q.get("rule", "")[:20]
        if status and status not in STATUSES:
            raise RequestError(f"status: one of {', '.join(STATUSES)}", code="BAD_ARGUMENT")
        after = q.get("after", "")[:40] or None
        size = self.state.settings.console_page_size
        found, more = await anyio.to_thread.run_sync(
            lambda: self.state.alerts.page("", after=after, first=size, status=status or None, rule_id=rule or None)
        )
        rows = [self.alert_values(a) for a in found]
        f = {k: v for k, v in (("status", status), ("rule", rule)) if v}
        next_url = f"/console/alerts?{urlencode({**f, 'after': found[-1].id})}" if more and found else ""
        return Page(
            "alerts.html",
            {"rows": rows, "chosen": status, "rule": rule, "statuses": STATUSES, "next_url": next_url},
            details={"filters": f, "after": after, "alerts": len(rows)},
        )

    async def alert_view(self, request: Request, officer: Officer) -> Page:
        alert_id = request.path_params["alert_id"][:40]
        a = await anyio.to_thread.run_sync(self.state.alerts.get, alert_id)
        if a is None:
            raise EntryNotFound(f"no alert {alert_id}")
        values = self.alert_values(a)
        return Page("alert.html", values, subjects=[values["pseudonym"]], details={"alert": a.id})

    # -- approved operations (hub.operations.OperationDesk, as `hub operations`) ---------------------------
    async def operations_view(self, request: Request, officer: Officer) -> Page:
        q = request.query_params
        status, consumer = q.get("status", "pending"), q.get("consumer", "")[:64]
        if status not in ("pending", "approved", "retired", "all"):
            raise RequestError("status: pending, approved, retired or all", code="BAD_ARGUMENT")
        ops = await anyio.to_thread.run_sync(
            lambda: self.state.operations.list(consumer or None, None if status == "all" else status)
        )
        return Page(
            "operations.html",
            {"ops": ops, "chosen": status, "consumer": consumer, "link": operation_link},
            details={"filters": {"status": status, "consumer": consumer}, "operations": len(ops)},
        )

    def operation_ref(self, q: Any) -> tuple[str, str, str]:
        doc, client, purpose = str(q.get("document", "")), str(q.get("consumer", ""))[:64], str(q.get("purpose", ""))
        if not DOCUMENT_ID.match(doc):
            raise RequestError('document: "sha256:" and 64 lowercase hex digits', code="BAD_ARGUMENT")
        return doc, client, purpose[:20]

    async def operation_view(self, request: Request, officer: Officer) -> Page:
        doc, client, purpose = self.operation_ref(request.query_params)
        op = await anyio.to_thread.run_sync(self.state.operations.get, doc, client, purpose)
        if op is None:
            raise EntryNotFound(f"no operation {doc} submitted for client {client} and purpose {purpose}")
        refusals: list[str] = []
        if op.status == "pending":  # what approving would meet: the same check as the approval itself
            refusals = await anyio.to_thread.run_sync(self.would_refuse, op)
        return Page(
            "operation.html",
            {"op": op, "refusals": refusals, "error": ""},
            details={"document_id": doc, "consumer": client, "purpose": purpose},
        )

    def would_refuse(self, op: Operation) -> list[str]:
        from hub.operations import plan_refusals

        client = self.state.clients.get(op.client_id)
        if client is None:
            return [f"no client {op.client_id}"]
        actor = self.desk._actor(op.client_id)
        return plan_refusals(
            self.state.graphql_schema, self.state.catalog, self.state.policy, actor, op.purpose, op.text,
            china_date(self.state.clock()),
        )  # fmt: skip

    async def operation_action(self, request: Request) -> Response:
        """POST /console/operations/approve|retire: the desk's approve or retire, by the signed-in officer. The desk
        writes the audit entry (route ``operations``, the officer named); a refusal is shown and audited too."""
        posted = await self.posted(request)
        if isinstance(posted, Response):
            return posted
        officer, form = posted
        action = request.path_params["action"]
        if action not in ("approve", "retire"):
            return self.render(request, "error.html", 404, code="NOT_FOUND", message="approve or retire")
        try:
            doc, client, purpose = self.operation_ref(form)
            fn = self.desk.approve if action == "approve" else self.desk.retire
            await anyio.to_thread.run_sync(fn, doc, client, purpose, officer.name)
        except HubError as e:
            refusals = e.details.get("refusals", []) if isinstance(e.details, dict) else []
            return self.render(request, "error.html", e.status, code=e.code, message=e.message, refusals=refusals)
        return RedirectResponse(operation_link(doc, client, purpose), status_code=303)


def china_time(at: datetime | str | None) -> str:
    """An instant as China time, to the minute (SQLite gives naive UTC times; an alert's history, ISO text)."""
    if at is None:
        return ""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def operation_link(doc: str, client: str, purpose: str) -> str:
    return "/console/operation?" + urlencode({"document": doc, "consumer": client, "purpose": purpose})


def console_app(state: HubState) -> Starlette:
    c = Console(state)
    routes = [
        Route("/", c.guarded("overview", c.overview)),
        Route("/login", c.login, methods=["GET", "POST"]),
        Route("/logout", c.logout, methods=["POST"]),
        Route("/search", c.guarded("search", c.search_view)),
        Route("/search.{kind:str}", c.guarded("export", c.export)),
        Route("/find", c.find, methods=["POST"]),
        Route("/entry/{seq:int}", c.guarded("entry", c.entry)),
        Route("/sign", c.sign_now, methods=["POST"]),
        Route("/resident/{subject:str}", c.guarded("timeline", c.timeline)),
        Route("/policies", c.guarded("policies", c.policies)),
        Route("/alerts", c.guarded("alerts", c.alerts_view)),
        Route("/alerts/{alert_id:str}", c.guarded("alert", c.alert_view)),
        Route("/operations", c.guarded("operations", c.operations_view)),
        Route("/operation", c.guarded("operation", c.operation_view)),
        Route("/operations/{action:str}", c.operation_action, methods=["POST"]),
        Route("/oidc/login", c.oidc_login),
        Route("/oidc/callback", c.oidc_callback),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if c.oidc is not None:  # authlib keeps the flow's state, nonce and PKCE verifier in request.session
        middleware.append(
            Middleware(
                SessionMiddleware,
                secret_key=state_secret(state.keys.console_session_key()),
                session_cookie=STATE_COOKIE,
                max_age=STATE_TTL,
                path=STATE_PATH,
                same_site="lax",
                https_only=state.settings.oidc_issuer.startswith("https://"),
            )
        )
    app = Starlette(routes=routes, middleware=middleware)
    app.state.console = c
    return app


__all__ = ["Console", "console_app"]
