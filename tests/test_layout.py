"""The house's layout: rooms on floors, no import upward, no cycle, no private names borrowed.

A room is a top-level module or package of ``eapu``; a room imports only rooms on its own
floor or below (lazy imports inside functions included), and the modules of one package
import each other without a cycle. The floors are the architecture of DESIGN.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "eapu"

FLOORS: dict[str, int] = {
    "validate": 0,
    "runtime": 0,
    "formatting": 0,
    "files": 0,
    "registry": 1,
    "seam": 1,
    "rundir": 1,
    "rules": 2,
    "ledger": 2,
    "data": 2,
    "metrics": 2,
    "models": 2,
    "devices": 3,
    "programming": 4,
    "tiles": 5,
    "nn": 6,
    "hwa": 6,
    "optim": 6,
    "algorithms": 7,
    "energy": 8,
    "retention": 8,
    "report": 8,
    "experiments": 9,
    "cli": 10,
}
TOP = ("__init__", "__main__")  # the package's own entry points may import anything


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = ["eapu", *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _typing_only(tree: ast.Module) -> set[int]:
    """Line numbers of the imports under ``if TYPE_CHECKING:`` (annotations, not run)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines |= {n.lineno for b in node.body for n in ast.walk(b) if hasattr(n, "lineno")}
    return lines


def _imports(path: Path, *, typing: bool = True) -> list[tuple[str, list[str]]]:
    """(absolute module, names) of every import in ``path``, lazy ones too (and those under
    ``if TYPE_CHECKING:`` unless ``typing`` is False)."""
    tree = ast.parse(path.read_text())
    skip = set() if typing else _typing_only(tree)
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "eapu" else None


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_room_has_a_floor() -> None:
    rooms = {_room(_module_name(p)) for p in _sources()} - {None, *TOP}
    assert rooms <= set(FLOORS), f"rooms without a floor: {sorted(rooms - set(FLOORS))}"


def test_no_room_imports_a_room_above_it() -> None:
    upward = []
    for path in _sources():
        me = _room(_module_name(path))
        if me is None or me in TOP:
            continue
        for mod, names in _imports(path):
            targets = [mod] if mod != "eapu" else [f"eapu.{n}" for n in names]
            for target in targets:
                other = _room(target)
                if other is not None and other in FLOORS and FLOORS[other] > FLOORS[me]:
                    upward.append(
                        f"{path.relative_to(SRC)} ({me}, floor {FLOORS[me]}) imports "
                        f"{target} (floor {FLOORS[other]})"
                    )
    assert not upward, "\n".join(upward)


def test_no_import_cycle() -> None:
    """At run time (an import only for annotations is not a cycle of the running code)."""
    graph: dict[str, set[str]] = {}
    names = {_module_name(p) for p in _sources()}
    for path in _sources():
        me = _module_name(path)
        deps = set()
        for mod, imported in _imports(path, typing=False):
            for cand in [mod, *(f"{mod}.{n}" for n in imported)]:
                if cand in names and cand != me and not me.startswith(cand + "."):
                    deps.add(cand)
        graph[me] = deps
    seen: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        seen[node] = 1
        for dep in sorted(graph.get(node, ())):
            if dep == "eapu":
                continue
            if seen.get(dep) == 1:
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in seen:
                visit(dep, [*stack, dep])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen and node != "eapu":
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_no_module_imports_another_modules_private_names() -> None:
    for path in _sources():
        for module, names in _imports(path):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            assert not private, f"{path.relative_to(SRC)} imports {private} from {module}"


def test_no_module_is_over_700_lines_but_the_catalogs() -> None:
    catalogs = {"models.py", "data.py"}  # one entry per network / data set
    long = {
        str(p.relative_to(SRC)): n
        for p in _sources()
        if p.name not in catalogs and (n := len(p.read_text().splitlines())) > 700
    }
    assert not long, long
