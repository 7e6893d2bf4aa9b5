"""``hub`` command line: argument parsing only; every command calls a plain function."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from hub.clock import china_date, system_clock
from hub.errors import ConfigError, HubError
from hub.logs import configure_logging
from hub.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_data_dir(getattr(args, "data_dir", None))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hub.app import create_app

    settings = _settings(args)
    if args.dev:
        settings = settings.replace(dev_mode=True)
    configure_logging(settings.log_format)  # text or JSON lines, with the request id (docs/operations.md)
    app = create_app(settings)
    # uvicorn's loggers go through the root handler; the hub writes its own access lines (with the request id)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", workers=1, log_config=None, access_log=False)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from hub.demo.setup import prepare_demo

    data_dir = Path(args.data_dir) if args.data_dir else Path(".hub-demo")
    settings = Settings.from_env().replace(data_dir=data_dir, database_url="", dev_mode=True, monitor=True)
    if getattr(args, "demo_sub", None) == "event":
        return cmd_demo_event(args, settings)
    info = prepare_demo(settings, residents=args.residents, seed=args.seed, base_url=f"http://{args.host}:{args.port}")
    print(info)
    if args.no_serve:
        return 0
    import uvicorn

    from hub.app import create_app
    from hub.demo.setup import start_demo_subgraph

    subgraph, settings = start_demo_subgraph(settings, args.host, args.port)  # federation: education as a subgraph
    try:
        configure_logging(settings.log_format)
        app = create_app(settings)
        uvicorn.run(app, host=args.host, port=args.port, log_level="info", log_config=None, access_log=False)
    finally:
        if subgraph is not None:
            subgraph.terminate()
            subgraph.wait(10)
    return 0


def cmd_demo_event(args: argparse.Namespace, settings: Settings) -> int:
    from hub.demo.events import emit_event

    dept, seq = emit_event(
        settings,
        args.kind,
        args.id_number,
        department=args.department,
        on=date.fromisoformat(args.on) if args.on else None,
        category=args.category,
        grade=args.grade,
    )
    print(f"event {dept}:{seq} ({args.kind}) written; the running demo's monitor raises any alert within seconds")
    return 0


def cmd_monitor_install_trigger(args: argparse.Namespace) -> int:
    from hub.monitor.notify import TRIGGER_SQL, install_trigger

    if args.sql:
        print(";\n\n".join(TRIGGER_SQL) + ";")
        return 0
    if not args.url:
        raise ConfigError("give the department database's URL (postgresql+psycopg://...), or --sql to print the SQL")
    install_trigger(args.url)
    print("installed: each new change_events row now NOTIFYs hub_change_events with its sequence number only")
    return 0


def cmd_monitor_sweep(args: argparse.Namespace) -> int:
    import asyncio

    from tqdm import tqdm

    from hub.state import HubState

    async def run() -> None:
        state = HubState(_settings(args))
        try:
            with tqdm(unit="resident", desc="sweep", disable=args.quiet) as bar:

                def total(n: int) -> None:
                    bar.total = n
                    bar.refresh()

                stats = await state.monitor.sweep(
                    batch=args.batch, progress=bar.update, only=args.rule or (), total=total
                )
            rate = stats.residents / stats.seconds if stats.seconds else 0.0
            per_dept = ", ".join(f"{k} {v}" for k, v in sorted(stats.statements.items()))
            print(
                f"swept {stats.residents} residents in {stats.seconds:.1f} s ({rate:.0f} residents/s): "
                f"{stats.alerts} new alerts, {stats.again} already open; {stats.requests} requests; "
                f"statements per department: {per_dept or 'none'}"
            )
        finally:
            state.close()

    asyncio.run(run())
    return 0


def cmd_schema_export(args: argparse.Namespace) -> int:
    from hub.schema import build_schema

    sdl = build_schema().as_str() + "\n"
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


def cmd_schema_diff(args: argparse.Namespace) -> int:
    """Breaking and dangerous changes from OLD to NEW (SDL files); exit status 1 if any is breaking."""
    from hub.schema_versions import diff, load_sdl

    changes = diff(load_sdl(Path(args.old)), load_sdl(Path(args.new)))
    for change in changes:
        print(change)
    if not changes:
        print("no breaking or dangerous changes")
    return 1 if any(c.breaking for c in changes) else 0


def cmd_schema_check(args: argparse.Namespace) -> int:
    """CI gate: a breaking change since the last release needs a new major version and a CHANGELOG section."""
    import tomllib

    from hub.schema_versions import check

    version = args.version
    if version is None:
        version = tomllib.loads(Path(args.pyproject).read_text(encoding="utf-8"))["project"]["version"]
    changes, problems = check(Path(args.schema), Path(args.history), Path(args.changelog), version)
    for change in changes:
        print(change)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(
            f"schema {version}: ok ({sum(c.breaking for c in changes)} breaking, "
            f"{sum(not c.breaking for c in changes)} dangerous change(s) since the last release)"
        )
    return 1 if problems else 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    from hub.monitor.rules import load_rules
    from hub.policy.load import load_policy_set
    from hub.schema import build_schema, catalog_of, graphql_schema

    settings = _settings(args)
    schema = build_schema()
    catalog = catalog_of(schema)
    policy = load_policy_set(settings, catalog)
    today = china_date(system_clock())
    rules = load_rules(settings.policy_dir / "monitoring", graphql_schema(schema), catalog, policy, today)
    print(
        f"policies OK: {len(policy.purposes)} purposes, {len(policy.grants)} grants, "
        f"{sum(len(v) for v in policy.table.values())} (consumer, purpose, field) entries; "
        f"{len(rules.rules)} monitoring rules, {len(rules.programmes)} programmes"
    )
    return 0


def cmd_policy_explain(args: argparse.Namespace) -> int:
    from hub.policy.explain import explain

    print(
        explain(
            _settings(args),
            args.consumer,
            args.purpose,
            date.fromisoformat(args.date) if args.date else china_date(system_clock()),
        )
    )
    return 0


def _clients(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from hub.db import open_hub_db
    from hub.store.clients import ClientStore

    s = _settings(args)
    return ClientStore(open_hub_db(s.database_url), scrypt_n=s.client_secret_scrypt_n), s


def _admin(args: argparse.Namespace, action: str, **what: str) -> None:
    """The change just made is an audit entry (hub/admin.py)."""
    from hub.admin import record_admin

    record_admin(_settings(args), action, **what)


def cmd_clients_add(args: argparse.Namespace) -> int:
    from hub.policy.load import load_policy_set

    store, s = _clients(args)
    known = set(load_policy_set(s).purposes)
    client, secret = store.add(
        args.client_id,
        args.department,
        args.area,
        args.purposes.split(","),
        roles=[r for r in (args.roles or "").split(",") if r],
        known_purposes=known,
    )
    _admin(
        args,
        "client-add",
        client_id=client.client_id,
        department=client.department,
        area=client.area,
        purposes=",".join(client.purposes),
        roles=",".join(client.roles),
    )
    print(
        json.dumps(
            {
                "client_id": client.client_id,
                "client_secret": secret,
                "note": "the secret is shown once; only its hash is stored",
            },
            ensure_ascii=False,
        )
    )
    return 0


def cmd_clients_list(args: argparse.Namespace) -> int:
    store, _ = _clients(args)
    for c in store.list():
        print(
            f"{c.client_id:32} {c.department:18} {c.area:8} {','.join(c.purposes):18} {','.join(c.roles):14} {c.status}"
        )
    return 0


def cmd_clients_disable(args: argparse.Namespace) -> int:
    store, _ = _clients(args)
    store.disable(args.client_id)
    _admin(args, "client-disable", client_id=args.client_id)
    print(f"disabled {args.client_id}")
    return 0


def cmd_clients_enable(args: argparse.Namespace) -> int:
    store, _ = _clients(args)
    store.enable(args.client_id)
    _admin(args, "client-enable", client_id=args.client_id)
    print(f"enabled {args.client_id}")
    return 0


def cmd_clients_update(args: argparse.Namespace) -> int:
    from hub.policy.load import load_policy_set

    store, s = _clients(args)
    purposes = args.purposes.split(",") if args.purposes is not None else None
    roles = [r for r in args.roles.split(",") if r] if args.roles is not None else None
    client = store.update(
        args.client_id, purposes=purposes, roles=roles, known_purposes=set(load_policy_set(s).purposes)
    )
    changed = {"purposes": ",".join(client.purposes), "roles": ",".join(client.roles)}
    _admin(args, "client-update", client_id=client.client_id, **changed)
    print(f"{client.client_id}: purposes {','.join(client.purposes)}; roles {','.join(client.roles) or '-'}")
    return 0


def cmd_clients_rotate(args: argparse.Namespace) -> int:
    store, _ = _clients(args)
    secret = store.rotate_secret(args.client_id)
    _admin(args, "client-rotate-secret", client_id=args.client_id)
    print(json.dumps({"client_id": args.client_id, "client_secret": secret}))
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from hub.auth.keys import KeyRing

    s = _settings(args)
    ring = KeyRing(s.key_dir)
    key = ring.rotate()
    dropped = ring.prune(s.token_ttl)
    _admin(args, "keys-rotate", kid=key.kid, dropped=",".join(dropped))
    print(f"new token key {key.kid}; retired keys dropped: {', '.join(dropped) or 'none'}")
    return 0


def cmd_keys_rotate_digest(args: argparse.Namespace) -> int:
    from hub.auth.keys import KeyRing

    kid = KeyRing(_settings(args).key_dir).rotate_digest_key()
    _admin(args, "keys-rotate-digest", kid=kid)
    print(f"new audit digest key {kid}; restart the hub to use it (older keys are kept for older entries)")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from hub.db import upgrade

    upgrade(_settings(args).database_url)
    print("hub database is at the latest migration")
    return 0


def cmd_authz_add(args: argparse.Namespace) -> int:
    from hub.db import open_hub_db
    from hub.store.authorizations import AuthorizationStore

    s = _settings(args)
    a = AuthorizationStore(open_hub_db(s.database_url)).record(
        args.household,
        args.department,
        args.signer,
        date.fromisoformat(args.valid_from),
        date.fromisoformat(args.valid_to),
        args.document_sha256,
        args.recorded_by,
    )
    _admin(args, "authorization-add", department=a.department, authorization=str(a.id), recorded_by=a.recorded_by)
    print(json.dumps({"id": a.id, "household_id": a.household_id, "valid_to": a.valid_to.isoformat()}))
    return 0


def cmd_authz_list(args: argparse.Namespace) -> int:
    from hub.db import open_hub_db
    from hub.store.authorizations import AuthorizationStore

    s = _settings(args)
    for a in AuthorizationStore(open_hub_db(s.database_url)).list(args.household):
        state = "revoked" if a.revoked else "valid"
        print(f"{a.id:6} {a.household_id:16} {a.department:16} {a.valid_from} {a.valid_to} {state}")
    return 0


def cmd_authz_revoke(args: argparse.Namespace) -> int:
    from hub.db import open_hub_db
    from hub.store.authorizations import AuthorizationStore

    s = _settings(args)
    AuthorizationStore(open_hub_db(s.database_url)).revoke(args.id)
    _admin(args, "authorization-revoke", authorization=str(args.id))
    print(f"revoked authorization {args.id}")
    return 0


def _desk(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The approved-operations desk of the configured hub: its database, policies, schema and audit log."""
    import time
    import uuid

    from hub.audit.store import open_audit_log
    from hub.gateway import Exchange, audit_body
    from hub.operations import OperationDesk
    from hub.policy.load import load_policy_set
    from hub.schema import build_schema, catalog_of, graphql_schema
    from hub.store.clients import ClientStore
    from hub.store.operations import OperationStore

    s = _settings(args)
    audit = open_audit_log(s)
    schema = build_schema()
    catalog = catalog_of(schema)
    return OperationDesk(
        OperationStore(audit.engine),
        ClientStore(audit.engine),
        graphql_schema(schema),
        catalog,
        load_policy_set(s, catalog),
        record=lambda body: audit.write([(body, [])]),
        blank_entry=lambda: audit_body(Exchange(request_id=uuid.uuid4().hex, started=time.perf_counter())),
        today=lambda: china_date(system_clock()),
    )


def _operation_line(op) -> str:  # type: ignore[no-untyped-def]
    decided = f"approved by {op.approved_by}" if op.approved_by else ""
    if op.retired_by:
        decided = f"retired by {op.retired_by}"
    return f"{op.document_id} {op.client_id:24} {op.purpose:6} {op.status:9} {decided}".rstrip()


def cmd_operations_submit(args: argparse.Namespace) -> int:
    text = Path(args.file).read_text(encoding="utf-8") if args.file != "-" else sys.stdin.read()
    op = _desk(args).submit(args.client, args.purpose, text, args.by)
    print(_operation_line(op))
    return 0


def cmd_operations_list(args: argparse.Namespace) -> int:
    desk = _desk(args)
    for op in desk.store.list(args.client, args.status):
        print(_operation_line(op))
    return 0


def cmd_operations_approve(args: argparse.Namespace) -> int:
    print(_operation_line(_desk(args).approve(args.document_id, args.client, args.purpose, args.by)))
    return 0


def cmd_operations_retire(args: argparse.Namespace) -> int:
    print(_operation_line(_desk(args).retire(args.document_id, args.client, args.purpose, args.by)))
    return 0


def cmd_operations_mode(args: argparse.Namespace) -> int:
    _desk(args).set_mode(args.client, args.mode, args.by)
    print(f"{args.client}: operations mode {args.mode}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hub", description="GraphQL data-sharing hub for social assistance")
    p.add_argument("--data-dir", help="override HUB_DATA_DIR")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve the hub")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--dev", action="store_true", help="enable GraphiQL and introspection")
    s.set_defaults(fn=cmd_serve)

    d = sub.add_parser("demo", help="generate synthetic department databases, register demo clients, serve")
    d.add_argument("--residents", type=int, default=10_000)
    d.add_argument("--seed", type=int, default=20241)
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8000)
    d.add_argument("--no-serve", action="store_true", help="prepare everything, then exit")
    d.set_defaults(fn=cmd_demo)
    dsub = d.add_subparsers(dest="demo_sub")
    dev = dsub.add_parser("event", help="write a change event into a department's outbox, as the department would")
    dev.add_argument("kind", help="e.g. disability_changed, death_registered, hospital_discharge")
    dev.add_argument("id_number")
    dev.add_argument("--department", help="default: the department that publishes the kind")
    dev.add_argument("--on", help="date it happened (YYYY-MM-DD); default today")
    dev.add_argument("--category", type=int, help="disability_changed: new category (1-7)")
    dev.add_argument("--grade", type=int, help="disability_changed: new grade (1-4); updates the certificate")

    mo = sub.add_parser("monitor", help="monitoring rules and alerts").add_subparsers(dest="sub", required=True)
    sw = mo.add_parser("sweep", help="re-evaluate every sweep rule over the whole low-income population")
    sw.add_argument("--batch", type=int, help="residents per request (default HUB_MAX_BATCH)")
    sw.add_argument("--rule", action="append", help="only this rule (repeatable)")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(fn=cmd_monitor_sweep)
    tr = mo.add_parser(
        "install-trigger",
        help="add the NOTIFY trigger to a PostgreSQL department's change_events outbox (with the department's rights)",
    )
    tr.add_argument("url", nargs="?", help="the department database's URL, as a role that may create triggers")
    tr.add_argument("--sql", action="store_true", help="print the SQL for the department's DBA instead")
    tr.set_defaults(fn=cmd_monitor_install_trigger)

    sc = sub.add_parser("schema", help="schema commands").add_subparsers(dest="sub", required=True)
    e = sc.add_parser("export", help="print the schema (SDL)")
    e.add_argument("-o", "--output", default="-")
    e.set_defaults(fn=cmd_schema_export)

    dif = sc.add_parser("diff", help="breaking and dangerous changes between two SDL files (exit 1 if breaking)")
    dif.add_argument("old")
    dif.add_argument("new")
    dif.set_defaults(fn=cmd_schema_diff)
    chk = sc.add_parser("check", help="CI: breaking changes since the last release need a version and CHANGELOG")
    chk.add_argument("--schema", default="schema.graphql")
    chk.add_argument("--history", default="schema-history", help="folder of released schemas, <version>.graphql")
    chk.add_argument("--changelog", default="CHANGELOG.md")
    chk.add_argument("--pyproject", default="pyproject.toml", help="where the version is read from")
    chk.add_argument("--version", help="the version being built (default: pyproject's)")
    chk.set_defaults(fn=cmd_schema_check)
    po = sub.add_parser("policy", help="policy commands").add_subparsers(dest="sub", required=True)
    po.add_parser("check", help="validate policies/").set_defaults(fn=cmd_policy_check)
    ex = po.add_parser("explain", help="every field and why it is or is not visible")
    ex.add_argument("--consumer", required=True)
    ex.add_argument("--purpose", required=True)
    ex.add_argument("--date", help="evaluate on this date (YYYY-MM-DD); default today")
    ex.set_defaults(fn=cmd_policy_explain)

    cl = sub.add_parser("clients", help="client registry").add_subparsers(dest="sub", required=True)
    a = cl.add_parser("add")
    a.add_argument("client_id")
    a.add_argument("--department", required=True)
    a.add_argument("--area", required=True)
    a.add_argument("--purposes", required=True, help="comma-separated purpose ids")
    a.add_argument("--roles", help="comma-separated roles (officer, authorization_clerk)")
    a.set_defaults(fn=cmd_clients_add)
    cl.add_parser("list").set_defaults(fn=cmd_clients_list)
    dis = cl.add_parser("disable")
    dis.add_argument("client_id")
    dis.set_defaults(fn=cmd_clients_disable)
    en = cl.add_parser("enable")
    en.add_argument("client_id")
    en.set_defaults(fn=cmd_clients_enable)
    up = cl.add_parser("update", help="change a client's purposes or roles (takes effect on the next request)")
    up.add_argument("client_id")
    up.add_argument("--purposes", help="comma-separated purpose ids")
    up.add_argument("--roles", help="comma-separated roles ('' for none)")
    up.set_defaults(fn=cmd_clients_update)
    rot = cl.add_parser("rotate-secret")
    rot.add_argument("client_id")
    rot.set_defaults(fn=cmd_clients_rotate)

    k = sub.add_parser("keys", help="signing keys").add_subparsers(dest="sub", required=True)
    k.add_parser("rotate", help="new token signing key; old one kept until its tokens expire").set_defaults(
        fn=cmd_keys_rotate
    )
    k.add_parser(
        "rotate-audit-digest", help="new key for audit entries' request/result digests; old ones kept"
    ).set_defaults(fn=cmd_keys_rotate_digest)

    db = sub.add_parser("db", help="hub database").add_subparsers(dest="sub", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(fn=cmd_db_upgrade)

    au = sub.add_parser("authorizations", help="household authorizations (核对授权书)").add_subparsers(
        dest="sub", required=True
    )
    aa = au.add_parser("add")
    aa.add_argument("household")
    aa.add_argument("--department", default="civil_affairs")
    aa.add_argument("--signer", required=True)
    aa.add_argument("--valid-from", required=True)
    aa.add_argument("--valid-to", required=True)
    aa.add_argument("--document-sha256", required=True)
    aa.add_argument("--recorded-by", required=True)
    aa.set_defaults(fn=cmd_authz_add)
    al = au.add_parser("list")
    al.add_argument("--household")
    al.set_defaults(fn=cmd_authz_list)
    ar = au.add_parser("revoke")
    ar.add_argument("id", type=int)
    ar.set_defaults(fn=cmd_authz_revoke)

    op = sub.add_parser("operations", help="approved operations (persisted documents)").add_subparsers(
        dest="sub", required=True
    )
    osub = op.add_parser("submit", help="submit a document a consumer needs (pending until approved)")
    osub.add_argument("--client", required=True)
    osub.add_argument("--purpose", required=True)
    osub.add_argument("--file", required=True, help="the document's exact text ('-': standard input)")
    osub.add_argument("--by", required=True, help="who submits it")
    osub.set_defaults(fn=cmd_operations_submit)
    olist = op.add_parser("list")
    olist.add_argument("--client")
    olist.add_argument("--status", choices=["pending", "approved", "retired"])
    olist.set_defaults(fn=cmd_operations_list)
    for name, fn, what in (
        ("approve", cmd_operations_approve, "approve a pending document (refused if the policies would deny it)"),
        ("retire", cmd_operations_retire, "retire a document: it no longer runs"),
    ):
        oa = op.add_parser(name, help=what)
        oa.add_argument("document_id", help="sha256:<hex>")
        oa.add_argument("--client", required=True)
        oa.add_argument("--purpose", required=True)
        oa.add_argument("--by", required=True, help="the privacy officer")
        oa.set_defaults(fn=fn)
    om = op.add_parser("mode", help="off: any document; log: log unapproved ones; require: approved ones only")
    om.add_argument("client")
    om.add_argument("mode", choices=["off", "log", "require"])
    om.add_argument("--by", required=True)
    om.set_defaults(fn=cmd_operations_mode)

    from hub.audit.cli import add_audit_commands

    add_audit_commands(sub)
    from hub.audit.witness import add_witness_commands

    add_witness_commands(sub)
    from hub.console.cli import add_console_commands

    add_console_commands(sub)
    return p


# Commands that read what a hub already holds (its database, keys, officers): run where there is none, they say
# so instead of printing nothing or creating an empty hub. Commands that set a hub up (serve, demo, db upgrade,
# clients add, keys, authorizations add, console add-officer) may create it. None: every subcommand.
READS_HUB_DATA: dict[str, frozenset[str] | None] = {
    "audit": None,
    "clients": frozenset({"list", "disable", "enable", "update", "rotate-secret"}),
    "authorizations": frozenset({"list", "revoke"}),
    "operations": None,
    "monitor": frozenset({"sweep"}),
    "console": frozenset({"list-officers", "disable-officer"}),
}
DEMO_DIR = Path(".hub-demo")  # where `hub demo` writes by default


def check_hub_data(args: argparse.Namespace, env: dict[str, str] | None = None) -> None:
    """``NO_HUB_DATA`` when the command reads a hub's data and its SQLite database is not there: the message
    says where the CLI looked, why there, and how to point it at the demo's data."""
    subs = READS_HUB_DATA.get(args.command, frozenset())
    if subs is not None and getattr(args, "sub", None) not in subs:
        return
    if args.command == "audit" and getattr(args, "file", None):  # `hub audit verify --file`: offline
        return
    environ = os.environ if env is None else env
    settings = _settings(args)
    if not settings.database_url.startswith("sqlite:///"):
        return  # another database (PostgreSQL): the command itself reports what is missing
    db = Path(settings.database_url.removeprefix("sqlite:///"))
    if db.is_file():
        return
    if getattr(args, "data_dir", None):
        why = "given with --data-dir"
    elif "HUB_DATA_DIR" in environ:
        why = "from HUB_DATA_DIR"
    else:
        why = "the default: neither --data-dir nor HUB_DATA_DIR was given"
    hint = (
        f"the demo's data is in {DEMO_DIR}/: run `hub --data-dir {DEMO_DIR} {args.command} ...`"
        if (DEMO_DIR / "hub.sqlite").is_file()
        else f"for the demo, run `hub demo` (it writes {DEMO_DIR}/) and then `hub --data-dir {DEMO_DIR} "
        f"{args.command} ...`"
    )
    raise ConfigError(
        f"no hub data in {settings.data_dir.resolve()} ({why}; looked for {db.name} there). "
        f"Point the command at a hub with `hub --data-dir DIR` or HUB_DATA_DIR=DIR; {hint}",
        code="NO_HUB_DATA",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The ``hub`` entry point. Output piped into a reader that stops early (``| head``) ends the command
    quietly with status 141 (as SIGPIPE would), as the Python documentation on SIGPIPE recommends."""
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at devnull so that flush cannot fail a second time
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_hub_data(args)
        return int(args.fn(args))
    except HubError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
