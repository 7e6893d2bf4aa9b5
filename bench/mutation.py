"""A small AST mutation tester for the security core (see docs/testing.md).

Each mutant is one small change to one module: a comparison flipped (``<`` ↔ ``<=``, ``==`` ↔ ``!=``, ``in`` ↔
``not in``, ``is`` ↔ ``is not``), an arithmetic or bitwise operator swapped, ``and`` ↔ ``or``, a ``not`` dropped,
an integer constant off by one, ``True`` ↔ ``False``, a string constant altered, or one statement inside a
function replaced by ``pass``. Annotations, docstrings, decorators, imports and ``__all__`` are not mutated.

The module is mutated in a throw-away copy of the repository (never in the work tree) and only the fast unit
tests that cover it are run (``-x``, no conftest), one mutant at a time. A mutant is *killed* when the tests fail
or time out, *survived* when they pass. Mutants listed in ``bench/mutation_equivalent.json`` (same line text,
column and change) are reported as equivalent and left out of the score.

    .venv/bin/python bench/mutation.py hub/limits.py            # one module (the CPU is shared: one at a time)
    .venv/bin/python bench/mutation.py --all --json out.json     # every configured module, one after another
    .venv/bin/python bench/mutation.py hub/ids.py --list         # only list the mutants
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EQUIVALENT_FILE = REPO / "bench" / "mutation_equivalent.json"

# module -> the fast tests that cover it (pure functions; no app, no database, no network)
MODULES: dict[str, list[str]] = {
    "hub/policy/plan.py": ["tests/unit/test_plan.py"],
    "hub/policy/engine.py": ["tests/unit/test_engine.py", "tests/unit/test_plan.py"],
    "hub/policy/forms.py": ["tests/unit/test_forms.py"],
    "hub/policy/model.py": ["tests/unit/test_engine.py", "tests/unit/test_plan.py"],
    "hub/policy/loader.py": ["tests/unit/test_policy_loader.py"],
    "hub/policy/explain.py": ["tests/unit/test_explain.py"],
    "hub/limits.py": ["tests/unit/test_limits.py"],
    "hub/auth/tokens.py": ["tests/unit/test_tokens.py"],
    "hub/ids.py": ["tests/unit/test_ids.py"],
    "hub/audit/merkle.py": ["tests/unit/test_merkle_build.py", "tests/audit/test_merkle.py", "-k", "not flipped_bit"],
}

_COMPARE: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_BINOP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitAnd,
    ast.Pow: ast.Mult,
}
_SYMBOL = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.Pow: "**",
}


@dataclass
class Mutant:
    index: int
    line: int
    col: int
    change: str
    source_line: str
    previous_line: str  # the nearest non-blank line above: tells identical lines apart
    status: str = ""  # killed | survived | timeout | equivalent

    def key(self) -> tuple[str, str, int, str]:
        return (self.source_line.strip(), self.previous_line.strip(), self.col, self.change)


def _skipped_nodes(tree: ast.Module) -> set[int]:
    """ids of nodes that are never mutated: annotations, docstrings, decorators, imports, ``__all__``."""
    skip: set[int] = set()

    def add(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            add(node.annotation)
        elif isinstance(node, ast.AnnAssign):
            add(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                add(node.returns)
            for d in node.decorator_list:
                add(d)
        elif isinstance(node, ast.Import | ast.ImportFrom | ast.JoinedStr):
            add(node)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            add(node)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            add(node)  # a docstring, or the string documenting the attribute above it
    return skip


def _function_statements(tree: ast.Module) -> set[int]:
    """ids of statements directly inside a function body (these may be deleted)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                for field in ("body", "orelse", "finalbody"):
                    block = getattr(inner, field, None)
                    if isinstance(block, list):
                        out.update(id(stmt) for stmt in block if isinstance(stmt, ast.stmt))
                for handler in getattr(inner, "handlers", []) or []:
                    out.update(id(s) for s in handler.body)
    return out


class _Mutator(ast.NodeTransformer):
    """Visits every mutation point in order; applies the ``target``-th one (or none, only counting)."""

    def __init__(self, skip: set[int], deletable: set[int], target: int = -1) -> None:
        self.skip, self.deletable, self.target = skip, deletable, target
        self.points: list[tuple[int, int, str]] = []

    def _point(self, node: ast.AST, change: str) -> bool:
        self.points.append((getattr(node, "lineno", 0), getattr(node, "col_offset", 0), change))
        return len(self.points) - 1 == self.target

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if id(node) in self.skip:
            return node
        if isinstance(node, ast.stmt) and id(node) in self.deletable and not isinstance(node, ast.Pass):
            if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
                if self._point(node, f"delete {type(node).__name__.lower()}"):
                    return ast.copy_location(ast.Pass(), node)
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                new = _COMPARE.get(type(op))
                if new is not None and self._point(node, f"{_SYMBOL[type(op)]} -> {_SYMBOL[new]} #{i}"):
                    node.ops[i] = new()
        elif isinstance(node, ast.BinOp | ast.AugAssign):
            new_op = _BINOP.get(type(node.op))
            if new_op is not None and self._point(node, f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[new_op]}"):
                node.op = new_op()
        elif isinstance(node, ast.BoolOp):
            other: ast.boolop = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            if self._point(node, f"{type(node.op).__name__.lower()} -> {type(other).__name__.lower()}"):
                node.op = other
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub | ast.Invert):
            if self._point(node, f"drop {type(node.op).__name__.lower()}"):
                return self.generic_visit(node.operand)
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                if self._point(node, f"{value} -> {not value}"):
                    return ast.copy_location(ast.Constant(not value), node)
            elif isinstance(value, int):
                if self._point(node, f"{value} -> {value + 1}"):
                    return ast.copy_location(ast.Constant(value + 1), node)
            elif isinstance(value, str):
                if self._point(node, f"string {value[:20]!r} altered"):
                    return ast.copy_location(ast.Constant("XX" + value + "XX"), node)
        return super().generic_visit(node)


def mutants(source: str) -> Iterator[tuple[tuple[int, int, str], str]]:
    """Every (point, mutated source) of ``source``."""
    tree = ast.parse(source)
    count = _Mutator(_skipped_nodes(tree), _function_statements(tree))
    count.visit(tree)
    for i, point in enumerate(count.points):
        tree = ast.parse(source)
        m = _Mutator(_skipped_nodes(tree), _function_statements(tree), target=i)
        mutated = ast.fix_missing_locations(m.visit(tree))
        yield point, ast.unparse(mutated)


def _load_equivalents(module: str) -> dict[tuple[str, str, int, str], str]:
    if not EQUIVALENT_FILE.exists():
        return {}
    data = json.loads(EQUIVALENT_FILE.read_text(encoding="utf-8"))
    return {(e["line"], e["previous"], e["col"], e["change"]): e["reason"] for e in data.get(module, [])}


def _copy_repo(dest: Path) -> None:
    for name in ("hub", "tests", "policies", "pyproject.toml"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)


# Third-party packages the tests import, loaded once in this process; each mutant's tests run in a forked child,
# which imports the (mutated) hub modules from the throw-away copy and nothing else anew.
PRELOAD = (
    "pytest",
    "hypothesis",
    "graphql",
    "joserfc.jwt",
    "joserfc.jws",
    "cryptography.hazmat.primitives.asymmetric.ec",
    "strawberry",
    "sqlalchemy",
    "httpx",
    "starlette.applications",
)


def _preload(workdir: Path) -> None:
    import importlib

    sys.dont_write_bytecode = True  # a mutant of the same size and second must never reuse a stale .pyc
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if any(m == "hub" or m.startswith("hub.") for m in sys.modules):
        raise SystemExit("a preloaded package imported hub; the mutants would not be seen")
    vectors = REPO.parent / "shared" / "vectors" / "rfc6962" / "testdata"  # tests/audit/test_merkle.py reads them
    if vectors.is_dir():
        os.environ.setdefault("HUB_VECTORS_DIR", str(vectors))
    os.chdir(workdir)
    sys.path.insert(0, str(workdir))


def _run_tests(tests: list[str], timeout: float) -> str:
    """Run ``tests`` in a forked child; killed | survived | timeout."""
    import signal

    import pytest

    pid = os.fork()
    if pid == 0:  # the child: run the tests, never return
        code = 1
        try:
            if not os.environ.get("MUTATION_DEBUG"):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
            code = int(
                pytest.main(
                    [
                        "-x",
                        "-q",
                        "-n",
                        "0",  # in this process (pyproject's addopts run the suite on every core)
                        "-p",
                        "no:cacheprovider",
                        "--noconftest",
                        "-W",
                        "ignore::pytest.PytestAssertRewriteWarning",
                        *tests,
                    ]
                )
            )
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.01)


def run_module(module: str, tests: list[str], *, only_list: bool = False, verbose: bool = False) -> dict[str, object]:
    source = (REPO / module).read_text(encoding="utf-8")
    lines = source.splitlines()
    equivalents = _load_equivalents(module)
    found: list[tuple[Mutant, str]] = []
    for i, ((line, col, change), mutated) in enumerate(mutants(source)):
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        before = next((ln for ln in reversed(lines[: max(line - 1, 0)]) if ln.strip()), "")
        found.append((Mutant(i, line, col, change, text, before), mutated))
    stale = set(equivalents) - {m.key() for m, _ in found}
    for key in sorted(stale):
        print(f"  stale entry in {EQUIVALENT_FILE.name} for {module}: {key}", flush=True)
    if only_list:
        for m, _ in found:
            print(f"{module}:{m.line}:{m.col}: {m.change}  | {m.source_line.strip()}  || {m.previous_line.strip()}")
        return {"module": module, "mutants": len(found)}
    with tempfile.TemporaryDirectory(prefix="hub-mutation-") as tmp:
        work = Path(tmp)
        _copy_repo(work)
        home = os.getcwd()
        _preload(work)
        started = time.monotonic()
        if _run_tests(tests, timeout=600) != "survived":
            raise SystemExit(f"{module}: the tests fail without any mutation; fix them first")
        baseline = time.monotonic() - started
        timeout = max(15.0, 5 * baseline)
        target = work / module
        for m, mutated in found:
            if m.key() in equivalents:
                m.status = "equivalent"
                continue
            target.write_text(mutated, encoding="utf-8")
            m.status = _run_tests(tests, timeout)
            if verbose or m.status in ("survived", "timeout"):
                print(f"  {m.status:9} {module}:{m.line}:{m.col}: {m.change}  | {m.source_line.strip()}", flush=True)
        target.write_text(source, encoding="utf-8")
        os.chdir(home)
        sys.path.remove(str(work))
    counts = {s: sum(1 for m, _ in found if m.status == s) for s in ("killed", "timeout", "survived", "equivalent")}
    scored = counts["killed"] + counts["timeout"] + counts["survived"]
    score = (counts["killed"] + counts["timeout"]) / scored if scored else 1.0
    return {
        "module": module,
        "mutants": len(found),
        **counts,
        "score": round(100 * score, 1),
        "survivors": [
            {
                "line": m.source_line.strip(),
                "previous": m.previous_line.strip(),
                "lineno": m.line,
                "col": m.col,
                "change": m.change,
            }
            for m, _ in found
            if m.status == "survived"
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="module paths, e.g. hub/limits.py")
    parser.add_argument("--all", action="store_true", help="every configured module, one after another")
    parser.add_argument("--tests", nargs="+", help="override the tests run for the module(s)")
    parser.add_argument("--list", action="store_true", help="only list the mutants")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    modules = list(MODULES) if args.all else args.modules
    if not modules:
        parser.error("name a module or use --all")
    results = []
    for module in modules:
        tests = args.tests or MODULES.get(module)
        if not tests:
            parser.error(f"no tests configured for {module}; pass --tests")
        started = time.monotonic()
        result = run_module(module, tests, only_list=args.list, verbose=args.verbose)
        result["seconds"] = round(time.monotonic() - started)
        results.append(result)
        if not args.list:
            print(
                f"{module}: {result['mutants']} mutants, {result['killed']} killed, {result['timeout']} timed out, "
                f"{result['survived']} survived, {result['equivalent']} equivalent; score {result['score']}% "
                f"({result['seconds']} s)",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
