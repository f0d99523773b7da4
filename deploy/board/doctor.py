"""`studio board doctor`: a board's versions against a model's and the shipped compatibility table.

`board check` says what is there; the doctor says whether this model will run right on it:
each finding names what is wrong, whether it blocks running the model, the fix, and where
the rule is documented in public (compat.json). Rules read only the facts `board check`
gathers and the model's sidecar, so recorded facts test them as well as a live board.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from deploy.board.check import BoardReport
from deploy.board.facts import version_tuple
from deploy.runtime.metadata import read_model_meta

EXIT_BLOCKED = 4  # a finding blocks running the model (2 is a bad input, 3 an unreachable board)
RK3588_CORES = 3
TABLE = json.loads((Path(__file__).with_name("compat.json")).read_text())


@dataclass(frozen=True)
class ModelFacts:
    """What the doctor needs of a model: its file name, the toolkit release and platform that built it."""

    name: str
    backend: str  # rknnlite for an .rknn, ort for an .onnx
    toolkit: str | None = None
    platform: str | None = None


@dataclass(frozen=True)
class Finding:
    rule: str
    blocks: bool
    says: str
    fix: str
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self) | {"sources": list(self.sources)}


def model_facts(path: Path) -> ModelFacts:
    """The facts of an exported model (from its sidecar; a UserError when there is none)."""
    meta = read_model_meta(path)
    toolkit = (meta.provenance or {}).get("tools", {}).get("rknn-toolkit2")
    rknn = path.suffix == ".rknn"
    return ModelFacts(path.name, "rknnlite" if rknn else "ort",
                      toolkit if rknn and toolkit and toolkit != "not installed" else None,
                      meta.build.platform if rknn and meta.build else None)


def _finding(rule: str, **facts) -> Finding:
    entry = TABLE["rules"][rule]
    sources = tuple(TABLE[s]["source"] if s in TABLE else s for s in entry["sources"])
    return Finding(rule, entry["blocks"], entry["says"].format(**facts), entry["fix"].format(**facts), sources)


def _missing(report: BoardReport, backend: str) -> list[Finding]:
    """`board check`'s gaps as findings: a part the agent needs blocks, an NPU part blocks an .rknn (and does not
    concern an .onnx); an unreadable driver version does not block (reading it often needs root)."""
    found = []
    for gap in report.missing:
        if gap["needed_for"] == "npu" and backend != "rknnlite":
            continue
        found.append(Finding(f"missing: {gap['part']}", gap["part"] != "rknpu driver",
                             f"not found on the board (needed for the {gap['needed_for']})", gap["fix"]))
    if backend == "ort" and report.onnxruntime is None:
        found.append(Finding("missing: onnxruntime", True, "not found on the board (needed to run an .onnx model)",
                             "pip install onnxruntime for the board's Python, or: studio board setup "
                             "NAME --wheels DIR"))
    return found


def board_platform(soc: str) -> str | None:
    """The toolkit's platform name of a board's SoC ("Radxa ROCK 5B (RK3588)" -> "rk3588")."""
    match = re.search(r"\b(RK\d{4}S?|RV\d{4})\b", soc, re.I)
    return match.group(1).lower() if match else None


def _same_platform(a: str, b: str) -> bool:
    return a == b or any(a in family and b in family for family in TABLE["platform_families"])


def _driver_wanted(runtime: tuple[int, ...]) -> tuple[str, str] | None:
    """(runtime release, driver) of the newest pairing the runtime is at least."""
    met = [(r, d) for r, d in TABLE["driver_for_runtime"]["pairs"] if runtime >= version_tuple(r)]
    return met[-1] if met else None


def _version_rules(r: BoardReport, model: ModelFacts | None, board: str) -> list[Finding]:
    found = []
    runtime, lite = version_tuple(r.librknnrt or ""), version_tuple(r.rknn_toolkit_lite2 or "")
    needs_npu = model is None or model.backend == "rknnlite"
    if model and model.backend == "rknnlite":
        if model.toolkit is None:
            found.append(_finding("toolkit-unknown", model=model.name))
        elif runtime and runtime < version_tuple(model.toolkit):
            found.append(_finding("runtime-older-than-toolkit", runtime=r.librknnrt, toolkit=model.toolkit,
                                  model=model.name, board=board))
        platform = board_platform(r.soc)
        if model.platform and platform and not _same_platform(model.platform, platform):
            found.append(_finding("platform-differs", model=model.name, platform=model.platform, soc=r.soc,
                                  board_platform=platform))
    if needs_npu and runtime and lite and runtime[:2] != lite[:2]:
        found.append(_finding("lite-and-runtime-differ", lite=r.rknn_toolkit_lite2, runtime=r.librknnrt, board=board))
    toolkit = version_tuple(model.toolkit) if model and model.toolkit else None
    release = max(filter(None, (runtime, toolkit)), default=None)  # the runtime the model needs, at least
    wanted = _driver_wanted(release) if needs_npu and release else None
    driver = version_tuple(r.npu_driver or "")
    if wanted and driver and driver < version_tuple(wanted[1]):
        found.append(_finding("driver-older-than-runtime", driver=r.npu_driver, wanted=wanted[1], paired=wanted[0]))
    return found


def _npu_rules(r: BoardReport) -> list[Finding]:
    found = []
    clock = r.npu_devfreq
    if clock and clock["governor"] != "performance":
        found.append(_finding("governor-not-performance", governor=clock["governor"], cur=clock["cur_mhz"],
                              max=clock["max_mhz"]))
    if board_platform(r.soc) in ("rk3588", "rk3588s") and r.npu_load and len(r.npu_load) < RK3588_CORES:
        found.append(_finding("fewer-npu-cores", seen=len(r.npu_load)))
    return found


def diagnose(report: BoardReport, model: ModelFacts | None) -> list[Finding]:
    """Every finding, blocking ones first; none means the model (or, without one, the NPU path) should run."""
    backend = model.backend if model else "rknnlite"
    found = _missing(report, backend) + _version_rules(report, model, report.board)
    if backend == "rknnlite":
        found += _npu_rules(report)
    return sorted(found, key=lambda f: not f.blocks)
