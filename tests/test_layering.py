"""The core is in wings, and the wings are layered (every import counted, also the ones inside
functions): the plugin API at the top of ``pgolf_core/``; below it nothing but the API itself; then
the stream, the run, the codec, the sandboxed proof, the checks, ``evaluate`` (with the author's
toolkit) and the CLI on top. No module imports from a later wing, and no import cycle exists between
modules. Modules that moved into a wing keep their old import path for plugins (``MOVED``), and no
file of this repository uses an old path."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pgolf_core

ROOT = Path(pgolf_core.__file__).resolve().parent
REPO = ROOT.parent
API = {"errors", "tolerances", "digest", "options", "hookspecs", "api", "causal_lm", "registry", "plugins", "presets"}
# plugin API at the top of the folder, layered with the wing whose parts it uses: a tokenizer gives
# the stream's byte table
LAYERED_WITH = {"tokenizers": "stream"}
WINGS = [  # a module may import only from its own wing or the wings before it
    {"api"},
    {"stream"},
    {"demo"},  # the built-in demo stream: a tokenizer and tokens, nothing of the run
    {"run"},
    {"codec", "datacheck"},
    {"proof"},  # the sandboxed decoder: the codec, never the checks that call it
    {"checks"},
    {"top"},  # evaluate, the package's facade, the author's toolkit, the builtin plugins' registration
    {"cli"},
]
TOP = {"evaluate", "builtin", "__init__", "testing"}  # testing: the author's toolkit, a face of checks.contract


def wing(module: str) -> str:
    head = module.split(".")[0]
    if head in API:
        return "api"
    if head in TOP:
        return "top"
    if head in LAYERED_WITH:
        return LAYERED_WITH[head]
    return "cli" if head == "__main__" else head


def modules() -> dict:
    """Dotted name under pgolf_core (``run.loop``; a package is its ``__init__``) -> file."""
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)] = p
    return out


def imports(path: Path) -> set:
    """Core modules named by any import statement in the file (``from . import x`` names x)."""
    package = ["pgolf_core", *path.relative_to(ROOT).parent.parts]  # what a level-1 import is relative to
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            full = [*base, *(node.module.split(".") if node.module else [])]
            if full[:1] != ["pgolf_core"]:
                continue
            for a in node.names:
                sub = ROOT.joinpath(*full[1:], a.name)
                if sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file():
                    found.add(".".join([*full[1:], a.name]))
                else:
                    found.add(".".join(full[1:]) or "__init__")
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".", 1)[1] for a in node.names if a.name.startswith("pgolf_core.")}
    return found


def graph() -> dict:
    mods = modules()
    return {m: sorted((imports(p) & set(mods)) - {m}) for m, p in mods.items()}


def find_cycle(g: dict):
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in g.get(m, ()):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                cyc = visit(n)
                if cyc:
                    return cyc
        state[m] = 2
        stack.pop()
        return None

    for m in g:
        if m not in state:
            cyc = visit(m)
            if cyc:
                return cyc
    return None


def test_the_core_has_no_import_cycle():
    g = graph()
    assert "run.session" in g and "evaluate" in g["cli"]  # the graph sees the modules and their imports
    assert find_cycle(g) is None, f"import cycle: {' -> '.join(find_cycle(g))}"


def test_each_module_imports_only_its_wing_or_earlier_ones():
    rank = {w: i for i, names in enumerate(WINGS) for w in names}
    g = graph()
    unplaced = sorted(m for m in g if wing(m) not in rank)
    assert not unplaced, f"modules in no wing: {unplaced}"
    wrong = [f"{m} ({wing(m)}) imports {n} ({wing(n)})" for m, deps in g.items() for n in deps
             if rank[wing(n)] > rank[wing(m)]]
    assert not wrong, "; ".join(wrong)


def test_the_top_of_the_core_is_the_plugin_api_and_the_wings():
    top = sorted(p.stem for p in ROOT.glob("*.py"))
    assert set(top) == API | TOP | set(LAYERED_WITH) | {"__main__"}, top
    assert {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} == {w for ws in WINGS for w in ws} - {"api", "top"}


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": []}) is None


def test_a_moved_module_keeps_its_old_path_as_the_same_module():
    from pgolf_core import MOVED

    for old, new in MOVED.items():
        module = importlib.import_module(f"pgolf_core.{old}")
        assert module is importlib.import_module(f"pgolf_core.{new}")
        assert module.__spec__.name == f"pgolf_core.{new}"  # the alias does not rename the module
        assert getattr(pgolf_core, old) is module
    from pgolf_core.data import load_tokens  # noqa: F401  (what a plugin written before the wings imports)


def test_no_file_of_the_repository_uses_an_old_path():
    from pgolf_core import MOVED

    old = re.compile(r"\bpgolf_core[./](" + "|".join(MOVED) + r")\b")
    skip = {".git", ".venv", "__pycache__", "build"}
    hits = []
    for p in REPO.rglob("*"):
        if p.suffix in {".py", ".md", ".toml"} and not skip & set(p.relative_to(REPO).parts) and p.is_file():
            if p == ROOT / "__init__.py" or p == Path(__file__).resolve():
                continue
            hits += [f"{p.relative_to(REPO)}:{i}" for i, line in enumerate(p.read_text().splitlines(), 1)
                     if old.search(line)]
    assert not hits, hits[:20]
