"""Imports run one way: entry points -> stages and trainers -> verifiers -> core.

Every import of every module counts, lazy ones inside functions too (they are how a layering
is usually broken). A module may import its own layer and the layers below it, never above.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"r1data": "r1data", "filters": "r1data.filters", "trainers": "r1data.trainers",
           "flows": "r1data.flows"}
# Top to bottom; a module's layer is its longest matching prefix.
LAYERS = [
    ("entry", ["r1data.cli", "r1data.trainers.cli", "r1data.flows"]),
    ("stages", ["r1data.filtering", "r1data.selection", "r1data.generate", "r1data.export",
                "r1data.evaluate", "r1data.prompts", "r1data.report", "r1data.coldstart",
                "r1data.query", "r1data.engines", "r1data.models", "r1data.exam",
                "r1data.harvest", "r1data.trainers", "r1data.judging", "r1data.serve",
                "r1data.serve_index", "r1data.general", "r1data.adaptive"]),
    ("verifiers", ["r1data.filters"]),
    ("core", ["r1data.config", "r1data.store", "r1data.errors", "r1data.chat", "r1data.synth",
              "r1data.testing", "r1data.sql", "r1data.neardup", "r1data.ifgen",
              "r1data.procs"]),
]
# Below the layer rule: verifiers never read the store; the code verifier (sandboxed model
# code) and the rewards stay apart (the registry names the code reward by module path).
FORBIDDEN = [("r1data.filters", "r1data.store"),
             ("r1data.filters.rewards", "r1data.filters.code"),
             ("r1data.filters.code", "r1data.filters.rewards")]


def modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            out[name] = path
    return out


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every r1data module the file imports, `from pkg import mod` resolved to the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for a in node.names:
                full = f"{base}.{a.name}"
                found.add(full if full in known else base)
    return {m for m in found if m == "r1data" or m.startswith("r1data.")}


def layer(module: str) -> int:
    if module == "r1data":  # the package's __init__
        return len(LAYERS) - 1
    best = max(((len(p), i) for i, (_, prefixes) in enumerate(LAYERS) for p in prefixes
                if module == p or module.startswith(p + ".")), default=None)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[1]


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_imports_run_one_way():
    mods = modules()
    assert "r1data.filters.rewards" in mods and "r1data.chat" in mods
    wrong = []
    for name, path in sorted(mods.items()):
        for dep in sorted(imports(path, name, set(mods))):
            if layer(dep) < layer(name):
                wrong.append(f"{name} ({LAYERS[layer(name)][0]}) imports {dep} "
                             f"({LAYERS[layer(dep)][0]})")
            wrong += [f"{name} imports {dep}" for a, b in FORBIDDEN
                      if under(name, a) and under(dep, b)]
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from r1data.store import Store\n    from . import verdicts\n")
    got = imports(src, "r1data.filters.m", {"r1data.filters.verdicts"})
    assert got == {"r1data.store", "r1data.filters.verdicts"}
    assert layer("r1data.store") > layer("r1data.filters.rewards") > layer("r1data.cli")
