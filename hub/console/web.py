"""The console's routes (mounted at ``/console`` by ``hub.app``).

Officers sign in as people (local accounts, ``hub.console.officers``); the session cookie is signed with the key
ring's console key, ``HttpOnly`` and ``SameSite=Strict``; every form carries a CSRF token; every page carries a
strict Content-Security-Policy (no script at all). Each page an officer opens is itself an audit entry (purpose
AUDIT, the officer named, the residents looked up as pseudonyms), written before the page is sent: if the log
cannot take it, the page is not shown. The data come from ``hub.audit.query`` and ``hub.audit.head``; nothing
here searches or verifies the log a second way.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
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
from hub.console.officers import Officer, OfficerStore
from hub.db import audit_entries, witnessed_checkpoints
from hub.departments import DEPARTMENTS
from hub.errors import AuditUnavailable, ForbiddenError, HubError, RequestError
from hub.gateway import Exchange, audit_body
from hub.ids import id_problem
from hub.policy.explain import explain_rows
from hub.state import HubState

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
        self.officers = OfficerStore(state.settings.data_dir)
        self.signer = URLSafeTimedSerializer(state.keys.console_session_key(), salt="hub-console-session")
        self.failures = FailedAttempts(state.settings.token_failures_per_client, state.settings.token_failure_window)
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
        self.env.globals["DEPARTMENTS"] = DEPARTMENTS
        self.env.globals["FLAGS"] = FLAGS
        self.env.globals["DECISIONS"] = DECISIONS

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
        if self.failures.retry_after(name) > 0:
            return self.render(request, "login.html", status=429, error="locked")
        officer = await anyio.to_thread.run_sync(self.officers.authenticate, name, password)
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
        officer = self.officer(request)
        if officer is None:
            return RedirectResponse("/console/login", status_code=303)
        ok, form = await self.csrf_ok(request)
        if not ok:
            return self.expired(request)
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
        officer = self.officer(request)
        if officer is None:
            return RedirectResponse("/console/login", status_code=303)
        ok, form = await self.csrf_ok(request)
        if not ok:
            return self.expired(request)
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
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.console = c
    return app


__all__ = ["Console", "console_app"]
