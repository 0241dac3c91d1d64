"""The package's architecture (docs/design.md): which package may import which, no import cycle, public
APIs between packages, small modules. Read from the source with ``ast``, so nothing is imported."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import napari_temdeblur

ROOT = Path(napari_temdeblur.__file__).parent
PKG = "napari_temdeblur"

#: Package -> the packages it may import (besides itself). "core" is the core's loose modules, "" the
#: package's top level (the npe2 adapters). Every arrow points down: this is the picture in docs/design.md.
ALLOWED = {
    "core": set(),
    "core.io": {"core"},
    "core.imaging": {"core", "core.io"},
    "core.simulate": {"core", "core.io", "core.imaging"},
    "core.register": {"core", "core.io", "core.imaging"},
    "core.models": {"core", "core.imaging"},
    "core.train": {"core", "core.io", "core.imaging", "core.models", "core.restore"},
    "core.flags": {"core", "core.io", "core.imaging", "core.simulate"},
    "core.restore": {"core", "core.io", "core.imaging", "core.models", "core.register", "core.flags"},
    "core.evaluate": {
        "core",
        "core.io",
        "core.imaging",
        "core.simulate",
        "core.models",
        "core.train",
        "core.flags",
        "core.restore",
    },
    "core.share": {"core", "core.io", "core.imaging", "core.models"},
    "layers": {"core", "core.io", "core.imaging"},
    "cli": {
        "core",
        "core.io",
        "core.imaging",
        "core.simulate",
        "core.register",
        "core.models",
        "core.train",
        "core.flags",
        "core.restore",
        "core.evaluate",
        "core.share",
    },
    "widgets": {
        "core",
        "core.io",
        "core.imaging",
        "core.register",
        "core.models",
        "core.train",
        "core.flags",
        "core.restore",
        "core.evaluate",
        "layers",
    },
    "widgets.register": {"widgets", "core", "core.io", "core.imaging", "core.register", "layers"},
    "widgets.train": {"widgets", "core", "core.io", "core.imaging", "core.models", "core.train", "layers"},
    "widgets.restore": {
        "widgets",
        "widgets.train",
        "core",
        "core.io",
        "core.imaging",
        "core.models",
        "core.restore",
        "core.evaluate",
        "layers",
    },
    "": {"core", "core.io", "core.imaging", "core.simulate", "core.register", "layers"},
}
#: Third-party packages the Qt-free core and the layer adapters must never import.
GUI = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt", "vispy")
MAX_LINES = 400
MAX_LOOSE_CORE_MODULES = 6


def module_name(path: Path) -> str:
    parts = [PKG, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}
PACKAGES = {module_name(p) for p in ROOT.rglob("__init__.py")}


def lazy_table(package: str) -> dict[str, str]:
    """Name -> private module, from a package's ``lazy_loader.attach(submod_attrs=...)``."""
    table = {}
    tree = ast.parse(MODULES[package].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "submod_attrs":
            for key, names in zip(node.value.keys, node.value.values):
                table.update({n.value: f"{package}.{key.value}" for n in names.elts})
    return table


LAZY = {package: lazy_table(package) for package in PACKAGES}


def imports(module: str) -> list[tuple[str, str | None]]:
    """(imported module, name or None) of every import statement in `module`, at any depth."""
    path = MODULES[module]
    base = module if module in PACKAGES else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                parts = base.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                source = ".".join(parts + ([node.module] if node.module else []))
            found += [(source, alias.name) for alias in node.names]
    return found


def target(source: str, name: str | None) -> str:
    """The module an import really loads: a package's lazily attached name resolves to its module."""
    if name is not None and f"{source}.{name}" in MODULES:
        return f"{source}.{name}"
    if name is not None and name in LAZY.get(source, {}):
        return LAZY[source][name]
    return source


def package_of(module: str) -> str:
    """The concern a module belongs to, as in ALLOWED ("" for the top level)."""
    name = module.removeprefix(PKG).strip(".")
    package = name if module in PACKAGES else name.rpartition(".")[0]
    return package


def edges() -> dict[str, set[str]]:
    graph = defaultdict(set)
    for module in MODULES:
        for source, name in imports(module):
            if source.split(".")[0] == PKG:
                dest = target(source, name)
                if dest != module:
                    graph[module].add(dest)
    return graph


def test_every_import_points_down_the_architecture():
    wrong = []
    for module, targets in edges().items():
        own = package_of(module)
        for dest in targets:
            theirs = package_of(dest)
            if theirs != own and theirs not in ALLOWED[own] and dest != PKG:
                wrong.append(f"{module} -> {dest}")
    assert not wrong, "imports against docs/design.md's architecture:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle():
    graph = edges()
    # Tarjan's strongly connected components: a component of more than one module is a cycle
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(MODULES):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_packages_meet_only_through_their_public_api():
    """A private module (``_name``) is imported only within its own package (and its subpackages);
    other packages import the names its package's ``__init__`` exports."""
    private = []
    for module in MODULES:
        for source, name in imports(module):
            if source.split(".")[0] != PKG:
                continue
            named = f"{source}.{name}" if f"{source}.{name}" in MODULES else source
            if named.rpartition(".")[2].startswith("_") and named in MODULES and named not in PACKAGES:
                owner = package_of(named)
                mine = package_of(module)
                if mine != owner and not mine.startswith(owner + ".") and owner != "":
                    private.append(f"{module} imports the private {named}")
    assert not private, "\n".join(private)


def test_the_core_and_the_layer_adapters_never_import_a_gui():
    offending = [
        f"{module} imports {source}"
        for module in MODULES
        if package_of(module).split(".")[0] in ("core", "layers") or module == PKG
        for source, _ in imports(module)
        if source.split(".")[0] in GUI
    ]
    assert not offending, "\n".join(offending)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it by what its parts do"


def test_the_core_keeps_few_loose_modules():
    loose = sorted(p.name for p in (ROOT / "core").glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= MAX_LOOSE_CORE_MODULES, loose


def defined_names(module: str) -> set[str]:
    """Names a module defines at its top level (functions, classes, assignments, tuple assignments)."""
    names = set()
    for node in ast.parse(MODULES[module].read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def test_every_lazily_exported_name_exists():
    missing = [
        f"{package} exports {name}, which {module} does not define"
        for package, table in LAZY.items()
        for name, module in table.items()
        if name not in defined_names(module)
    ]
    assert not missing, "\n".join(missing)


def test_the_checks_see_the_imports():
    """The graph is not empty by a parsing slip: the restore package is seen importing the models."""
    graph = edges()
    assert f"{PKG}.core.models._checkpoint" in graph[f"{PKG}.core.restore._apply"]
    assert package_of(f"{PKG}.core.restore._apply") == "core.restore" and package_of(f"{PKG}._reader") == ""
