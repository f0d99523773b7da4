"""`studio board check`: what the board runs and what it lacks for the NPU runtime, with the fix for each gap.

One shell probe runs over SSH and prints its findings in sections; the readers in facts.py
turn them into numbers and versions on the host, so the board needs nothing but a shell.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from deploy.board import facts
from deploy.board.session import BoardSession, quote

MIN_PYTHON = (3, 9)
LIB_DIRS = ("/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/lib/aarch64-linux-gnu")


def _module_version(python: str, module: str, dist: str | None = None) -> str:
    lookup = f"importlib.metadata.version('{dist}')" if dist else f"{module}.__version__"
    return f"{quote(python, '-c', f'import importlib.metadata, {module}; print({lookup})')} 2>/dev/null || echo missing"


def probe_script(python: str, root: str) -> str:
    """The shell probe: a section per fact; anything absent prints nothing or 'missing'.

    Python sees what `studio board setup` unpacked into <root>/site and <root>/lib, as the agent does.
    """
    libs = " ".join(f"{d}/librknnrt.so" for d in LIB_DIRS)
    parts = {
        "os": "cat /etc/os-release 2>/dev/null",
        "arch": "uname -m",
        "kernel": "uname -r",
        "model": "cat /proc/device-tree/model 2>/dev/null | tr '\\000' '\\n'",
        "compatible": "cat /proc/device-tree/compatible 2>/dev/null | tr '\\000' '\\n'",
        "python": f"{quote(python, '-c', 'import sys; print(sys.version.split()[0])')} 2>/dev/null || echo missing",
        "numpy": _module_version(python, "numpy"),
        "opencv": _module_version(python, "cv2"),
        "rknnlite": _module_version(python, "rknnlite", "rknn-toolkit-lite2"),
        "onnxruntime": _module_version(python, "onnxruntime"),
        "rasterio": _module_version(python, "rasterio"),
        "librknnrt": f"for f in {libs} {quote(root + '/lib/librknnrt.so')}; do [ -f \"$f\" ] && "
                     "grep -a -o -m1 'librknnrt version: [^ ]* ([^)]*)' \"$f\" && break; done",
        "npu_version": "cat /sys/kernel/debug/rknpu/version 2>/dev/null || cat /sys/module/rknpu/version "
                       "2>/dev/null || dmesg 2>/dev/null | grep -m1 'Initialized rknpu'",
        "npu_load": "cat /sys/kernel/debug/rknpu/load 2>/dev/null",
        "npu_devfreq": "for d in /sys/class/devfreq/*npu*; do [ -d \"$d\" ] && echo \"$(cat \"$d/governor\") "
                       "$(cat \"$d/cur_freq\") $(cat \"$d/max_freq\")\"; done 2>/dev/null",
        "cpuinfo": "cat /proc/cpuinfo",
        "meminfo": "cat /proc/meminfo",
        "df": f"mkdir -p {quote(root)} && df -Pk {quote(root)}",
    }
    env = (f"export PYTHONPATH={quote(root + '/site')}; "
           f"export LD_LIBRARY_PATH={quote(root + '/lib')}\"${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\"")
    return "\n".join([env] + [f"echo @@{name}; {command}" for name, command in parts.items()])


@dataclass
class BoardReport:
    board: str
    address: str
    os: str
    arch: str
    soc: str
    kernel: str
    cpu: dict
    memory: dict
    disk_free_mb: int | None
    python: str | None
    numpy: str | None
    opencv: str | None
    rknn_toolkit_lite2: str | None
    onnxruntime: str | None
    librknnrt: str | None
    npu_driver: str | None
    npu_load: dict | None
    npu_devfreq: dict | None = None  # governor, cur_mhz, max_mhz
    rasterio: str | None = None  # optional: GeoTIFFs bigger than memory are read by windows on the board with it
    missing: list[dict] = field(default_factory=list)  # {"part", "fix"}

    @property
    def agent_ready(self) -> bool:
        """The agent can run (with the ONNX Runtime backend at least)."""
        return not any(m["needed_for"] == "agent" for m in self.missing)

    @property
    def npu_ready(self) -> bool:
        """The agent can run on the NPU."""
        return not self.missing

    def to_dict(self) -> dict:
        return asdict(self) | {"agent_ready": self.agent_ready, "npu_ready": self.npu_ready}

    def rows(self) -> list[tuple[str, str]]:
        """The facts as (what, value) for a table (CLI and GUI), then each missing part with its fix."""
        cpu, mem = self.cpu, self.memory
        facts = [("os", self.os), ("arch", self.arch), ("soc", self.soc or "-"), ("kernel", self.kernel),
                 ("cpu", f"{cpu.get('cores')} cores, {cpu.get('model') or '-'}"),
                 ("memory", f"{mem.get('available_mb')} of {mem.get('total_mb')} MiB available"),
                 ("disk free", f"{self.disk_free_mb} MiB"), ("python", self.python or "missing"),
                 ("numpy", self.numpy or "missing"), ("opencv", self.opencv or "missing"),
                 ("rknn-toolkit-lite2", self.rknn_toolkit_lite2 or "missing"),
                 ("librknnrt", self.librknnrt or "missing"), ("npu driver", self.npu_driver or "missing"),
                 ("npu load", ", ".join(f"{k} {v}%" for k, v in (self.npu_load or {}).items()) or "-"),
                 ("npu clock", _clock(self.npu_devfreq)),
                 ("rasterio", f"{self.rasterio} (GeoTIFFs read by windows: scenes bigger than memory)" if self.rasterio
                  else "not installed (optional: a GeoTIFF is then decoded whole, and map features come back in "
                       "pixels; pip install rasterio for scenes bigger than memory)")]
        return facts + [(f"missing: {m['part']}", f"{m['fix']} (for the {m['needed_for']})") for m in self.missing]

    def verdict(self) -> str:
        return ("ready for the NPU" if self.npu_ready else "the agent can run (ort backend); the NPU needs the "
                "parts listed" if self.agent_ready else "not ready: the agent needs the parts listed")


def _clock(devfreq: dict | None) -> str:
    if not devfreq:
        return "-"
    return f"{devfreq['cur_mhz']} of {devfreq['max_mhz']} MHz, governor {devfreq['governor']}"


def _version(text: str) -> str | None:
    text = text.strip()
    return None if not text or text == "missing" else text.splitlines()[-1]


def gaps(r: BoardReport, python_cmd: str) -> list[dict]:
    """Each missing or too-old part, what it is needed for, and how to get it."""
    found = []

    def need(part, needed_for, fix):
        found.append({"part": part, "needed_for": needed_for, "fix": fix})

    if r.arch not in ("aarch64", "arm64"):
        need("aarch64 CPU", "npu", f"this is {r.arch or 'an unknown architecture'}, not an RK3588: the NPU backend "
             "cannot run here (the agent still runs with --backend ort)")
    version = facts.version_tuple(r.python or "")
    if version is None or version < MIN_PYTHON:
        need("Python >= 3.9", "agent", f"`{python_cmd}` is {r.python or 'missing'}: sudo apt install python3, "
             "or point the profile at another interpreter (studio board add NAME ... --python PATH --replace)")
    if r.numpy is None:
        need("numpy", "agent", "sudo apt install python3-numpy, or: studio board setup NAME --wheels DIR")
    if r.opencv is None:
        need("OpenCV (cv2)", "agent", "sudo apt install python3-opencv (reads images, video and cameras)")
    if r.rknn_toolkit_lite2 is None:
        need("rknn-toolkit-lite2", "npu", "pip install the rknn_toolkit_lite2 wheel for the board's Python (from "
             "rknn-toolkit2's rknn-toolkit-lite2/packages), or: studio board setup NAME --wheels DIR")
    if r.librknnrt is None:
        need("librknnrt.so", "npu", "copy librknnrt.so (rknpu2 runtime, Linux/librknn_api/aarch64) to /usr/lib, "
             "or: studio board setup NAME --wheels DIR with the .so in DIR")
    if r.npu_driver is None:
        need("rknpu driver", "npu", "no NPU driver answered (/sys/kernel/debug/rknpu): use the vendor kernel "
             "(rknpu 0.9.x); reading it may also need root (debugfs)")
    return found


def check_board(board: BoardSession) -> BoardReport:
    """Run the probe and read it."""
    p = board.profile
    return read_report(board.run(probe_script(p.python, board.root), check=False, timeout=60).out, p.name, p.address,
                       p.python)


def read_report(probe_output: str, name: str, address: str, python_cmd: str) -> BoardReport:
    """The report of a probe's output (as run on a board, or recorded from one)."""
    raw = facts.sections(probe_output)
    report = BoardReport(
        board=name, address=address, os=facts.os_release(raw.get("os", "")), arch=raw.get("arch", ""),
        soc=facts.soc(raw.get("model", ""), raw.get("compatible", "")), kernel=raw.get("kernel", ""),
        cpu=facts.cpu(raw.get("cpuinfo", "")), memory=facts.memory_mb(raw.get("meminfo", "")),
        disk_free_mb=facts.disk_free_mb(raw.get("df", "")), python=_version(raw.get("python", "")),
        numpy=_version(raw.get("numpy", "")), opencv=_version(raw.get("opencv", "")),
        rknn_toolkit_lite2=_version(raw.get("rknnlite", "")), onnxruntime=_version(raw.get("onnxruntime", "")),
        librknnrt=facts.librknnrt(raw.get("librknnrt", "")), npu_driver=facts.npu_driver(raw.get("npu_version", "")),
        npu_load=facts.npu_load(raw.get("npu_load", "")), npu_devfreq=facts.npu_devfreq(raw.get("npu_devfreq", "")),
        rasterio=_version(raw.get("rasterio", "")),
    )
    report.missing = gaps(report, python_cmd)
    return report
