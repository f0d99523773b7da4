"""What goes to the board (runtime and agent) imports nothing heavy: no torch, Qt, onnx, onnxruntime, rknn,
ultralytics or paramiko, and keeps to Python 3.9."""
from __future__ import annotations

import pkgutil
import subprocess
import sys

import deploy.runtime
from studio.core.bench import HEAVY_MODULES, bench_import


def pushed_modules() -> list[str]:
    from deploy.board.push import runtime_files

    return [rel[:-3].replace("/", ".").removesuffix(".__init__") for rel in runtime_files()]


def test_every_pushed_module_imports_without_heavy_packages():
    modules = pushed_modules()
    assert {f"deploy.runtime.{m.name}" for m in pkgutil.walk_packages(deploy.runtime.__path__)} <= set(modules)
    assert {"deploy.board.agent.server", "deploy.board.agent.__main__", "deploy.board.agent.protocol"} <= set(modules)
    heavy = set(HEAVY_MODULES) - {"cv2"} | {"paramiko"}
    probe = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
             f"print(sorted({{n.split('.')[0] for n in sys.modules}} & {heavy!r}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_bench_import_reports_time_and_no_heavy_modules():
    result = bench_import(runs=2)
    assert result["heavy_modules"] == [] and 0 < result["seconds"] < 5


def test_pushed_files_keep_to_python_39():
    """The board may run Python 3.9: its grammar, and no `X | Y` in annotations evaluated at import."""
    import ast

    from deploy.board.push import runtime_files

    for path in runtime_files().values():
        source = path.read_text()
        tree = ast.parse(source, feature_version=(3, 9))
        if "from __future__ import annotations" in source:
            continue
        for node in ast.walk(tree):
            annotations = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                annotations = [a.annotation for a in node.args.args + node.args.kwonlyargs] + [node.returns]
            elif isinstance(node, ast.AnnAssign):
                annotations = [node.annotation]
            for ann in filter(None, annotations):
                assert not any(isinstance(n, ast.BinOp) for n in ast.walk(ann)), f"{path.name}:{ann.lineno}"
