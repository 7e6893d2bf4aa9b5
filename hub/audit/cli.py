"""``hub audit ...`` commands: verify, search, export, archive, subject, sign, prove.

Exit codes: 0 success; 1 verification failed (the problem names the first bad entry); 2 usage or
configuration error (``error [CODE]: message`` on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.audit.search import DECISIONS, FLAGS
from hub.clock import CHINA
from hub.errors import ConfigError, RequestError
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.audit.store import AuditStore


def add_audit_commands(sub: Any) -> None:
    au = sub.add_parser("audit", help="audit log").add_subparsers(dest="sub", required=True)

    v = au.add_parser("verify", help="verify the audit log (or an export file) and its signed tree heads")
    v.add_argument("--file", help="verify this export/archive file offline instead of the database")
    v.add_argument("--public-key", help="the audit public key (PEM) you trust; default: the one in the key folder")
    v.add_argument("--checkpoint", help="a witnessed C2SP checkpoint file: the log must extend it")
    v.add_argument(
        "--witness-key",
        action="append",
        default=[],
        help="the verifier key (vkey) of a witness whose cosignature the checkpoint must carry (repeatable)",
    )
    v.set_defaults(fn=cmd_verify)

    cp = au.add_parser("checkpoint", help="print the latest checkpoint (C2SP tlog-checkpoint) with cosignatures")
    cp.add_argument("--size", type=int, help="a signed tree size (default: the latest)")
    cp.add_argument("--vkey", action="store_true", help="print the log's verifier key (for witnesses) instead")
    cp.add_argument("--witnessed", action="store_true", help="list the cosignatures received from witnesses")
    cp.set_defaults(fn=cmd_checkpoint)

    se = au.add_parser(
        "search",
        help="entries matching filters, oldest first, as a table (or JSON lines with --json)",
        description="Dates are China dates (YYYY-MM-DD; --until includes its day) or ISO times. "
        "Filters combine with AND. The same search as the console's search page.",
    )
    se.add_argument("--since", help="written on or after this date (YYYY-MM-DD, China time) or ISO time")
    se.add_argument("--until", help="written up to this date (inclusive) or before this ISO time")
    se.add_argument("--officer", help="the officer named in X-Hub-Officer")
    se.add_argument("--consumer", help="the consumer's client id")
    se.add_argument("--department", help="the consumer's department")
    se.add_argument("--purpose", help="the declared purpose (e.g. CASE, AUDIT)")
    se.add_argument("--case", help="the case reference (X-Hub-Case)")
    se.add_argument("--field", help="a field coordinate disclosed, e.g. Person.name")
    se.add_argument("--decision", choices=DECISIONS)
    se.add_argument("--flag", choices=FLAGS, help="only entries with this anomaly flag")
    se.add_argument(
        "--resident",
        metavar="ID_NUMBER",
        help="entries naming this resident (turned into the pseudonym here; - reads it from stdin)",
    )
    se.add_argument("--limit", type=int, default=50, help="at most this many entries (default 50)")
    se.add_argument("--after", type=int, help="only entries after this sequence number (the next page)")
    se.add_argument("--json", action="store_true", help="one JSON object per line: seq, flags, entry")
    se.set_defaults(fn=cmd_search)

    ex = au.add_parser("export", help="write a range of entries and the signed heads to a JSON-lines file")
    ex.add_argument("--output", "-o", required=True)
    ex.add_argument("--first", type=int, default=None, help="first sequence number (default: the oldest stored)")
    ex.add_argument("--last", type=int, default=None, help="last sequence number (default: the newest)")
    ex.add_argument("--since", help="the entries written from this date (YYYY-MM-DD, China time) or ISO time")
    ex.add_argument("--until", help="the entries written up to this date (inclusive) or before this ISO time")
    ex.set_defaults(fn=cmd_export)

    ar = au.add_parser("archive", help="move old entries into a verified archive file")
    when = ar.add_mutually_exclusive_group()
    when.add_argument("--before", help="archive entries written before this date (YYYY-MM-DD, UTC) or ISO time")
    when.add_argument("--older-than-days", type=int, help="archive entries older than this many days")
    ar.set_defaults(fn=cmd_archive)

    su = au.add_parser("subject", help="every recorded access to one resident (by ID number)")
    su.add_argument("id_number", metavar="ID_NUMBER", help="the ID number, or - to read it from stdin")
    su.add_argument("--since", help="accesses from this date (YYYY-MM-DD, China time) or ISO time")
    su.add_argument("--until", help="accesses up to this date (inclusive) or before this ISO time")
    su.set_defaults(fn=cmd_subject)

    sign = au.add_parser("sign", help="sign a tree head now")
    sign.set_defaults(fn=cmd_sign)

    pr = au.add_parser("prove", help="print and check an inclusion proof of one entry against a signed head")
    pr.add_argument("--seq", type=int, required=True)
    pr.add_argument("--size", type=int, help="the signed tree size to prove against (default: the latest head)")
    pr.set_defaults(fn=cmd_prove)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_data_dir(getattr(args, "data_dir", None))


def _key_path(value: str | None) -> Path | None:
    """The ``--public-key`` file, checked to hold an Ed25519 public key in PEM."""
    from hub.audit.head import load_public_key

    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise RequestError(f"no such file: {value}", code="NOT_FOUND")
    try:
        load_public_key(path)
    except ValueError:
        raise RequestError(f"{value} is not an Ed25519 public key in PEM form", code="BAD_ARGUMENT") from None
    return path


def cmd_verify(args: argparse.Namespace) -> int:
    if args.file:
        from hub.audit.export import verify_file

        key = _key_path(args.public_key)
        if not Path(args.file).is_file():
            raise RequestError(f"no such file: {args.file}", code="NOT_FOUND")
        report = verify_file(Path(args.file), key)
        print(report.summary(f"export {Path(args.file).name}"))
        if report.ok and key is None:
            print(
                f"note: checked against the key embedded in the file (fingerprint {report.key_fingerprint}); "
                "pass --public-key with the key you trust",
                file=sys.stderr,
            )
    else:
        from hub.audit.store import AuditKeyMissing, open_audit_store, verify_store
        from hub.audit.verify import VerifyReport

        settings = _settings(args)
        key = _key_path(args.public_key)
        witnessed = _witnessed_checkpoint(args, key or settings.key_dir / "audit-public.pem")
        try:
            store = open_audit_store(settings, key)
        except AuditKeyMissing as exc:  # nothing to check the log with: the check fails, it is not a usage error
            report = VerifyReport(ok=False, problem=exc.message)
        else:
            with store:
                report = verify_store(store, witnessed[:2] if witnessed else None)
        print(report.summary("audit log"))
        if report.ok and witnessed:
            print(f"checkpoint: the log extends the checkpoint of size {witnessed[0]} cosigned by {witnessed[2]}")
    return 0 if report.ok else 1


def _witnessed_checkpoint(args: argparse.Namespace, log_key: Path) -> tuple[int, bytes, str] | None:
    """``--checkpoint FILE`` checked: signed by the log's key (named by its origin) and cosigned by every
    ``--witness-key``; returns (tree size, root hash, the witnesses' names)."""
    from hub.audit.checkpoint import ED25519, Checkpoint, CheckpointError, Verifier
    from hub.audit.head import load_public_key

    if not args.checkpoint:
        if args.witness_key:
            raise RequestError("--witness-key needs --checkpoint", code="BAD_ARGUMENT")
        return None
    if not args.witness_key:
        raise RequestError("--checkpoint needs the --witness-key of the witness that cosigned it", code="BAD_ARGUMENT")
    path = Path(args.checkpoint)
    if not path.is_file():
        raise RequestError(f"no such file: {args.checkpoint}", code="NOT_FOUND")
    if not log_key.exists():
        raise ConfigError(f"no audit public key at {log_key}")
    try:
        cp = Checkpoint.from_text(path.read_text(encoding="utf-8"))
        cp.verify(Verifier.of(cp.origin, ED25519, load_public_key(log_key)))
        names = []
        for vkey in args.witness_key:
            w = Verifier.from_text(vkey)
            cp.verify_cosignature(w)
            names.append(w.name)
    except UnicodeDecodeError:
        raise CheckpointError("the checkpoint file is not UTF-8") from None
    return cp.tree_size, cp.root_hash, ", ".join(names)


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from hub.audit.checkpoint import ED25519, Verifier
    from hub.audit.receipts import checkpoint_text
    from hub.audit.store import open_audit_store
    from hub.audit.witness import witnessed_sizes

    settings = _settings(args)
    log = open_audit_store(settings, writer=True).log()
    log.origin = settings.audit_origin
    if args.vkey:
        print(Verifier.of(log.origin, ED25519, log.signing_key.public_key()).to_text())
        return 0
    if args.witnessed:
        rows = witnessed_sizes(log.engine)
        for size, witness, at in rows:
            print(f"size {size} cosigned by {witness.split('+')[0]} (received {at.isoformat(timespec='seconds')})")
        print(f"{len(rows)} cosignature{'s' if len(rows) != 1 else ''} from witnesses")
        return 0
    heads = [h for h in log.heads() if args.size is None or h.tree_size == args.size]
    if not heads:
        raise RequestError(
            "no signed tree head" + (f" at size {args.size}" if args.size is not None else ""), code="NOT_FOUND"
        )
    sys.stdout.write(checkpoint_text(log, heads[-1]))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hub.audit.search import seq_range, time_bound
    from hub.audit.store import export_range, open_audit_store

    if (args.since or args.until) and (args.first is not None or args.last is not None):
        raise RequestError("give --since/--until or --first/--last, not both", code="BAD_ARGUMENT")
    since = time_bound(args.since, "--since") if args.since else None
    until = time_bound(args.until, "--until", end=True) if args.until else None
    with open_audit_store(_settings(args)) as store:
        first, last = args.first, args.last
        if since or until:
            found = seq_range(store.engine, since, until)
            if found is None:
                raise RequestError("no entry was written in that time range", code="NOT_FOUND")
            first, last = found
        if first is None:
            first = store.oldest_stored() or 0
        r = export_range(store, Path(args.output), first, last)
    print(
        f"exported entries {r.first_seq}–{r.last_seq} ({r.entries} entries, {r.heads} signed tree heads) "
        f"to {r.path}; sha256 {r.sha256}"
    )
    return 0


def _cutoff(value: str) -> datetime:
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        at = datetime.fromisoformat(value)
    except ValueError:
        raise RequestError(f"--before: {value!r} is not a date (YYYY-MM-DD) or ISO time", code="BAD_ARGUMENT") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def cmd_archive(args: argparse.Namespace) -> int:
    from hub.audit.store import archive_before, open_audit_store

    settings = _settings(args)
    before = _cutoff(args.before) if args.before else None
    with open_audit_store(settings) as store:
        r = archive_before(store, before=before, keep_days=args.older_than_days)
    if r is None:
        print("nothing to archive: no signed tree head covers only entries older than the cut-off")
        return 0
    print(
        f"archived entries {r.first_seq}–{r.last_seq} ({r.entries} entries older than "
        f"{r.cutoff.isoformat(timespec='seconds')}) to {r.file}; sha256 {r.sha256}"
    )
    return 0


def _fields(entry: dict[str, Any]) -> str:
    out = []
    for f in entry.get("fields") or []:
        if isinstance(f, dict):
            form = f.get("form", "raw")
            out.append(str(f.get("coordinate")) + ("" if form == "raw" else f"({form})"))
        else:
            out.append(str(f))
    return ",".join(out) or "-"


def printable(value: object) -> str:
    """``value`` safe for a terminal: control, format (bidi) and other non-printable characters are shown as
    escapes (``\\x1b``, ``\\u202e``); printable text in any script (王小明) is kept as it is."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _access_line(e: dict[str, Any], refused: bool = False) -> str:
    line = (
        f"{e.get('at')} seq {e.get('seq')} {e.get('decision')} department={e.get('department') or '-'} "
        f"client={e.get('client_id') or '-'} officer={e.get('officer') or '-'} purpose={e.get('purpose') or '-'} "
        f"case={e.get('case_ref') or '-'} "
        + ("REFUSED (named this resident; nothing disclosed)" if refused else f"fields={_fields(e)}")
    )
    return printable(line)


def cmd_subject(args: argparse.Namespace) -> int:
    from hub.audit.search import time_bound
    from hub.audit.store import open_audit_store

    if args.id_number == "-":  # keeps the number out of shell history and the process list
        args.id_number = sys.stdin.readline().strip()
    since = time_bound(args.since, "--since") if args.since else None
    until = time_bound(args.until, "--until", end=True) if args.until else None
    settings = _settings(args)
    subject = _pseudonym_of(settings, args.id_number)
    args.id_number = None  # nothing below needs the plain number
    with open_audit_store(settings) as store:
        return _print_accesses(store, subject, since, until)


def _pseudonym_of(settings: Settings, id_number: str) -> str:
    """The resident's pseudonym under this hub's key (the same HMAC as ``AuditLog.pseudonym``); the number is
    checked first and never repeated in a message."""
    from hub.audit.entry import pseudonym
    from hub.ids import id_problem

    problem = id_problem(id_number)
    if problem is not None:
        raise RequestError(problem, code="BAD_ID_NUMBER")
    key_file = settings.key_dir / "pseudonym.key"
    if not key_file.exists():  # a fresh key would silently find nobody
        raise ConfigError(f"no pseudonym key at {key_file}")
    return pseudonym(key_file.read_bytes(), id_number)


def _print_accesses(
    store: AuditStore, subject: str, since: datetime | None = None, until: datetime | None = None
) -> int:
    """Every entry naming ``subject`` (a pseudonym), from the archive files and then the database, in order; a
    missing archive file is warned about (the officers' API refuses the report instead)."""
    from hub.audit.query import accesses
    from hub.audit.search import written_between

    found, missing = accesses(store.engine, subject, store.settings.data_dir, missing_archives="skip")
    found = [a for a in found if written_between(str(a.entry.get("at")), since, until)]
    for a in missing:
        print(f"warning: archive file {a.file.name} (entries {a.first_seq}–{a.last_seq}) is missing", file=sys.stderr)
    for access in found:
        print(_access_line(access.entry, access.refused))
    between = " in that time range" if since or until else ""
    print(f"{len(found)} recorded access{'es' if len(found) != 1 else ''} to this resident{between}")
    return 0


SEARCH_COLUMNS = ("seq", "at (China)", "decision", "consumer", "officer", "purpose", "case", "fields", "flags")


def cmd_search(args: argparse.Namespace) -> int:
    from hub.audit.query import AuditSearch
    from hub.audit.search import search_page, time_bound
    from hub.audit.store import open_audit_store

    if args.limit < 1:
        raise RequestError("--limit must be at least 1", code="BAD_ARGUMENT")
    since = time_bound(args.since, "--since") if args.since else None
    until = time_bound(args.until, "--until", end=True) if args.until else None
    settings = _settings(args)
    subject = None
    if args.resident:
        number = sys.stdin.readline().strip() if args.resident == "-" else args.resident
        args.resident = None
        subject = _pseudonym_of(settings, number)
    s = AuditSearch(
        department=args.department,
        client_id=args.consumer,
        officer=args.officer,
        purpose=args.purpose,
        case_ref=args.case,
        subject=subject,
        field=args.field,
        decision=args.decision,
        since=since,
        until=until,
    )
    with open_audit_store(settings) as store:
        found, cursor = search_page(store.engine, s, args.flag, args.after, args.limit)
    if args.json:
        for e in found:
            print(json.dumps({"seq": e.seq, "flags": e.flags, "entry": e.entry}, ensure_ascii=False))
    else:
        rows = [SEARCH_COLUMNS] + [_search_row(e.entry, e.flags) for e in found]
        widths = [max(len(r[i]) for r in rows) for i in range(len(SEARCH_COLUMNS) - 1)]
        for r in rows:
            print("  ".join([c.ljust(w) for c, w in zip(r, widths, strict=False)] + [r[-1]]).rstrip())
        print(f"{len(found)} entr{'ies' if len(found) != 1 else 'y'}", file=sys.stderr)
    if cursor is not None:
        print(f"more entries may match: add --after {cursor} for the next page", file=sys.stderr)
    return 0


def _search_row(e: dict[str, Any], flags: list[str]) -> tuple[str, ...]:
    at = str(e.get("at") or "-")
    try:
        at = datetime.fromisoformat(at).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        pass
    values = (
        e.get("seq"),
        at,
        e.get("decision"),
        e.get("client_id"),
        e.get("officer"),
        e.get("purpose"),
        e.get("case_ref"),
        _fields(e),
        ",".join(flags),
    )
    return tuple(printable(v if v not in (None, "") else "-") for v in values)


def cmd_sign(args: argparse.Namespace) -> int:
    from hub.audit.store import open_audit_store

    log = open_audit_store(_settings(args), writer=True).log()
    head = log.sign_head()
    print(f"signed tree head: size {head.tree_size}, root {head.root_hash.hex()}")
    return 0


def cmd_prove(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from hub.audit.entry import entry_leaf
    from hub.audit.head import head_at
    from hub.audit.merkle import ProofError, verify_inclusion
    from hub.audit.store import open_audit_store
    from hub.db import audit_entries

    store = open_audit_store(_settings(args), writer=True)
    log = store.log()
    state = store.verified_archives("audit log")
    head = head_at(log.heads(), args.size, hint="; run `hub audit sign`")
    size, seq = head.tree_size, args.seq
    if not 0 <= seq < size:
        raise RequestError(f"entry {seq} is not in the tree of size {size}", code="BAD_ARGUMENT")
    if not head.verifies(log.signing_key.public_key()):
        print(f"FAILED: tree head at size {size}: bad signature")
        return 1
    tree = log.tree()
    if tree.size < size:
        print(f"FAILED: entry {tree.size}: missing (the tree head at size {size} covers more entries than there are)")
        return 1
    out: dict[str, Any] = {"seq": seq, "tree_size": size}
    if seq >= state.next_seq:
        with log.engine.connect() as conn:
            text = conn.execute(select(audit_entries.c.entry).where(audit_entries.c.seq == seq)).scalar()
        if text is None:
            print(f"FAILED: entry {seq}: missing")
            return 1
        leaf = entry_leaf(text)
        out["entry"] = text
    else:
        leaf = state.leaves[seq]  # recomputed from the verified archive
        out["archived_in"] = next(a.file.name for a in state.archives if a.first_seq <= seq <= a.last_seq)
    path = tree.inclusion_proof(seq, size)
    try:
        verify_inclusion(leaf, seq, size, path, head.root_hash)
    except ProofError as exc:
        print(f"FAILED: entry {seq}: not included in the signed tree head at size {size} ({exc})")
        return 1
    printed = head.to_json()
    out.update(
        leaf_hash=leaf.hex(),
        path=[p.hex() for p in path],
        root_hash=printed["root_hash"],
        signed_at=printed["signed_at"],
        signed_at_ms=printed["signed_at_ms"],
        key_id=head.key_id,
        signature=printed["signature"],
        verified=True,
    )
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0
