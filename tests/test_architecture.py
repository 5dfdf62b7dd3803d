"""Imports run one way: a layer imports only the layers below it, and no import closes a circle.

The layers are docs/architecture.md's table. Every import counts, wherever it is written: at module
level, inside a function, under ``if TYPE_CHECKING:`` (a type a module names is a module it depends
on: the service's routes once closed a circle by naming ``Service`` so), and by name (a string that names
another witskit module, as the lazy ``_LAZY`` tables and ``transport/urls.py``'s ``_delegate`` do).
Logger names and a module's own package are not imports. Three rules:

* layer: a module imports only its own layer, the layers its layer may import, and ``base``;
* private: ``a.b._c`` is imported only from inside ``a.b``;
* circle: no strongly connected component of more than one module in the import graph.

No break is known today: :data:`KNOWN` is empty. A break not in it fails, and so does an entry that
no longer occurs, so an exception can only be added with its reason and removed when it is gone.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Top-level name under ``witskit`` -> its layer. ``witskit`` itself is the public facade.
LAYER_OF = {
    "errors": "base",
    "symbols": "symbols",
    "protocol": "protocol",
    "units": "units",
    "transport": "transport",
    "storage": "storage",
    "pipeline": "pipeline",
    "security": "security",
    "monitoring": "monitoring",
    "config": "config",
    "sim": "sim",
    "simulator": "sim",  # the seed's module path, kept importable over witskit.sim
    "export": "export",
    "analytics": "analytics",
    "service": "service",
    "cli": "cli",
    "__main__": "cli",
}
#: Layer -> the layers it may import directly; what those may import comes with them, and every
#: layer may import ``base`` (the error tree, ``_version`` and any other ``witskit._*`` helper).
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    "symbols": set(),
    "protocol": {"symbols"},
    "units": {"symbols"},
    "transport": {"protocol"},
    "storage": {"protocol"},
    # pipeline.build reads the pipeline file; the relay converts values to the units a consumer
    # wants; the alarm stage runs analytics' rules live
    "pipeline": {"transport", "storage", "config", "units", "analytics"},
    "security": {"protocol"},
    "monitoring": set(),
    "config": set(),
    "sim": {"protocol", "transport"},
    "export": {"protocol", "units"},
    "analytics": {"protocol", "units"},
    "service": {"pipeline", "security", "monitoring", "sim", "export", "analytics", "units"},
    "cli": {"service"},
    # The facade: `import witskit` stays light. It names witskit.sim.source in the table of URL
    # schemes served above transport (witskit._schemes), imported only when a sim:// URL is opened.
    "witskit": {"protocol", "units", "sim"},
}

#: Every known break -> the issue-11 item that removes it. Delete an entry when its break is gone.
KNOWN: dict[str, str] = {}


def modules(src: Path) -> dict[str, Path]:
    """Every module under ``src/witskit`` by dotted name (a package by its own name)."""
    out = {}
    for path in sorted((src / "witskit").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(src: Path) -> dict[str, dict[str, int]]:
    """Module -> {witskit module it imports: the line of the first such import}."""
    known = modules(src)

    def resolve(name: str) -> str | None:
        while name and name not in known:  # `from a.b import C`: C is a name in module a.b
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        loggers = {
            id(arg)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("getLogger")
            for arg in node.args
        }
        found: dict[str, int] = {}
        for node in ast.walk(tree):
            names: Iterable[str] = ()
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .x import y
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                names = [f"{base}.{alias.name}" for alias in node.names]
            elif (
                isinstance(node, ast.Constant)
                and id(node) not in loggers
                and node.value in known
                and node.value != "witskit"
                and not f"{module}.".startswith(f"{node.value}.")
            ):
                names = [node.value]  # imported by name
            for name in names:
                target = resolve(name) if f"{name}.".startswith("witskit.") else None
                if target and target != module:
                    line = getattr(node, "lineno", 0)
                    found[target] = min(found.get(target, line), line)
        graph[module] = found
    return graph


def layer(module: str) -> str | None:
    """The layer of a module; None for a top-level name the table does not know yet."""
    if module == "witskit":
        return "witskit"
    top = module.split(".")[1]
    if top.startswith("_") and top != "__main__":
        return "base"
    return LAYER_OF.get(top)


def allowed(of: str) -> set[str]:
    """The layers ``of`` may import: its own, ``base``, and the closure of :data:`MAY_IMPORT`."""
    out, todo = {of, "base"}, [of]
    while todo:
        for below in MAY_IMPORT.get(todo.pop(), set()) - out:
            out.add(below)
            todo.append(below)
    return out


def circles(graph: dict[str, dict[str, int]]) -> set[tuple[str, ...]]:
    """The strongly connected components of more than one module (small graph: reachability)."""
    reach: dict[str, set[str]] = {}
    for start in graph:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), {}):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reach[start] = seen
    return {
        tuple(sorted({m} | {n for n in reach[m] if m in reach.get(n, ())})) for m in graph if m in reach[m]
    }


def breaks(src: Path) -> dict[str, str]:
    """Every break of the three rules -> where it is (``path:line``)."""
    graph, paths = imports(src), modules(src)
    out = {}
    for module, targets in graph.items():
        where = str(paths[module].relative_to(src))
        for target, line in targets.items():
            if layer(target) not in allowed(layer(module) or "?"):
                out[f"layer: {module} imports {layer(target)}"] = f"{where}:{line} imports {target}"
            private = next((p for p in target.split(".")[1:] if p.startswith("_")), None)
            if private and private != "__main__":
                owner = target[: target.index(f".{private}")]
                if not module.startswith(f"{owner}.") and module != owner:
                    out[f"private: {module} imports {target}"] = f"{where}:{line}"
    for circle in circles(graph):
        edges = [f"{m}:{graph[m][t]} -> {t}" for m in circle for t in graph[m] if t in circle]
        out[f"circle: {', '.join(circle)}"] = "; ".join(edges)
    return out


def test_every_module_has_a_layer() -> None:
    unknown = sorted(m for m in modules(SRC) if layer(m) is None)
    assert not unknown, f"give these a layer in LAYER_OF and in docs/architecture.md: {unknown}"


def test_no_import_crosses_a_layer_or_closes_a_circle() -> None:
    new = {key: where for key, where in breaks(SRC).items() if key not in KNOWN}
    assert not new, "imports that break docs/architecture.md's rules:\n" + "\n".join(
        f"  {key}  ({where})" for key, where in sorted(new.items())
    )


def test_every_known_break_still_occurs() -> None:
    fixed = sorted(set(KNOWN) - set(breaks(SRC)))
    assert not fixed, "fixed, so delete from KNOWN (and docs/architecture.md):\n" + "\n".join(
        f"  {key}" for key in fixed
    )


def test_docs_architecture_shows_the_enforced_rules() -> None:
    text = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("## The layers", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in table.splitlines() if line.startswith("| ")][1:]
    documented = {cells[0].strip(): {name.strip() for name in cells[3].split(",")} - {"-"} for cells in rows}
    assert documented == MAY_IMPORT
    for key, item in KNOWN.items():  # every known break is on the page, under the item that removes it
        assert f"- {item.split(':')[0]}:" in text, key


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"protocol/a.py": "def f():\n    import witskit.service.b\n", "service/b.py": ""},
            {"layer: witskit.protocol.a imports service"},
            id="function-level-upward",
        ),
        pytest.param(
            {
                "symbols/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from witskit.units import x\n",
                "units.py": "",
            },
            {"layer: witskit.symbols imports units"},
            id="type-checking-upward",
        ),
        pytest.param(
            {"transport/a.py": "X = {'b': 'witskit.storage._b'}\n", "storage/_b.py": ""},
            {
                "layer: witskit.transport.a imports storage",
                "private: witskit.transport.a imports witskit.storage._b",
            },
            id="by-name-private",
        ),
        pytest.param(
            {
                "storage/a.py": "from . import b\n",
                "storage/b.py": "def f():\n    from witskit.storage.a import x\n",
            },
            {"circle: witskit.storage.a, witskit.storage.b"},
            id="relative-circle",
        ),
        pytest.param(
            {"units.py": "import witskit\n"}, {"layer: witskit.units imports witskit"}, id="the-facade"
        ),
        pytest.param(
            {
                "cli/a.py": "import logging\nlog = logging.getLogger('witskit.service.b')\n",
                "service/b.py": "",
            },
            set(),
            id="logger-name-is-no-import",
        ),
    ],
)
def test_the_checker_sees_each_kind_of_import(
    tmp_path: Path, files: dict[str, str], expected: set[str]
) -> None:
    for name, text in {"__init__.py": "", **files}.items():
        path = tmp_path / "witskit" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not (path.parent / "__init__.py").exists():
            (path.parent / "__init__.py").write_text("")
        path.write_text(text)
    assert set(breaks(tmp_path)) == expected
