"""The package's shape (issue 14): no import cycle, no private name imported across modules, no module
over 300 lines, and the layers depend one way: the core pipeline never imports the course or the
playground, and the course never imports the playground.

Imports are read with ``ast`` from the source, inside functions too (a lazy import is still a
dependency), so the checks need no import of the package.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "nstlib"
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) for every ``import``/``from`` statement of ``path``."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return [(t, names) for t, names in found if t == "nstlib" or t.startswith("nstlib.")]


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def resolve(target: str, names: list[str]) -> set[str]:
    """The modules a statement depends on: ``from pkg import mod`` names a module, else the target."""
    subs = {f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES}
    return subs or ({target} if target in MODULES else set())


def graph() -> dict[str, set[str]]:
    """module -> the modules it imports (package ``__init__`` files only re-export: left out)."""
    return {m: {d for t, names in imports(p) for d in resolve(t, names) if not MODULES[d].name == "__init__.py"}
            for m, p in MODULES.items() if p.name != "__init__.py"}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_the_checker_finds_a_cycle_and_a_private_import():
    """The checks themselves, on hand-made inputs (so a broken checker cannot pass silently)."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert resolve("nstlib.course", ["checks"]) == {"nstlib.course.checks"}
    assert resolve("nstlib.vgg", ["VGGFeatures"]) == {"nstlib.vgg"}


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("name", sorted(m for m, p in MODULES.items()))
def test_no_private_name_imported_across_modules(name):
    private = [f"{t}.{n}" for t, names in imports(MODULES[name]) for n in names
               if n.startswith("_") and not n.startswith("__")]
    assert not private, f"{name} imports private names {private}: make them public or move the code"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_over_300_lines(name):
    n = len(MODULES[name].read_text().splitlines())
    assert n <= MAX_LINES, f"{name} has {n} lines (at most {MAX_LINES}): split it by idea"


def test_layers_depend_one_way():
    """core -> nothing above it; course -> core; playground -> core (and course's quick mode is not needed)."""
    g = graph()
    layer = lambda m: ("playground" if m.startswith("nstlib.playground") else  # noqa: E731
                       "course" if m.startswith("nstlib.course") else "core")
    allowed = {"core": {"core"}, "course": {"core", "course"}, "playground": {"core", "playground"}}
    wrong = sorted(f"{m} -> {d}" for m, deps in g.items() for d in deps if layer(d) not in allowed[layer(m)])
    assert not wrong, "imports against the layering: " + ", ".join(wrong)
    top = {t for t, _ in imports(PKG / "__init__.py")}
    assert not any(t.startswith(("nstlib.course", "nstlib.playground")) for t in top), \
        "import nstlib must not load the course or the playground"
