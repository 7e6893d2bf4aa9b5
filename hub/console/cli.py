"""``hub officers ...``: the console's officer accounts in the hub database (docs/console.md).

``hub console add-officer|list-officers|disable-officer`` are kept as aliases of ``hub officers add|list|disable``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from hub.errors import RequestError
from hub.settings import Settings
from hub.store.officers import OFFICER_ROLE, ROLES, OfficerStore


def _store(args: argparse.Namespace) -> OfficerStore:
    from hub.db import open_hub_db

    s = Settings.from_env().with_data_dir(getattr(args, "data_dir", None))
    from hub.auth.keys import KeyRing

    seal = KeyRing(s.key_dir).totp_seal_key()
    store = OfficerStore(open_hub_db(s.database_url), scrypt_n=s.client_secret_scrypt_n, seal_key=seal)
    legacy = s.data_dir / "console" / "officers.json"
    if legacy.exists():  # the accounts of a hub before 0007 (also done by the hub at start)
        for login in store.import_json(legacy):
            print(f"imported {login} from {legacy}", file=sys.stderr)
    return store


def _admin(args: argparse.Namespace, action: str, officer: str, **what: str) -> None:
    """The change just made to an officer account is an audit entry (hub/admin.py); no password or TOTP seed."""
    from hub.admin import record_admin

    record_admin(Settings.from_env().with_data_dir(getattr(args, "data_dir", None)), action, account=officer, **what)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != password:
        raise RequestError("the passwords differ", code="BAD_ARGUMENT")
    return password


def _enrolled(login: str, uri: str) -> None:
    print(f"TOTP enrolled for {login}. Add it to an authenticator app now; it is not shown again:")
    print(uri)


def cmd_add(args: argparse.Namespace) -> int:
    store = _store(args)
    password = None if args.no_password else _password(args)
    roles = tuple(r for r in args.roles.split(",") if r)
    officer = store.add(
        args.name,
        password,
        display_name=args.display_name,
        department=args.department,
        roles=roles,
        oidc_subject=args.oidc_subject,
    )
    _admin(args, "officer-add", officer.login, roles=",".join(officer.roles), account_department=officer.department)
    print(f"added {officer.login} ({officer.department}; roles {','.join(officer.roles)})")
    if args.totp:
        _enrolled(officer.login, store.enrol_totp(officer.login))
        _admin(args, "officer-totp-enrol", officer.login)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for o in _store(args).list():
        sign_in = ",".join(
            x for x, on in (("password", o.has_password), ("totp", o.has_totp), ("oidc", bool(o.oidc_subject))) if on
        )
        print(f"{o.login:32} {o.department:18} {','.join(o.roles):18} {o.status:9} {sign_in or '-'}")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    _store(args).set_disabled(args.name, True)
    _admin(args, "officer-disable", args.name)
    print(f"disabled {args.name}")
    return 0


def cmd_enable(args: argparse.Namespace) -> int:
    _store(args).set_disabled(args.name, False)
    _admin(args, "officer-enable", args.name)
    print(f"enabled {args.name}")
    return 0


def cmd_set_password(args: argparse.Namespace) -> int:
    store = _store(args)
    if store.get(args.name) is None:
        raise RequestError(f"no officer {args.name!r}", code="NOT_FOUND")
    store.set_password(args.name, _password(args))
    _admin(args, "officer-set-password", args.name)
    print(f"password set for {args.name}")
    return 0


def cmd_totp(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.remove:
        store.remove_totp(args.name)
        _admin(args, "officer-totp-remove", args.name)
        print(f"TOTP removed for {args.name}")
    else:
        _enrolled(args.name, store.enrol_totp(args.name))
        _admin(args, "officer-totp-enrol", args.name)
    return 0


def cmd_set_subject(args: argparse.Namespace) -> int:
    _store(args).set_subject(args.name, args.subject)
    _admin(args, "officer-set-subject", args.name)
    print(f"{args.name}: identity-provider subject {args.subject or '(none)'}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    _store(args)  # imports <data_dir>/console/officers.json if it is still there
    return 0


def _add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the officer's login")
    p.add_argument("--display-name", default="")
    p.add_argument("--department", default="audit_office")
    p.add_argument("--roles", default=OFFICER_ROLE, help=f"comma-separated of {', '.join(ROLES)}; only "
                   f"{OFFICER_ROLE!r} opens the console")  # fmt: skip
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.add_argument("--no-password", action="store_true", help="no local password: identity-provider sign-in only")
    p.add_argument("--totp", action="store_true", help="enrol a TOTP authenticator (prints the otpauth URI once)")
    p.add_argument("--oidc-subject", default=None, help="the identity provider's claim value (HUB_OIDC_CLAIM)")
    p.set_defaults(fn=cmd_add)


def register(sub: Any) -> None:
    """``hub officers ...`` and the older ``hub console ...`` aliases."""
    of = sub.add_parser("officers", help="the console's officer accounts").add_subparsers(dest="sub", required=True)
    _add_parser(of.add_parser("add", help="add an officer account (password hashed with scrypt)"))
    of.add_parser("list", help="list the officer accounts").set_defaults(fn=cmd_list)
    for name, fn, text in (
        ("disable", cmd_disable, "disable an account (signed out at the next page)"),
        ("enable", cmd_enable, "enable a disabled account"),
    ):
        p = of.add_parser(name, help=text)
        p.add_argument("name")
        p.set_defaults(fn=fn)
    p = of.add_parser("set-password", help="set an officer's password")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(fn=cmd_set_password)
    p = of.add_parser("totp", help="enrol (or --remove) a TOTP authenticator; prints the otpauth URI once")
    p.add_argument("name")
    p.add_argument("--remove", action="store_true")
    p.set_defaults(fn=cmd_totp)
    p = of.add_parser("set-subject", help="map an identity-provider subject (HUB_OIDC_CLAIM's value) to an account")
    p.add_argument("name")
    p.add_argument("subject", nargs="?", default="")
    p.set_defaults(fn=cmd_set_subject)
    p = of.add_parser("import-json", help="import <data_dir>/console/officers.json (the hub also does at start)")
    p.set_defaults(fn=cmd_import)

    co = sub.add_parser("console", help="the privacy officers' console (aliases of `hub officers`)")
    cs = co.add_subparsers(dest="sub", required=True)
    _add_parser(cs.add_parser("add-officer", help="= hub officers add"))
    cs.add_parser("list-officers", help="= hub officers list").set_defaults(fn=cmd_list)
    d = cs.add_parser("disable-officer", help="= hub officers disable")
    d.add_argument("name")
    d.set_defaults(fn=cmd_disable)


add_console_commands = register  # the name hub/cli.py calls
