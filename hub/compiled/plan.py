"""Compile an operation into a tree of response keys the runner fills without graphql-core's per-field resolution.

The tree depends only on the document, the operation and the values of the variables its ``@skip``/``@include``
read: the policy plan (consumer, purpose, scope) is made for every request before execution, and row scope and
authorization are applied by the same loaders as the resolvers'. Fields are collected by graphql-core's own
``collect_fields``/``collect_subfields`` (aliases, fragments, inline fragments, ``@skip``/``@include`` exactly as
execution merges them); leaves are coerced by the schema's own ``coerce_output_value``. Anything outside the
supported part (root fields ``person``, ``people``, ``household`` and what lies below them) compiles to None and
the request runs through graphql-core.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLFloat,
    GraphQLInt,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
    is_non_null_type,
    visit,
)
from graphql.execution.collect_fields import (
    FieldDetails,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues
from graphql.language import DirectiveNode, Visitor

from hub.schema.people import RECORD_FIELDS, Household, Person
from hub.schema.records import Getter, getters, predicates

GraphQLLeafTypes = (GraphQLScalarType, GraphQLEnumType)
_BUILT_IN = (GraphQLString, GraphQLBoolean, GraphQLInt, GraphQLFloat)
_PLAIN: dict[str, type] = {"String": str, "Boolean": bool, "Int": int, "Float": float}


class Kind(Enum):
    TYPENAME = "typename"
    VALUE = "value"  # a ``value`` field: the attribute ``build`` computed with the field's getter (forms applied)
    PREDICATE = "predicate"  # a record's yes/no field: its answer from ``record.answers``
    RECORD = "record"  # a department record below Person
    ITEMS = "items"  # a record's list of one-row objects (properties, vehicles, roles)
    HOUSEHOLD = "household"  # Person.household (loaded, as by its resolver, with ``load_household``)
    SIZE = "size"  # Household.size
    MEMBERS = "members"  # Household.members
    PERSON = "person"  # root fields
    PEOPLE = "people"
    ROOT_HOUSEHOLD = "root_household"


@dataclass(frozen=True)
class RawInfo:
    """What the resolvers' helpers read from graphql-core's resolve info (``info._raw_info``)."""

    field_nodes: list[FieldNode]
    fragments: dict[str, FragmentDefinitionNode]
    variable_values: VariableValues
    schema: GraphQLSchema


@dataclass(frozen=True)
class Info:
    """Stands for strawberry's ``Info`` when the compiled runner calls the resolvers' loading functions."""

    _raw_info: RawInfo


@dataclass
class Key:
    """One response key of a selection: what produces it and how."""

    key: str
    name: str  # the field's name
    kind: Kind
    nodes: list[FieldNode]
    parent: str  # the parent type's name
    non_null: bool
    attr: str = ""  # Python attribute (VALUE, RECORD, ITEMS)
    getter: Getter | None = None  # VALUE: the field's getter (its disclosure form), run on the row(s) as ``build`` does
    coerce: Callable[[Any], Any] | None = None  # a leaf's coerce_output_value; None: passed through when str/bool
    # values of this Python type pass through uncoerced: str for String, bool for Boolean; int for Int and float for
    # Float when within what their ``coerce_output_value`` returns unchanged (32 bits; finite)
    plain: type | None = None
    enum: bool = False  # an enum: its coerced values are kept by value (the coercion looks the value up each time)
    sub: Selection | None = None
    info: Info | None = None  # for the loading functions (objects below this field)
    args: dict[str, Any] = field(default_factory=dict)  # root fields' arguments


@dataclass
class Selection:
    type_name: str
    keys: list[Key]


class Unsupported(Exception):
    """The operation reaches something the compiled path does not run; graphql-core runs it."""


_OBJECTS: dict[str, type] = {"Person": Person, "Household": Household}
for _attr, _cls in RECORD_FIELDS.values():
    _OBJECTS[_cls.__name__] = _cls
    for _, _name, _g in getters(_cls):
        if _g.item is not None:
            _OBJECTS[_g.item.__name__] = _g.item


_RECORD_TYPES = frozenset(cls.__name__ for _, cls in RECORD_FIELDS.values())


class _Compiler:
    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, values: VariableValues
    ) -> None:
        self.schema, self.operation, self.values = schema, operation, values
        self.definitions = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.fragments = {name: FragmentDetails(d) for name, d in self.definitions.items()}

    def info(self, nodes: list[FieldNode]) -> Info:
        return Info(RawInfo(nodes, self.definitions, self.values, self.schema))

    def root(self) -> Selection:
        if self.operation.operation is not OperationType.QUERY:
            raise Unsupported("only queries")
        query = self.schema.query_type
        assert query is not None
        collected = collect_fields(self.schema, self.fragments, self.values, query, self.operation)
        if collected.new_defer_usages:
            raise Unsupported("@defer")
        keys = []
        for key, details in collected.grouped_field_set.items():
            nodes = [d.node for d in details]
            name = nodes[0].name.value
            if name == "__typename":
                keys.append(Key(key, name, Kind.TYPENAME, nodes, "Query", True))
                continue
            kind = {"person": Kind.PERSON, "people": Kind.PEOPLE, "household": Kind.ROOT_HOUSEHOLD}.get(name)
            if kind is None:
                raise Unsupported(f"root field {name}")
            gfield = query.fields[name]
            target = get_named_type(gfield.type)
            assert isinstance(target, GraphQLObjectType)
            keys.append(
                Key(
                    key,
                    name,
                    kind,
                    nodes,
                    "Query",
                    is_non_null_type(gfield.type),
                    sub=self.selection(target, details),
                    info=self.info(nodes),
                )
            )
        return Selection("Query", keys)

    def selection(self, parent: GraphQLObjectType, details: list[FieldDetails]) -> Selection:
        collected = collect_subfields(self.schema, self.fragments, self.values, self.operation, parent, details)
        if collected.new_defer_usages:
            raise Unsupported("@defer")
        cls = _OBJECTS.get(parent.name)
        if cls is None:
            raise Unsupported(f"type {parent.name}")
        value_attrs = {gql: (py, g) for py, gql, g in getters(cls) if g.item is None}
        if parent.name not in _RECORD_TYPES and any(g.rows for _, g in value_attrs.values()):
            raise Unsupported(f"a field of {parent.name} reads all its rows")  # assembly gives such objects one row
        item_attrs = {gql: (py, g.item) for py, gql, g in getters(cls) if g.item is not None}
        preds = predicates(cls) if parent.name not in ("Person", "Household") else {}
        keys = []
        for key, sub in collected.grouped_field_set.items():
            nodes = [d.node for d in sub]
            name = nodes[0].name.value
            if name == "__typename":
                keys.append(Key(key, name, Kind.TYPENAME, nodes, parent.name, True))
                continue
            gfield: GraphQLField = parent.fields[name]
            non_null = is_non_null_type(gfield.type)
            target = get_named_type(gfield.type)
            k = Key(key, name, Kind.VALUE, nodes, parent.name, non_null)
            if name in value_attrs:
                if is_list_type(get_nullable_type(gfield.type)) or not isinstance(target, GraphQLLeafTypes):
                    raise Unsupported(f"{parent.name}.{name} is not a single leaf")
                k.attr, k.getter = value_attrs[name]
                k.coerce = target.coerce_output_value
                k.plain = _PLAIN.get(target.name) if target in _BUILT_IN else None
                k.enum = isinstance(target, GraphQLEnumType)
            elif name in item_attrs:
                k.kind, k.attr = Kind.ITEMS, item_attrs[name][0]
                assert isinstance(target, GraphQLObjectType)
                k.sub = self.selection(target, sub)
            elif name in preds:
                k.kind = Kind.PREDICATE
            elif parent.name == "Person" and name in RECORD_FIELDS:
                k.kind, k.attr = Kind.RECORD, RECORD_FIELDS[name][0]
                assert isinstance(target, GraphQLObjectType)
                k.sub = self.selection(target, sub)
            elif (parent.name, name) == ("Person", "household"):
                assert isinstance(target, GraphQLObjectType)
                k.kind, k.sub, k.info = Kind.HOUSEHOLD, self.selection(target, sub), self.info(nodes)
            elif (parent.name, name) == ("Household", "size"):
                assert isinstance(target, GraphQLLeafTypes)
                k.kind, k.coerce, k.info = Kind.SIZE, target.coerce_output_value, self.info(nodes)
            elif (parent.name, name) == ("Household", "members"):
                assert isinstance(target, GraphQLObjectType)
                k.kind, k.sub, k.info = Kind.MEMBERS, self.selection(target, sub), self.info(nodes)
            else:
                raise Unsupported(f"field {parent.name}.{name}")
            keys.append(k)
        return Selection(parent.name, keys)


def directive_variables(document: DocumentNode) -> tuple[str, ...]:
    """The variables any ``@skip``/``@include`` of the document reads (they decide which fields are collected)."""
    names: set[str] = set()

    class Directives(Visitor):
        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            if node.name.value in ("skip", "include"):
                for arg in node.arguments or ():
                    if isinstance(arg.value, VariableNode):
                        names.add(arg.value.name.value)
                    elif not isinstance(arg.value, BooleanValueNode):
                        names.add("")  # cannot happen in a valid document

    visit(document, Directives())
    return tuple(sorted(names))


@dataclass
class _Entry:
    document: DocumentNode  # kept, so that its id is not reused while it is cached
    directive_vars: tuple[str, ...]
    trees: dict[tuple[Any, ...], Selection | None] = field(default_factory=dict)


class CompiledPlans:
    """Compiled trees by document (identity: valid documents are cached by query text, ``ValidDocuments``),
    operation and the values of the variables ``@skip``/``@include`` read (LRU, like validated documents)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.hits = self.misses = 0
        self._entries: OrderedDict[tuple[int, int, str], _Entry] = OrderedDict()

    def get(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        values: VariableValues,
    ) -> Selection | None:
        ident = (id(schema), id(document), operation.name.value if operation.name else "")
        entry = self._entries.get(ident)
        if entry is None or entry.document is not document:
            entry = self._entries[ident] = _Entry(document, directive_variables(document))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        self._entries.move_to_end(ident)
        try:
            switch = tuple(repr(values.coerced.get(v)) for v in entry.directive_vars)
        except Exception:  # noqa: BLE001
            return None
        if switch in entry.trees:
            self.hits += 1
            return entry.trees[switch]
        self.misses += 1
        try:
            tree: Selection | None = _Compiler(schema, document, operation, values).root()
        except Unsupported:
            tree = None
        if len(entry.trees) < 16:
            entry.trees[switch] = tree
        return tree
