"""Where an artifact came from: source file and hash, tool versions, time."""
from __future__ import annotations

import datetime as dt
from importlib import metadata
from pathlib import Path

from deploy.runtime.digest import sha256_of

TOOLS = ("edge-deploy-studio", "torch", "ultralytics-opencv-headless", "onnx", "onnxruntime", "rknn-toolkit2", "numpy")


def tool_versions() -> dict[str, str]:
    """Installed versions of the packages that shape an exported model."""
    versions = {}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(source: Path, **extra) -> dict:
    """The provenance block of a sidecar: source path and sha256, tool versions, UTC time, extras."""
    return {
        "source": str(source),
        "source_sha256": sha256_of(source),
        "tools": tool_versions(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **extra,
    }
