"""``Person`` and ``Household`` (public security household registration) and their department records."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import date
from typing import Annotated, Any

import strawberry
from graphql import FieldNode
from graphql.execution.values import get_argument_values
from sqlalchemy import ColumnElement, Table
from strawberry.types import Info
from strawberry.utils.str_converters import to_camel_case, to_snake_case

from hub.departments import households, residents
from hub.errors import HubError
from hub.policy import forms
from hub.policy.model import Form
from hub.schema import departments as d
from hub.schema.context import HubContext, ctx, resolve_info
from hub.schema.directives import disclosed
from hub.schema.records import (
    Selected,
    build,
    predicates,
    record_selections,
    row_columns,
    row_fields,
    selection_here,
    value,
)

PS = "public_security"


# Conditions kept across requests: a SQLAlchemy condition is immutable, and one built once keeps its cache key and
# its compiled text (``hub.sources.sql.Inline``), where building it again for each request cost about a tenth of a
# request's CPU (issue 16). Bounded: emptied when full.
MAX_CONDITIONS = 4096
_SCOPES: dict[tuple[str, str], ColumnElement[bool]] = {}
_CONDITIONS: dict[Any, tuple[str, Any]] = {}


def _scope(c: HubContext, table: Table) -> tuple[ColumnElement[bool] | None, str]:
    """The row scope (the caller's area prefix) as a condition on ``table``, built once per (table, area)."""
    if c.area_prefix is None:
        return None, ""
    key = (table.name, c.area_prefix)
    found = _SCOPES.get(key)
    if found is None:
        if len(_SCOPES) >= MAX_CONDITIONS:
            _SCOPES.clear()
        found = _SCOPES[key] = table.c.area_code.startswith(c.area_prefix, autoescape=True)
    return found, c.area_prefix


def resident_scope(c: HubContext) -> tuple[ColumnElement[bool] | None, str]:
    return _scope(c, residents)


def household_scope(c: HubContext) -> tuple[ColumnElement[bool] | None, str]:
    return _scope(c, households)


async def residents_by_id(c: HubContext, info: Any, id_numbers: Sequence[str]) -> tuple[list[Any], list[Any]]:
    """The public-security rows of ``id_numbers`` in the caller's scope, one batched read: (per ID number, its
    rows, empty where not found or out of scope; the rows found, in order). Found residents become the request's
    subjects, the others its not-found (for the audit entry and the lookup rules)."""
    where, name = resident_scope(c)
    columns = person_columns(selection_here(c.selections, info))
    found = await c.rows_many(PS, residents, "id_number", id_numbers, where, name, columns)
    rows = []
    for id_number, rs in zip(id_numbers, found, strict=True):
        if rs:
            c.subjects.add(id_number)
            rows.append(rs[0])
        else:
            c.not_found.add(id_number)
    return found, rows


async def load_people(c: HubContext, info: Info, id_numbers: Sequence[str]) -> list[Person | None]:
    """Residents by ID number, in order (None where not found or outside the caller's area), each with the
    department records the query selects below it."""
    found, rows = await residents_by_id(c, info, id_numbers)
    people = iter(await people_from_rows(c, info, rows))
    return [next(people) if rs else None for rs in found]


async def load_household(c: HubContext, info: Info, household_id: str) -> Household | None:
    where, name = household_scope(c)
    here = selection_here(c.selections, info)
    columns = tuple(sorted({*row_columns(Household, here), "household_id"}))
    [rows] = await c.rows_many(PS, households, "household_id", [household_id], where, name, columns)
    if not rows:
        return None
    # ``size`` and ``members`` share one load of the members' rows: the columns ``members`` needs, if asked
    below = Selected(here.nested.get("members", frozenset()), ())
    member_columns = person_columns(below, "relation_code") if "members" in here.names else ("id_number",)
    return build(Household, rows, here, row=rows[0], member_columns=member_columns)


# What a Person always needs from its row, whatever is selected: who (records, audit) and which household
# (authorization, ``household``).
_PERSON_KEYS = ("id_number", "household_id")


def person_columns(selected: Selected, *extra: str) -> tuple[str, ...]:
    """The residents columns to read for Persons with this selection: minimum necessary, as for records."""
    return tuple(sorted({*row_columns(Person, selected), *_PERSON_KEYS, *extra}))


def _structural(description: str) -> Any:
    return strawberry.field(description=description)


def _record(description: str) -> Any:
    """A department record below ``Person``: an attribute set by ``people_from_rows``."""
    return strawberry.field(description=description, default=None)


@strawberry.type(
    description="A resident, keyed by 18-digit ID number. Identity fields come from public security household "
    "registration (公安户籍); each other department contributes a record object."
)
class Person:
    row: strawberry.Private[Any]

    id_number: str = value(Form.RAW, PS, "18-digit resident ID number.", "id_number")
    id_number_masked: str = value(
        Form.MASKED,
        PS,
        "ID number masked to its 6-digit area code (330113************): birth date, sequence and check "
        "character are hidden, so the mask leaves too many candidates to enumerate.",
        lambda r: forms.mask_id(r.id_number),
        columns=("id_number",),
    )
    name: str = value(Form.RAW, PS, "Full name.", "name")
    name_masked: str = value(
        Form.MASKED, PS, "Name masked to the surname.", lambda r: forms.mask_name(r.name), columns=("name",)
    )
    sex: str = value(Form.RAW, PS, "Sex: male or female.", "sex")
    birth_date: date = value(Form.RAW, PS, "Date of birth.", "dob")
    area_code: str = value(Form.RAW, PS, "Area code (GB/T 2260) of the household registration.", "area_code")
    hukou_address: str = value(Form.RAW, PS, "Household-registration address.", "hukou_addr")
    relation_to_head: str = value(
        Form.RAW,
        PS,
        "Relation to the head: 01 head, 02 spouse, 03 child, 04 parent, 05 grandchild, 09 other.",
        "relation_code",
    )
    status: str = value(Form.RAW, PS, "Registration status: normal, deceased or moved.", "status")
    is_deceased: bool = value(
        Form.PREDICATE,
        PS,
        "Whether the resident is registered as deceased.",
        lambda r: bool(r.status == "deceased"),
        columns=("status",),
    )

    @_structural("The household (共同生活家庭) this resident is registered in.")
    async def household(self, info: Info) -> Household | None:
        return await load_household(ctx(info), info, self.row.household_id)

    civil_affairs: d.CivilAffairsRecord | None = _record("Civil affairs (民政) assistance record.")
    disability: d.DisabilityRecord | None = _record("Disabled Persons' Federation (残联) certificate.")
    medical: d.MedicalRecord | None = _record("Medical security (医保) record.")
    employment: d.EmploymentRecord | None = _record("Human resources and social security (人社) record.")
    tax: d.TaxRecord | None = _record("Tax (税务) record.")
    real_estate: d.RealEstateRecord | None = _record("Real estate registration (不动产登记) record.")
    vehicles: d.VehicleRecord | None = _record("Vehicles (公安交管) record.")
    business: d.BusinessRecord | None = _record("Market regulation (市场监管) record.")
    provident_fund: d.ProvidentFundRecord | None = _record("Housing provident fund (住房公积金) record.")
    education: d.EducationRecord | None = _record("Education (教育) record.")


# Person's record fields: GraphQL name -> (attribute, record type)
RECORD_FIELDS: dict[str, tuple[str, type]] = {
    to_camel_case(attr): (attr, cls)
    for attr, cls in [
        ("civil_affairs", d.CivilAffairsRecord),
        ("disability", d.DisabilityRecord),
        ("medical", d.MedicalRecord),
        ("employment", d.EmploymentRecord),
        ("tax", d.TaxRecord),
        ("real_estate", d.RealEstateRecord),
        ("vehicles", d.VehicleRecord),
        ("business", d.BusinessRecord),
        ("provident_fund", d.ProvidentFundRecord),
        ("education", d.EducationRecord),
    ]
}


Asked = dict[str, Awaitable[list[bool]] | HubError]


def register_loads(
    c: HubContext, info: Any, cls: type, selected: Any, allowed: list[str], variables: Any
) -> tuple[Awaitable[list[list[Any]]] | None, Asked]:
    """One department record's loads for the residents ``allowed``, registered before any is awaited (so they go
    out together, one batch per department and predicate): its rows, only if a field computed from them is
    selected (and only the columns those fields read), and one query per selected predicate."""
    provider, table = d.RECORD_TABLES[cls]
    rows_future = None
    if allowed and not row_fields(cls).isdisjoint(selected.names):
        rows_future = c.rows_many(provider, table, "id_number", allowed, columns=row_columns(cls, selected))
    asked: Asked = {}
    for node in selected.nodes:
        field = node.name.value
        if allowed and field in predicates(cls) and field not in asked:
            try:
                name, condition = _predicate_condition(c, info, cls, field, node, variables)
                asked[field] = c.predicates(provider, predicates(cls)[field].table, name, condition, allowed)
            except HubError as exc:  # a bad argument
                asked[field] = exc
    return rows_future, asked


async def settle(
    rows_future: Awaitable[list[list[Any]]] | None, asked: Asked
) -> tuple[list[list[Any]] | None, HubError | None, dict[str, list[bool] | HubError]]:
    """What :func:`register_loads` registered, awaited: (rows, the department's failure, each predicate's answers
    or its error). A department that is down becomes the error its records hold; nothing raises."""
    loaded: list[list[Any]] | None = None
    failure: HubError | None = None
    if rows_future is not None:
        try:
            loaded = await rows_future
        except HubError as exc:
            failure = exc
    answered: dict[str, list[bool] | HubError] = {}
    for field, pending in asked.items():
        if isinstance(pending, HubError):
            answered[field] = pending
            continue
        try:
            answered[field] = await pending
        except HubError as exc:
            answered[field] = exc
    return loaded, failure, answered


async def people_from_rows(c: HubContext, info: Info, rows: Sequence[Any]) -> list[Person]:
    """``Person`` objects for public-security rows, with the department records selected below ``info``'s
    field attached. Per department, for all the residents at once: one authorization lookup, one batched load
    of the rows (only if a field computed from them is selected) and one batched query per selected predicate.
    A record refused (no household authorization) or unavailable (the department is down) holds the error,
    which graphql-core reports at that record's path; a predicate that failed, at the predicate's path."""
    here = selection_here(c.selections, info)
    wanted = record_selections(c.selections, info, RECORD_FIELDS)
    if not wanted:
        return [build(Person, [r], here, row=r) for r in rows]
    variables = resolve_info(info).variable_values
    # 1. household authorizations (one lookup), then, per department, who may be disclosed
    scopes = await c.authorization_scopes([r.household_id for r in rows])
    plans = []
    for gql_name, selected in wanted.items():
        attr, cls = RECORD_FIELDS[gql_name]
        provider, table = d.RECORD_TABLES[cls]
        refused = c.refusals(scopes, provider, len(rows))
        allowed = [r.id_number for r, e in zip(rows, refused, strict=True) if e is None]
        # 2. register every department load (rows only if a field computed from them is selected; one query
        # per predicate) before awaiting any: they go out together, one batch per department and predicate
        rows_future, asked = register_loads(c, info, cls, selected, allowed, variables)
        plans.append((attr, cls, selected, refused, rows_future, asked))
    # 3. collect; a department that is down nulls its records (rows) or its predicate fields, with the error
    done: list[tuple[str, list[Any]]] = []
    for attr, cls, chosen, refused, rows_future, asked in plans:
        loaded, failure, answered = await settle(rows_future, asked)
        out: list[Any] = []
        i = 0
        for r, refusal in zip(rows, refused, strict=True):
            if refusal is not None or failure is not None:
                out.append(refusal or failure)
                continue
            answers = {f: a if isinstance(a, HubError) else a[i] for f, a in answered.items()}
            own = None if loaded is None else loaded[i]
            out.append(build(cls, own, chosen, id_number=r.id_number, answers=answers))
            i += 1
        done.append((attr, out))
    return [build(Person, [r], here, row=r, **{attr: recs[i] for attr, recs in done}) for i, r in enumerate(rows)]


def _predicate_condition(
    c: HubContext, info: Info, cls: type, field: str, node: FieldNode, variables: Any
) -> tuple[str, Any]:
    """(batch name, SQL condition) of a predicate field node, from its arguments; worked out once per request.
    The planner allows one set of arguments per predicate per request, so the field name keys the answer."""
    key = ("predicate", id(node))
    found = c.selections.get(key)
    if found is None:
        schema = resolve_info(info).schema
        definition = schema.get_type(cls.__strawberry_definition__.name).fields[field]  # type: ignore[attr-defined, union-attr]
        arguments = {to_snake_case(k): v for k, v in get_argument_values(definition, node, variables).items()}
        # a predicate's condition reads its arguments and the request's date only (``Predicate``): kept per both
        shared: tuple[Any, ...] | None = (cls, field, c.today, *sorted(arguments.items()))
        try:
            found = _CONDITIONS.get(shared)
        except TypeError:  # an argument that cannot be a key (a list): built for this request alone
            shared, found = None, None
        if found is None:
            try:
                found = predicates(cls)[field].condition(c, **arguments)
            except HubError as exc:
                found = exc
            else:
                if shared is not None:
                    if len(_CONDITIONS) >= MAX_CONDITIONS:
                        _CONDITIONS.clear()
                    _CONDITIONS[shared] = found
        c.selections[key] = found
    if isinstance(found, HubError):
        raise found
    return found


@strawberry.type(description="A household (共同生活家庭) as registered by public security (公安户籍).")
class Household:
    row: strawberry.Private[Any]
    member_columns: strawberry.Private[tuple[str, ...]] = ("id_number",)

    household_id: str = value(Form.RAW, PS, "Household identifier.", "household_id")
    area_code: str = value(Form.RAW, PS, "Area code (GB/T 2260) of the household.", "area_code")
    address: str = value(Form.RAW, PS, "Registered address.", "address")
    address_masked: str = value(
        Form.MASKED,
        PS,
        "Registered address masked after the street.",
        lambda r: forms.mask_address(r.address),
        columns=("address",),
    )

    async def _member_rows(self, info: Info) -> list[Any]:
        c = ctx(info)
        where, name = resident_scope(c)
        members = await c.rows_many(
            PS, residents, "household_id", [self.row.household_id], where, name, self.member_columns
        )
        return members[0]

    @disclosed(Form.RAW, PS, "Number of registered members.")
    async def size(self, info: Info) -> int:
        return len(await self._member_rows(info))

    @_structural("Registered members, head first.")
    async def members(self, info: Info) -> list[Person]:
        c = ctx(info)
        rows = sorted(await self._member_rows(info), key=lambda r: (r.relation_code, r.id_number))
        c.subjects.update(r.id_number for r in rows)
        return await people_from_rows(c, info, rows)


IdNumber = Annotated[str, strawberry.argument(description="18-digit resident ID number.")]
