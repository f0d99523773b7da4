"""Readers of a board's system files and tool outputs, each a pure function of the text it reads.

They are tested against sample files in tests/data/board/ written in the formats the
Linux kernel, the rknpu driver and librknnrt use on RK3588 boards.
"""
from __future__ import annotations

import re

ARM_PARTS = {"0xd03": "Cortex-A53", "0xd05": "Cortex-A55", "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76"}


def os_release(text: str) -> str:
    """PRETTY_NAME of /etc/os-release (else NAME VERSION)."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values.get("PRETTY_NAME") or " ".join(filter(None, [values.get("NAME"), values.get("VERSION")])) or ""


def cpu(text: str) -> dict:
    """/proc/cpuinfo: core count and the core types (ARM part numbers named), or the x86 model name."""
    cores = len(re.findall(r"^processor\s*:", text, re.M))
    models = re.findall(r"^model name\s*:\s*(.+)$", text, re.M)
    if models:
        return {"cores": cores, "model": models[0].strip()}
    parts = re.findall(r"^CPU part\s*:\s*(0x[0-9a-fA-F]+)", text, re.M)
    counts: dict[str, int] = {}
    for part in parts:
        name = ARM_PARTS.get(part.lower(), part)
        counts[name] = counts.get(name, 0) + 1
    return {"cores": cores, "model": " + ".join(f"{n}x {name}" for name, n in counts.items())}


def memory_mb(text: str) -> dict:
    """/proc/meminfo: total and available, in MiB."""
    kib = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+):\s+(\d+) kB", text, re.M)}
    available = kib.get("MemAvailable", kib.get("MemFree", 0))
    return {"total_mb": kib.get("MemTotal", 0) // 1024, "available_mb": available // 1024}


def disk_free_mb(text: str) -> int | None:
    """`df -Pk PATH`: the free space of that file system, in MiB."""
    rows = [line.split() for line in text.strip().splitlines()[1:]]
    rows = [r for r in rows if len(r) >= 6 and r[3].isdigit()]
    return int(rows[-1][3]) // 1024 if rows else None


def npu_driver(text: str) -> str | None:
    """/sys/kernel/debug/rknpu/version ("RKNPU driver: v0.9.8") or the driver's dmesg ("Initialized rknpu 0.9.8")."""
    match = re.search(r"RKNPU driver:\s*v?([\d.]+)", text) or re.search(r"Initialized rknpu\s+v?([\d.]+)", text)
    return match.group(1) if match else None


def npu_load(text: str) -> dict[str, int] | None:
    """/sys/kernel/debug/rknpu/load: percent busy per core ("NPU load:  Core0:  5%, Core1:  0%, Core2:  0%,")."""
    cores = re.findall(r"Core(\d+):\s*(\d+)%", text)
    if cores:
        return {f"core{n}": int(p) for n, p in cores}
    single = re.search(r"NPU load:\s*(\d+)%", text)
    return {"core0": int(single.group(1))} if single else None


def librknnrt(text: str) -> str | None:
    """The version string librknnrt.so carries ("librknnrt version: 2.3.0 (c949ad889d@2024-11-07T11:35:33)")."""
    match = re.search(r"librknnrt version:\s*([\w.]+)", text)
    return match.group(1) if match else None


def soc(model: str, compatible: str) -> str:
    """The board and SoC from the device tree (/proc/device-tree/model and compatible, NUL-separated)."""
    chips = [c.split(",", 1)[1] for c in re.split(r"[\x00\n]", compatible) if c.startswith("rockchip,rk")]
    name = model.replace("\x00", "").strip()
    return f"{name} ({chips[0].upper()})" if chips and name else name or (chips[0].upper() if chips else "")


def version_tuple(text: str) -> tuple[int, ...] | None:
    """The first dotted version in text as numbers: "2.0.0b0" -> (2, 0, 0), "3.9.2" -> (3, 9, 2)."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


def npu_devfreq(text: str) -> dict | None:
    """The NPU's devfreq node, as the probe prints it ("governor cur_freq max_freq", in Hz): the governor and
    the current and highest clock in MHz; None when the board shows no such node."""
    for line in text.splitlines():
        parts = line.split()
        if parts and not parts[0].isdigit():
            hz = [int(p) for p in parts[1:3] if p.isdigit()] + [0, 0]
            return {"governor": parts[0], "cur_mhz": hz[0] // 1_000_000, "max_mhz": hz[1] // 1_000_000}
    return None


def sections(text: str, marker: str = "@@") -> dict[str, str]:
    """Split the probe's output into its sections: a line '@@name' starts one."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith(marker) and line[len(marker):].strip().isidentifier():
            current = line[len(marker):].strip()
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return {k: "\n".join(v).strip() for k, v in found.items()}
