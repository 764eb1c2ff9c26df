"""The house's structure, checked: an acyclic import graph, layers and models free of the fused
kernels, and functions short enough to read."""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "attnzoo"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """attnzoo module -> the attnzoo modules it imports (anywhere in the file, functions included)."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, path.name == "__init__.py", node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target.startswith("attnzoo") and target != name:
                    graph[name].add(target)
    return graph


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            visit(nxt)
        stack.pop()

    for node in sorted(edges):
        visit(node)
    return cycles


def test_imports_have_no_cycles_between_modules():
    # Every module, the package __init__ files included, and imports inside functions too.
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_layers_and_models_know_nothing_of_the_fused_kernels():
    for package in ("layers", "models"):
        for path in (SRC / package).rglob("*.py"):
            text = path.read_text()
            assert "fused" not in text, f"{path} mentions the fused kernels"


def test_no_function_is_longer_than_60_lines():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, "functions over 60 lines: " + ", ".join(long)


def test_layers_and_models_hold_equations_not_kernel_paths():
    # Fast paths live in ops/ (custom ops with registered backwards), chosen there: no module
    # differentiates by hand, reads torch's hook globals or reaches past the ops' public functions.
    pattern = re.compile(r"autograd\.Function|_global_\w*hooks|ops\.(library|aten_kernels|triton_kernels|selection)")
    found = []
    for package in ("layers", "models"):
        for path in (SRC / package).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    found.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert not found, "kernel paths in layers/ or models/: " + "; ".join(found)


def test_the_op_layer_registers_its_ops():
    import torch

    import attnzoo.ops  # noqa: F401  (registers the ops)

    for name in ("gate", "global_pools", "channel_pools"):
        assert hasattr(torch.ops.attnzoo, name), f"attnzoo::{name} is not registered"
    imports = import_graph()
    assert not {t for m in imports if m.startswith("attnzoo.ops") for t in imports[m] if not t.startswith("attnzoo.ops")}, \
        "ops/ is the bottom layer: it imports nothing else of attnzoo"


def test_no_code_outside_models_names_a_backbones_parts():
    # Freezing, Grad-CAM, localisation and input sizes ask the model's Layout (models/slots.py); a
    # string such as "layer4" (or f"layer{i}") in code outside models/ would work for ResNets only.
    part = re.compile(r"layer[1-4]|conv1|bn1|inception[1-3]")
    found = []
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).parts[0] == "models":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings and part.fullmatch(node.value):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value!r}")
            if isinstance(node, ast.JoinedStr) and any(isinstance(v, ast.Constant) and str(v.value).endswith("layer") for v in node.values):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: an f-string naming layer{{i}}")
    assert not found, "backbone part names outside models/: " + "; ".join(found)


def test_utils_import_no_other_attnzoo_package():
    outside = {f"{m} -> {t}" for m, targets in import_graph().items() if m.startswith("attnzoo.utils")
               for t in targets if not t.startswith("attnzoo.utils")}
    assert not outside, sorted(outside)
