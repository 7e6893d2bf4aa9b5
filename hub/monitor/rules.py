"""Monitoring rules (M1-M12) and assistance programmes, read from ``policies/monitoring/``.

A rule file names the change events that trigger it, its conditions over the hub's own schema fields (the
coordinates policies grant, such as ``DisabilityRecord.isSevere``), the office and time limit, and the programmes
to suggest. ``programmes.toml`` describes the programmes. Everything is validated when the hub starts: an unknown
key, field, value, programme or event kind is a ``ConfigError`` naming file and line, and so is a rule whose
conditions the MON grants do not allow (the rule's query is planned against the policies exactly as a request
would be). Conditions are evaluated on the answer of that query, which the monitor sends through the gateway
(``hub.monitor.reader``), so a rule never sees more than MON grants. Pure: no I/O beyond reading the files.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    parse,
)

from hub.auth.actor import Actor
from hub.errors import ConfigError
from hub.monitor.events import EVENT_KINDS
from hub.policy.loader import CatalogEntry
from hub.policy.model import PolicySet
from hub.policy.plan import plan_operation

RULE_KEYS = {
    "id", "name_zh", "name_en", "legal_basis", "triggers", "sweep", "target", "due_working_days", "all", "any",
    "suggest", "note",
}  # fmt: skip
PROGRAMME_KEYS = {"name_zh", "name_en", "legal_basis", "monthly_amount", "amount_basis", "eligible"}
OPS = {"is", "in", "at_least", "below", "age_at_least", "age_below"}
# always asked, to route the alert: the resident, the area code and the street (masked address)
ROUTING = ("Person.idNumber", "Person.areaCode", "Household.addressMasked")


@dataclass(frozen=True)
class Condition:
    coordinate: str  # Type.field
    path: tuple[str, ...]  # response keys from a Person down to the value
    form: str
    ops: tuple[tuple[str, Any], ...]  # (op, operand)
    args: tuple[tuple[str, Any], ...] = ()  # field arguments, e.g. (("threshold", 20000),)
    line: int = 0

    def holds(self, person: Mapping[str, Any] | None, today: date) -> tuple[bool, Any]:
        """Whether the condition holds for one resident's answer, and the value in its disclosed form."""
        value: Any = person
        for key in self.path:
            if not isinstance(value, Mapping):
                return False, None
            value = value.get(key)
        if value is None:
            return False, None  # no record (or no such value): a condition never holds on nothing
        raw = value
        for op, operand in self.ops:
            if op == "is" and value != operand:
                return False, value
            if op == "in" and value not in operand:
                return False, value
            if op == "at_least" and not value >= operand:
                return False, value
            if op == "below" and not value < operand:
                return False, value
            if op in ("age_at_least", "age_below"):
                born = date.fromisoformat(str(raw))
                age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
                if (op == "age_at_least" and age < operand) or (op == "age_below" and age >= operand):
                    return False, True
                value = True  # the birth date itself is not kept in the alert, only that the age test held
        return True, value

    def describe(self) -> str:
        args = ", ".join(f"{k}: {v}" for k, v in self.args)
        ops = " and ".join(f"{op} {v}" for op, v in self.ops)
        return f"{self.coordinate}{f'({args})' if args else ''} {ops}"


@dataclass(frozen=True)
class Programme:
    id: str
    name_zh: str
    name_en: str
    legal_basis: str
    monthly_amount: int | None
    amount_basis: str
    eligible: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Suggestion:
    programme: Programme
    reason: str


@dataclass
class Rule:
    id: str
    name_zh: str
    name_en: str
    legal_basis: str
    triggers: tuple[str, ...]
    sweep: bool
    target: str
    due_working_days: int
    all: tuple[Condition, ...]
    any: tuple[Condition, ...]
    suggest: tuple[Suggestion, ...]
    file: str
    note: str = ""
    query: str = ""  # the GraphQL document the monitor sends (people(idNumbers:) with every field it needs)

    def conditions(self) -> list[Condition]:
        return [*self.all, *self.any, *(c for s in self.suggest for c in s.programme.eligible)]


@dataclass(frozen=True)
class Match:
    rule: Rule
    id_number: str
    area_code: str
    area_name: str
    matched: list[dict[str, Any]]
    programmes: list[dict[str, Any]]
    estimated_monthly: int


@dataclass
class RuleSet:
    rules: dict[str, Rule] = field(default_factory=dict)
    programmes: dict[str, Programme] = field(default_factory=dict)

    def triggered_by(self, kind: str) -> list[Rule]:
        return [r for r in self.rules.values() if kind in r.triggers]


def _line(text: str, needle: str) -> int:
    for i, ln in enumerate(text.splitlines(), start=1):
        if needle in ln:
            return i
    return 0


def _fail(file: Path, line: int, message: str) -> ConfigError:
    return ConfigError(f"{file.name}:{line}: {message}" if line else f"{file.name}: {message}", code="RULE_INVALID")


def _read(file: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = file.read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(file, 0, f"cannot be read ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise _fail(file, 0, f"not valid TOML: {exc}") from None


class _Fields:
    """Where each disclosed coordinate is reached from a ``Person`` (one level of record objects below it)."""

    def __init__(self, schema: GraphQLSchema, catalog: Mapping[str, CatalogEntry]) -> None:
        self.schema, self.catalog = schema, catalog
        person = schema.get_type("Person")
        assert isinstance(person, GraphQLObjectType)
        self.paths: dict[str, tuple[str, ...]] = {"Person": ()}
        for name, f in person.fields.items():
            t = f.type
            named = get_named_type(t)
            if isinstance(named, GraphQLObjectType) and not isinstance(getattr(t, "of_type", t), GraphQLList):
                self.paths.setdefault(named.name, (name,))

    def condition(self, file: Path, text: str, coordinate: str, raw: Any) -> Condition:
        line = _line(text, f'"{coordinate}"')
        entry = self.catalog.get(coordinate)
        if entry is None:
            raise _fail(file, line, f"unknown field {coordinate!r} (conditions name disclosed fields, Type.field)")
        type_name, field_name = coordinate.split(".", 1)
        if type_name not in self.paths:
            raise _fail(file, line, f"{coordinate} cannot be reached from a Person (list items are not supported)")
        gtype = self.schema.get_type(type_name)
        assert isinstance(gtype, GraphQLObjectType)
        gfield = gtype.fields[field_name]
        spec = raw if isinstance(raw, dict) else {"in" if isinstance(raw, list) else "is": raw}
        args = {k: v for k, v in spec.items() if k not in OPS}
        for name, value in args.items():
            if name not in gfield.args:
                known = ", ".join(gfield.args) or "none"
                raise _fail(file, line, f"{coordinate}: unknown key or argument {name!r} (arguments: {known})")
            if not isinstance(value, int) or isinstance(value, bool):
                raise _fail(file, line, f"{coordinate}: argument {name} must be an integer")
        missing = [a for a, d in gfield.args.items() if a not in args and d.default_value is None]
        if missing:
            raise _fail(file, line, f"{coordinate}: argument {missing[0]} is required")
        ops = [(k, v) for k, v in spec.items() if k in OPS]
        if not ops:
            raise _fail(file, line, f"{coordinate}: say what must hold ({', '.join(sorted(OPS))})")
        named = get_named_type(gfield.type)
        kind = named.name if not isinstance(named, GraphQLEnumType) else "enum"
        for op, value in ops:
            if op in ("age_at_least", "age_below"):
                if kind != "Date" or not isinstance(value, int):
                    raise _fail(file, line, f"{coordinate}: {op} needs a date field and a whole number of years")
            elif op in ("at_least", "below"):
                if kind not in ("Int", "Float") or not isinstance(value, int | float) or isinstance(value, bool):
                    raise _fail(file, line, f"{coordinate}: {op} needs a number field and a number")
            else:
                values = value if op == "in" else [value]
                if op == "in" and (not isinstance(value, list) or not value):
                    raise _fail(file, line, f"{coordinate}: 'in' needs a non-empty list")
                for v in values:
                    self._check_value(file, line, coordinate, kind, named, v)
        return Condition(
            coordinate=coordinate,
            path=(*self.paths[type_name], field_name),
            form=entry.form.value,
            ops=tuple((op, tuple(v) if isinstance(v, list) else v) for op, v in ops),
            args=tuple(sorted(args.items())),
            line=line,
        )

    @staticmethod
    def _check_value(file: Path, line: int, coordinate: str, kind: str, named: Any, v: Any) -> None:
        if kind == "enum":
            if v not in named.values:
                raise _fail(file, line, f"{coordinate}: unknown value {v!r} (one of {', '.join(named.values)})")
        elif kind == "Boolean":
            if not isinstance(v, bool):
                raise _fail(file, line, f"{coordinate}: is a yes/no field; write true or false")
        elif kind in ("Int", "Float"):
            if not isinstance(v, int | float) or isinstance(v, bool):
                raise _fail(file, line, f"{coordinate}: needs a number")
        elif not isinstance(v, str):
            raise _fail(file, line, f"{coordinate}: needs a string")


def _conditions(fields: _Fields, file: Path, text: str, table: Any, where: str) -> tuple[Condition, ...]:
    if table is None:
        return ()
    if not isinstance(table, dict):
        raise _fail(file, _line(text, where), f"{where} must be a table of field = condition")
    return tuple(fields.condition(file, text, c, v) for c, v in table.items())


def load_programmes(file: Path, fields: _Fields) -> dict[str, Programme]:
    text, doc = _read(file)
    raw = doc.get("programmes")
    if set(doc) - {"programmes"} or not isinstance(raw, dict) or not raw:
        raise _fail(file, 0, "expected only [programmes.<id>] tables")
    out: dict[str, Programme] = {}
    for pid, body in raw.items():
        line = _line(text, f"[programmes.{pid}]")
        if not isinstance(body, dict):
            raise _fail(file, line, f"programme {pid} must be a table")
        unknown = body.keys() - PROGRAMME_KEYS
        if unknown:
            raise _fail(
                file, _line(text, sorted(unknown)[0]) or line, f"programme {pid}: unknown key {sorted(unknown)[0]}"
            )
        for key in ("name_zh", "name_en", "legal_basis"):
            if not isinstance(body.get(key), str) or not body[key].strip():
                raise _fail(file, line, f"programme {pid}: {key} must be a non-empty string")
        amount = body.get("monthly_amount")
        if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool) or amount < 0):
            raise _fail(file, line, f"programme {pid}: monthly_amount must be a whole number of yuan")
        out[pid] = Programme(
            id=pid,
            name_zh=body["name_zh"],
            name_en=body["name_en"],
            legal_basis=body["legal_basis"],
            monthly_amount=amount,
            amount_basis=str(body.get("amount_basis", "")),
            eligible=_conditions(fields, file, text, body.get("eligible"), f"[programmes.{pid}.eligible]"),
        )
    return out


def load_rule(file: Path, fields: _Fields, programmes: Mapping[str, Programme]) -> Rule:
    text, doc = _read(file)
    unknown = doc.keys() - RULE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise _fail(file, _line(text, key), f"unknown key {key!r} (known: {', '.join(sorted(RULE_KEYS))})")
    for key in ("id", "name_zh", "name_en", "legal_basis", "target"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise _fail(file, _line(text, key), f"{key} must be a non-empty string")
    triggers = doc.get("triggers")
    if not isinstance(triggers, list) or not triggers or not all(isinstance(t, str) for t in triggers):
        raise _fail(file, _line(text, "triggers"), "triggers must be a non-empty list of event kinds")
    for t in triggers:
        if t not in EVENT_KINDS:
            raise _fail(file, _line(text, f'"{t}"'), f"unknown event kind {t!r} (known: {', '.join(EVENT_KINDS)})")
    days = doc.get("due_working_days")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 60:
        raise _fail(file, _line(text, "due_working_days"), "due_working_days must be a whole number from 1 to 60")
    sweep = doc.get("sweep", False)
    if not isinstance(sweep, bool):
        raise _fail(file, _line(text, "sweep"), "sweep must be true or false")
    all_ = _conditions(fields, file, text, doc.get("all"), "[all]")
    any_ = _conditions(fields, file, text, doc.get("any"), "[any]")
    if not all_ and not any_:
        raise _fail(file, 0, "a rule needs at least one condition ([all] or [any])")
    suggestions: list[Suggestion] = []
    raw = doc.get("suggest", [])
    if not isinstance(raw, list):
        raise _fail(file, _line(text, "suggest"), "suggest must be [[suggest]] entries")
    for s in raw:
        if not isinstance(s, dict) or set(s) != {"programme", "reason"}:
            raise _fail(file, _line(text, "[[suggest]]"), "each [[suggest]] has exactly programme and reason")
        p = programmes.get(s["programme"])
        if p is None:
            raise _fail(file, _line(text, f'"{s["programme"]}"'), f"unknown programme {s['programme']!r}")
        suggestions.append(Suggestion(p, str(s["reason"])))
    rule = Rule(
        id=doc["id"],
        name_zh=doc["name_zh"],
        name_en=doc["name_en"],
        legal_basis=doc["legal_basis"],
        triggers=tuple(triggers),
        sweep=sweep,
        target=doc["target"],
        due_working_days=days,
        all=all_,
        any=any_,
        suggest=tuple(suggestions),
        file=file.name,
        note=str(doc.get("note", "")),
    )
    asked: dict[str, tuple[tuple[str, Any], ...]] = {}
    for c in rule.conditions():
        if asked.setdefault(c.coordinate, c.args) != c.args:
            raise _fail(file, c.line, f"{c.coordinate} is asked with two different arguments (one per request)")
    rule.query = build_query(rule, fields, asked)
    return rule


def build_query(rule: Rule, fields: _Fields, asked: Mapping[str, tuple[tuple[str, Any], ...]]) -> str:
    tree: dict[str, Any] = {}
    for coordinate in [*ROUTING, *asked]:
        type_name, field_name = coordinate.split(".", 1)
        node = tree
        for step in fields.paths[type_name]:
            node = node.setdefault(step, {})
        args = asked.get(coordinate, ())
        key = field_name + ("(" + ", ".join(f"{k}: {v}" for k, v in args) + ")" if args else "")
        node.setdefault(key, {})

    def render(node: dict[str, Any]) -> str:
        return " ".join(k + (" { " + render(v) + " }" if v else "") for k, v in node.items())

    return f"query Monitor{rule.id}($ids: [String!]!) {{ people(idNumbers: $ids) {{ {render(tree)} }} }}"


def load_rules(
    rules_dir: Path,
    schema: GraphQLSchema,
    catalog: Mapping[str, CatalogEntry],
    policy: PolicySet,
    today: date,
    consumer: str = "civil_affairs",
) -> RuleSet:
    """Load ``rules_dir`` (``programmes.toml`` and one file per rule); a missing folder means no rules."""
    if not rules_dir.is_dir():
        return RuleSet()
    fields = _Fields(schema, catalog)
    programmes_file = rules_dir / "programmes.toml"
    if not programmes_file.is_file():
        raise ConfigError(f"{rules_dir}/programmes.toml is missing", code="RULE_INVALID")
    out = RuleSet(programmes=load_programmes(programmes_file, fields))
    actor = Actor(client_id="hub-monitor", department=consumer, area="", purposes=("MON",))
    for file in sorted(rules_dir.glob("*.toml"), key=lambda f: (len(f.stem), f.stem)):
        if file.name == "programmes.toml":
            continue
        rule = load_rule(file, fields, out.programmes)
        if rule.id in out.rules:
            raise _fail(
                file,
                _line(file.read_text(encoding="utf-8"), "id"),
                f"rule {rule.id} is also in {out.rules[rule.id].file}",
            )
        document = parse(rule.query)
        operation = document.definitions[0]
        plan = plan_operation(schema, document, operation, catalog, policy, actor, "MON", today)  # type: ignore[arg-type]
        if not plan.allowed:
            text = file.read_text(encoding="utf-8")
            d = plan.denials[0]
            raise _fail(
                file,
                _line(text, f'"{d.coordinate}"'),
                f"rule {rule.id}: {d.coordinate} is not granted to {consumer} for MON ({d.reason}); "
                "a rule may use only what monitoring is granted",
            )
        out.rules[rule.id] = rule
    return out


def evaluate(rule: Rule, person: Mapping[str, Any] | None, today: date) -> Match | None:
    """The rule's verdict on one resident's answer: a ``Match`` (with what matched and what to suggest) or None."""
    if person is None:
        return None
    matched: list[dict[str, Any]] = []

    def note(c: Condition, value: Any) -> None:
        matched.append({"coordinate": c.coordinate, "form": c.form, "value": value, "condition": c.describe()})

    for c in rule.all:
        ok, value = c.holds(person, today)
        if not ok:
            return None
        note(c, value)
    if rule.any:
        hits = [(c, v) for c in rule.any for ok, v in [c.holds(person, today)] if ok]
        if not hits:
            return None
        for c, v in hits:
            note(c, v)
    programmes: list[dict[str, Any]] = []
    for s in rule.suggest:
        checks = [(c, *c.holds(person, today)) for c in s.programme.eligible]
        if not all(ok for _, ok, _ in checks):
            continue
        because = "; ".join(f"{c.describe()} (answer: {v})" for c, _, v in checks)
        programmes.append(
            {
                "id": s.programme.id,
                "name_zh": s.programme.name_zh,
                "name_en": s.programme.name_en,
                "legal_basis": s.programme.legal_basis,
                "reason": s.reason + (f" Eligible: {because}." if because else ""),
                "monthly_amount": s.programme.monthly_amount,
                "amount_basis": s.programme.amount_basis,
            }
        )
    street = str((person.get("household") or {}).get("addressMasked") or "").replace("*", "")
    return Match(
        rule=rule,
        id_number=str(person["idNumber"]),
        area_code=str(person["areaCode"]),
        area_name=street,
        matched=matched,
        programmes=programmes,
        estimated_monthly=sum(p["monthly_amount"] or 0 for p in programmes),
    )
