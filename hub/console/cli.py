"""``hub console ...``: local officer accounts for the console (docs/console.md)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from hub.console.officers import OFFICER_ROLE, OfficerStore
from hub.errors import RequestError
from hub.settings import Settings


def _store(args: argparse.Namespace) -> OfficerStore:
    return OfficerStore(Settings.from_env().with_data_dir(getattr(args, "data_dir", None)).data_dir)


def cmd_add_officer(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise RequestError("the passwords differ", code="BAD_ARGUMENT")
    roles = tuple(r for r in args.roles.split(",") if r)
    officer = _store(args).add(args.name, password, department=args.department, roles=roles)
    print(f"added {officer.name} ({officer.department}; roles {','.join(officer.roles)})")
    return 0


def cmd_list_officers(args: argparse.Namespace) -> int:
    for o in _store(args).list():
        print(f"{o.name:32} {o.department:18} {','.join(o.roles):14} {o.status}")
    return 0


def cmd_disable_officer(args: argparse.Namespace) -> int:
    _store(args).set_status(args.name, "disabled")
    print(f"disabled {args.name}")
    return 0


def add_console_commands(sub: Any) -> None:
    co = sub.add_parser("console", help="the privacy officers' console").add_subparsers(dest="sub", required=True)
    a = co.add_parser("add-officer", help="add a local officer account (password hashed with scrypt)")
    a.add_argument("name")
    a.add_argument("--department", default="audit_office")
    a.add_argument("--roles", default=OFFICER_ROLE, help=f"comma-separated; only {OFFICER_ROLE!r} opens the console")
    a.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    a.set_defaults(fn=cmd_add_officer)
    co.add_parser("list-officers").set_defaults(fn=cmd_list_officers)
    d = co.add_parser("disable-officer")
    d.add_argument("name")
    d.set_defaults(fn=cmd_disable_officer)
