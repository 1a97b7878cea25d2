"""The package's import graph, read from its source with `ast` (imports inside functions
included): one-way, and the light modules stay light."""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "keras_nmt"


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(module: str) -> set[str]:
    """The package modules `module` imports anywhere in its source (`from P import m` counts
    as importing the module `P.m` when there is one, else `P`)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
    return {name for name in found if name in MODULES and name != module}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


GRAPH = {module: imports(module) for module in MODULES}


def reachable(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for target in GRAPH[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_imports_form_no_cycle():
    assert len(GRAPH) > 40 and sum(map(len, GRAPH.values())) > 60  # the walk found the package
    assert cycles(GRAPH) == []


def test_the_special_ids_import_nothing():
    tree = ast.parse(MODULES["keras_nmt.special_ids"].read_text(encoding="utf-8"))
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def test_model_code_does_not_load_the_tokenizer():
    for module in ("keras_nmt.models.seq2seq", "keras_nmt.models.losses", "keras_nmt.decoding"):
        assert "keras_nmt.data.tokenizer" not in reachable(module), module


def test_reading_an_export_needs_no_model_code():
    """The export readers and the export format reach neither Keras layers nor the model
    (`inference.loading` imports the in-process translator inside `load`, for run
    directories only)."""
    heavy = ("keras_nmt.models", "keras_nmt.layers", "keras_nmt.inference.translator")
    for module in (
        "keras_nmt.exporting.format",
        "keras_nmt.inference.saved_model",
        "keras_nmt.inference.tflite",
    ):
        assert not [name for name in reachable(module) if name.startswith(heavy)], module
    assert [name for name in reachable("keras_nmt.inference.loading") if name.startswith(heavy)]
