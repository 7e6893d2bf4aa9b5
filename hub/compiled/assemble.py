"""Assemble the answer from what the loading phase found: one generated function per selection.

Each selection of the compiled tree becomes a Python function (generated once, kept on the ``Selection``) that
writes the response keys in order: a value field's getter (its disclosure form, the code ``build`` runs) applied to
the department's row or rows and coerced by the schema's ``coerce_output_value`` where the value is not already
the JSON type; ``__typename`` as a constant; every other field (predicates, records, lists of items, households,
members) through a method of ``Assembler`` that applies graphql-core's rules for errors: the error located at the
field's path, a failed non-null field nulling its nearest nullable parent.

Paths are kept as nested pairs ``(parent, key)`` and made into lists only for an error.
"""

from __future__ import annotations

import keyword
import math
import operator
from collections.abc import Callable
from typing import Any

from graphql import GraphQLError, located_error

from hub.compiled.plan import Key, Kind, Selection

Path = tuple[Any, Any] | None  # (parent path, key or index); None: the root


class Fallback(Exception):
    """The compiled runner cannot promise graphql-core's answer for this request."""


class _Null(Exception):
    """A non-null field failed: its parent becomes null (the error is already located)."""

    def __init__(self, error: GraphQLError) -> None:
        self.error = error


def as_list(path: Path) -> list[Any]:
    out = []
    while path is not None:
        path, key = path
        out.append(key)
    out.reverse()
    return out


Assemble = Callable[["Assembler", Any, Any, Any, Path, Any], dict[str, Any]]


def assembler_of(sel: Selection) -> Assemble:
    """The selection's generated function ``(assembler, first row, rows, extra, path, unit) -> dict``: ``rows`` None
    when the department's rows were not loaded (no field reading them is selected); ``extra``, what the other fields
    read (a resident's records, a record's predicate answers, a household).

    The common cases are written out in the function, the rest goes through ``Assembler``'s methods, with the same
    rules: a value field's getter and coercion (``_value_lines``); a record below a person (its rows or its error:
    ``Assembler.record``); a predicate's answer (a bool, or its error: ``Assembler.predicate``); a list of items."""
    found: Assemble | None = getattr(sel, "assemble", None)
    if found is not None:
        return found
    lines = ["def assemble(A, first, rows, extra, path, unit):"]
    ns: dict[str, Any] = {"Fallback": Fallback, "Null": _Null, "isfinite": math.isfinite}
    for i, k in enumerate(sel.keys):
        ns[f"K{i}"], ns[f"k{i}"] = k.key, k
        if k.kind is Kind.VALUE:
            lines += _value_lines(i, k, ns)
        elif k.kind is Kind.TYPENAME:
            ns[f"T{i}"] = sel.type_name
            lines.append(f"    x{i} = T{i}")
        elif k.kind is Kind.RECORD:
            assert k.sub is not None
            ns[f"N{i}"], ns[f"s{i}"] = k.name, assembler_of(k.sub)
            lines += [
                f"    v = extra.records[N{i}]",
                "    if v.__class__ is tuple:",
                "        own, answers = v",
                "        try:",
                f"            x{i} = s{i}(A, own[0] if own else None, own, answers, (path, K{i}), unit)",
                "        except Null as null:",
                f"            A.nullable(null, k{i}, path, unit)",
                f"            x{i} = None",
                "    else:",
                f"        x{i} = A.record(k{i}, rows, extra, path, unit)",
            ]
        elif k.kind is Kind.PREDICATE:
            ns[f"N{i}"] = k.name
            lines += [
                f"    v = extra[N{i}]",
                f"    x{i} = v if v is True or v is False else A.predicate(k{i}, rows, extra, path, unit)",
            ]
        elif k.kind is Kind.ITEMS:
            assert k.sub is not None
            ns[f"s{i}"] = assembler_of(k.sub)
            lines += [
                "    if rows is None:",
                f"        x{i} = None",
                "    else:",
                f"        here = (path, K{i})",
                f"        x{i} = [s{i}(A, r, (), None, (here, j), unit) for j, r in enumerate(rows)]",
            ]
        else:
            lines.append(f"    x{i} = A.{k.kind.value}(k{i}, rows, extra, path, unit)")
    # the answer's keys in the selection's order (response keys are GraphQL names: written as literals)
    keys = [repr(k.key) if k.key.isidentifier() else f"K{i}" for i, k in enumerate(sel.keys)]
    lines.append("    return {" + ", ".join(f"{key}: x{i}" for i, key in enumerate(keys)) + "}")
    exec("\n".join(lines), ns)  # noqa: S102 (source made here from the schema's own names, never from a request)
    made: Assemble = ns["assemble"]
    made.__doc__ = "\n".join(lines)  # the generated source, for reading (``help``, a debugger)
    sel.assemble = made  # type: ignore[attr-defined]
    return made


def _value_lines(i: int, k: Key, ns: dict[str, Any]) -> list[str]:
    """A value field: its getter (the disclosure form) on the first row or on all rows, then null, the value as it
    is when coercion would return it unchanged (``Key.plain``), else the schema's ``coerce_output_value``.

    ``first`` is None when the rows were not loaded (``rows`` None) or there are none; a getter that reads one
    column as stored (``operator.attrgetter(column)``) is written as the attribute."""
    assert k.getter is not None
    fn = k.getter.fn
    ns[f"f{i}"], ns[f"c{i}"], ns[f"p{i}"] = fn, k.coerce, k.plain
    if k.getter.rows:
        lines = [f"    v = None if rows is None else f{i}(rows)"]
    elif (
        isinstance(fn, operator.attrgetter)
        and len(k.getter.columns) == 1
        and repr(fn) == f"operator.attrgetter({k.getter.columns[0]!r})"
        and k.getter.columns[0].isidentifier()
        and not keyword.iskeyword(k.getter.columns[0])
    ):
        lines = [f"    v = None if first is None else first.{k.getter.columns[0]}"]
    else:
        lines = [f"    v = None if first is None else f{i}(first)"]
    null = "raise Fallback('null for a non-null field')" if k.non_null else f"x{i} = None"
    lines += ["    if v is None:", f"        {null}"]
    if k.plain is int:  # Int: ``coerce_int_from_number`` returns a 32-bit int as it is
        lines.append("    elif v.__class__ is int and -2147483648 <= v <= 2147483647:")
    elif k.plain is float:  # Float: ``coerce_float_from_number`` returns a finite float as it is
        lines.append("    elif v.__class__ is float and isfinite(v):")
    elif k.plain is not None:
        lines.append(f"    elif v.__class__ is p{i}:")
    if k.plain is not None:
        lines.append(f"        x{i} = v")
    if k.enum:  # an enum's coercion looks the value up among the enum's values: kept per value
        ns[f"m{i}"] = {}
        lines += [
            "    else:",
            "        w = (v.__class__, v)",
            f"        c = m{i}.get(w)",
            "        if c is None:",
            f"            c = m{i}[w] = c{i}(v)",
            f"        x{i} = c",
        ]
    else:
        lines += ["    else:", f"        x{i} = c{i}(v)"]
    return lines


class Assembler:
    def __init__(self, loaded: dict[tuple[int, str], Any]) -> None:
        self.loaded = loaded  # async fields' values (or errors) by (object id, response key)
        self.errors: list[GraphQLError] = []
        self.units: set[Any] = set()  # the awaited units (in graphql-core) the errors came from

    def nullable(self, exc: Exception, k: Key, path: Path, unit: Any) -> None:
        """A field failed: null here if the field may be null (the error recorded), else its parent's problem."""
        self.units.add(unit)
        err = exc.error if isinstance(exc, _Null) else located_error(exc, k.nodes, [*as_list(path), k.key])
        if k.non_null:
            raise _Null(err)
        self.errors.append(err)

    def obj(self, sel: Selection, first: Any, rows: Any, extra: Any, path: Path, unit: Any) -> dict[str, Any]:
        return assembler_of(sel)(self, first, rows, extra, path, unit)

    def predicate(self, k: Key, rows: Any, extra: Any, path: Path, unit: Any) -> Any:
        v = extra[k.name]
        if isinstance(v, Exception):
            self.nullable(v, k, path, unit)
            return None
        return bool(v)

    def record(self, k: Key, rows: Any, extra: Any, path: Path, unit: Any) -> Any:
        v = extra.records[k.name]
        if isinstance(v, Exception):
            self.nullable(v, k, path, unit)
            return None
        assert k.sub is not None
        own, answers = v
        try:
            return self.obj(k.sub, own[0] if own else None, own, answers, (path, k.key), unit)
        except _Null as null:
            self.nullable(null, k, path, unit)
            return None

    def items(self, k: Key, rows: Any, extra: Any, path: Path, unit: Any) -> Any:
        if rows is None:
            return None
        assert k.sub is not None
        f, here = assembler_of(k.sub), (path, k.key)
        return [f(self, r, (), None, (here, i), unit) for i, r in enumerate(rows)]

    def household(self, k: Key, rows: Any, extra: Any, path: Path, unit: Any) -> Any:
        unit = ("household", id(extra), k.key)
        return self.household_value(k, self.loaded[(id(extra), k.key)], path, unit)

    def household_value(self, k: Key, h: Any, path: Path, unit: Any) -> Any:
        if isinstance(h, Exception):
            self.nullable(h, k, path, unit)
            return None
        if h is None:
            return None
        assert k.sub is not None
        try:
            return self.obj(k.sub, h.row, (), h, (path, k.key), unit)
        except _Null as null:
            self.nullable(null, k, path, unit)
            return None

    def size(self, k: Key, rows: Any, extra: Any, path: Path, unit: Any) -> Any:
        v = self.loaded[(id(extra), k.key)]
        if isinstance(v, Exception):
            self.nullable(v, k, path, ("size", id(extra), k.key))
            return None
        assert k.coerce is not None
        return k.coerce(v)

    def members(self, k: Key, rows: Any, extra: Any, path: Path, unit: Any) -> Any:
        unit = ("members", id(extra), k.key)
        v = self.loaded[(id(extra), k.key)]
        if isinstance(v, Exception):
            self.nullable(v, k, path, unit)
            return None
        return self.people(k, v, (path, k.key), unit)

    def people(self, k: Key, people: list[Any], here: Path, unit: Any) -> list[Any]:
        assert k.sub is not None
        f = assembler_of(k.sub)
        return [None if p is None else f(self, p.row, (), p, (here, i), unit) for i, p in enumerate(people)]

    def root(self, tree: Selection) -> dict[str, Any] | None:
        data: dict[str, Any] = {}
        for k in tree.keys:
            if k.kind is Kind.TYPENAME:
                data[k.key] = "Query"
                continue
            v = self.loaded[(0, k.key)]
            unit = ("root", k.key)
            try:
                if isinstance(v, Exception) or k.kind is Kind.ROOT_HOUSEHOLD:
                    data[k.key] = self.household_value(k, v, None, unit)  # an error, or a household
                elif k.kind is Kind.PEOPLE:
                    data[k.key] = self.people(k, v, (None, k.key), unit)
                else:
                    assert k.sub is not None
                    data[k.key] = None if v is None else self.obj(k.sub, v.row, (), v, (None, k.key), unit)
            except _Null:  # a non-null root field failed: no data at all, and graphql-core cancels the other
                raise Fallback("a non-null root field failed") from None  # root fields' loads (timing decides)
        return data
