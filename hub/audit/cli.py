"""``hub audit ...`` commands (verify, export, subject, sign)."""

from __future__ import annotations

import argparse
from typing import Any


def add_audit_commands(sub: Any) -> None:
    au = sub.add_parser("audit", help="audit log").add_subparsers(dest="sub", required=True)
    sign = au.add_parser("sign", help="sign a tree head now")
    sign.set_defaults(fn=cmd_sign)


def cmd_sign(args: argparse.Namespace) -> int:
    from hub.audit.store import open_audit_log
    from hub.cli import _settings

    head = open_audit_log(_settings(args)).sign_head()
    print(f"signed tree head: size {head.tree_size}, root {head.root_hash.hex()}")
    return 0
