"""A versioned schema (CHANGELOG.md, docs/operations.md "A versioned schema").

``schema.graphql`` is the published contract. The contract of each release is kept in ``schema-history/
<version>.graphql``. ``hub schema diff OLD NEW`` lists breaking and dangerous changes (graphql-core's
``find_breaking_changes`` and ``find_dangerous_changes``). ``hub schema check`` is the CI gate: compared with the
latest release at or before the project's version, a breaking change needs

* a new version: the major version raised (the minor one while the major is 0, as semantic versioning reads
  0.x), and
* a ``## <version>`` section in CHANGELOG.md naming every changed coordinate, and
* for a removed field, a ``@deprecated`` on it (naming the replacement) in the release it is removed from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from graphql import GraphQLInterfaceType, GraphQLObjectType, GraphQLSchema, build_schema
from graphql.utilities import BreakingChangeType, find_breaking_changes, find_dangerous_changes

from hub.errors import RequestError

_COORDINATE = re.compile(r"\b[A-Za-z_]\w*\.[A-Za-z_]\w*")
_WORD = re.compile(r"\b[A-Za-z_]\w*\b")
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class Change:
    kind: str  # graphql-core's change type, e.g. FIELD_CHANGED_KIND
    description: str
    breaking: bool
    coordinate: str  # the type or field it is about, e.g. ProvidentFundRecord.balanceBand

    def __str__(self) -> str:
        return f"{'BREAKING' if self.breaking else 'dangerous'} {self.kind}: {self.description}"


def load_sdl(path: Path) -> GraphQLSchema:
    try:
        return build_schema(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RequestError(f"{path}: cannot be read ({exc.strerror})", code="BAD_ARGUMENT") from None
    except Exception as exc:  # noqa: BLE001 (a syntax or schema error in the file: named, never a traceback)
        raise RequestError(f"{path}: not a valid schema: {str(exc).splitlines()[0]}", code="BAD_ARGUMENT") from None


def _coordinate(description: str, old: GraphQLSchema) -> str:
    found = _COORDINATE.search(description)
    if found:
        return found.group(0)
    return next((w for w in _WORD.findall(description) if w in old.type_map), "")


def diff(old: GraphQLSchema, new: GraphQLSchema) -> list[Change]:
    """Breaking changes first, then dangerous ones, each in graphql-core's order."""
    changes = [
        Change(c.type.name, c.description, True, _coordinate(c.description, old))
        for c in find_breaking_changes(old, new)
    ]
    changes += [
        Change(c.type.name, c.description, False, _coordinate(c.description, old))
        for c in find_dangerous_changes(old, new)
    ]
    return changes


def parse_version(version: str) -> tuple[int, int, int]:
    m = _VERSION.match(version.strip())
    if m is None:
        raise RequestError(f"version {version!r} is not MAJOR.MINOR.PATCH", code="BAD_ARGUMENT")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def allows_breaking(released: str, current: str) -> bool:
    """Whether ``current`` may break ``released``'s contract: a new major version (a new minor one under 1.0)."""
    r, c = parse_version(released), parse_version(current)
    return c[0] > r[0] or (r[0] == 0 and c[0] == 0 and c[1] > r[1])


def changelog_section(changelog: str, version: str) -> str | None:
    """The text under ``## <version>`` (the heading may go on: ``## 0.2.0 (2026-06-01)``), or None."""
    lines = changelog.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"^## \[?{re.escape(version)}\]?(\s|$)", line):
            rest = lines[i + 1 :]
            end = next((j for j, x in enumerate(rest) if x.startswith("## ")), len(rest))
            return "\n".join(rest[:end])
    return None


def latest_release(history: Path, version: str) -> tuple[str, Path] | None:
    """The newest ``<history>/<v>.graphql`` with ``v`` at or before ``version``."""
    current = parse_version(version)
    releases = []
    for path in history.glob("*.graphql"):
        if _VERSION.match(path.stem) and parse_version(path.stem) <= current:
            releases.append((parse_version(path.stem), path.stem, path))
    if not releases:
        return None
    _, name, path = max(releases)
    return name, path


def check(schema_path: Path, history: Path, changelog_path: Path, version: str) -> tuple[list[Change], list[str]]:
    """(the changes since the latest release, what is wrong with them: empty when the gate passes)."""
    release = latest_release(history, version)
    if release is None:
        return [], [f"no released schema at or before {version} in {history}"]
    released, path = release
    old, new = load_sdl(path), load_sdl(schema_path)
    changes = diff(old, new)
    breaking = [c for c in changes if c.breaking]
    problems: list[str] = []
    if not breaking:
        return changes, problems
    if not allows_breaking(released, version):
        problems.append(
            f"{len(breaking)} breaking change(s) since {released}, but the version is {version}: "
            "raise the major version (the minor one before 1.0)"
        )
    section = changelog_section(changelog_path.read_text(encoding="utf-8"), version)
    if section is None:
        problems.append(f"{changelog_path.name} has no '## {version}' section for the breaking change(s)")
    for c in breaking:
        if section is not None and c.coordinate and c.coordinate not in section:
            problems.append(f"{changelog_path.name} '## {version}' does not name {c.coordinate} ({c.description})")
        if c.kind == BreakingChangeType.FIELD_REMOVED.name and not _was_deprecated(old, c.coordinate):
            problems.append(f"{c.coordinate} was removed without first being marked @deprecated in {released}")
    return changes, problems


def _was_deprecated(old: GraphQLSchema, coordinate: str) -> bool:
    type_name, _, field_name = coordinate.partition(".")
    gql_type = old.type_map.get(type_name)
    fields = gql_type.fields if isinstance(gql_type, GraphQLObjectType | GraphQLInterfaceType) else {}
    field = fields.get(field_name)
    return field is not None and bool(field.deprecation_reason)
