"""The layout's rules that no linter checks: one place builds the pipeline, functions stay short."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_LOOP = ROOT / "deploy" / "runtime" / "run_loop.py"


def _modules():
    for package in ("studio", "deploy"):
        yield from sorted((ROOT / package).rglob("*.py"))


def _calls_to(tree: ast.AST, name: str) -> list[int]:
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
            and ((isinstance(node.func, ast.Name) and node.func.id == name)
                 or (isinstance(node.func, ast.Attribute) and node.func.attr == name))]


def test_only_the_run_loop_constructs_a_pipeline():
    """predict, live, evaluate, bench and the board agent go through deploy/runtime/run_loop.py."""
    builders = {str(path.relative_to(ROOT)): lines for path in _modules()
                if (lines := _calls_to(ast.parse(path.read_text()), "Pipeline"))}
    assert builders == {str(RUN_LOOP.relative_to(ROOT)): builders.get(str(RUN_LOOP.relative_to(ROOT)))}
    assert builders[str(RUN_LOOP.relative_to(ROOT))]


def test_functions_outside_the_gui_stay_short():
    """No function of studio/ or deploy/ outside studio/gui has a body over 60 lines (docstring included)."""
    long = []
    for path in _modules():
        if path.is_relative_to(ROOT / "studio" / "gui"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.body[0].lineno + 1
                if lines > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}() {lines} lines")
    assert not long, "\n".join(long)
