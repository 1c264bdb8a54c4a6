"""The import graph of the core has no cycle and keeps its layers (every import counted, also the
ones inside functions): data, bytes and the registry below the loop, the loop below the session,
the session below evaluate, the audit, the compressor and the testing checks, the CLI on top."""

from __future__ import annotations

import ast
from pathlib import Path

import pgolf_core

ROOT = Path(pgolf_core.__file__).resolve().parent
LAYERS = [  # a module may import only from its own layer or the layers before it
    {"errors", "digest", "statecodec", "options", "hookspecs", "api", "causal_lm", "registry", "plugins", "bytes", "data", "caseops",
     "container", "coderformat", "coding", "rangecoder", "distributed", "verdict", "report", "plot", "demo", "builtin", "presets", "tokenizers",
     "device", "tolerances"},
    {"grouping", "grouping_kernels", "loop", "build", "compiled", "datacheck"},
    {"session"},
    {"run"},
    {"audit_engine", "testing", "spotcheck", "audit", "compress", "resume", "proof"},
    {"checks"},
    {"evaluate", "__init__"},
    {"cli_options", "cli", "audit_cli", "compress_cli", "cli_commands", "doctor", "__main__"},
]


def modules() -> dict:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out[parts[0] if parts[0] != "demo" else "demo"] = out.get(parts[0], []) + [p]
    return out


def imports(paths) -> set:
    """Core modules named by any import statement in the files (``from . import x`` names x)."""
    found = set()
    for path in paths:
        package = ["pgolf_core", *path.relative_to(ROOT).parent.parts]  # what a level-1 import is relative to
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                full = [*base, *(node.module.split(".") if node.module else [])]
                if full[:1] != ["pgolf_core"]:
                    continue
                if len(full) > 1:
                    found.add(full[1])
                else:  # from pgolf_core import x: x is a module of the core, or a name of the package
                    names = {a.name for a in node.names}
                    submodules = {n for n in names if (ROOT / f"{n}.py").is_file() or (ROOT / n).is_dir()}
                    found |= submodules | ({"__init__"} if names - submodules else set())
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("pgolf_core.")}
    return found


def graph() -> dict:
    mods = modules()
    return {m: sorted((imports(paths) & set(mods)) - {m}) for m, paths in mods.items()}


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
    assert "session" in g and "evaluate" in g["cli"]  # the graph sees the modules and their imports
    assert find_cycle(g) is None, f"import cycle: {' -> '.join(find_cycle(g))}"


def test_each_module_imports_only_its_layer_or_lower():
    layer = {m: i for i, names in enumerate(LAYERS) for m in names}
    g = graph()
    assert set(g) <= set(layer), f"modules without a layer: {sorted(set(g) - set(layer))}"
    wrong = [f"{m} (layer {layer[m]}) imports {n} (layer {layer[n]})" for m, deps in g.items() for n in deps
             if layer[n] > layer[m]]
    assert not wrong, "; ".join(wrong)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": []}) is None
