"""SHA-256 of a file, streamed: provenance, sidecar digests and push's which-files-changed all use it."""
import hashlib
from pathlib import Path
from typing import Optional


def sha256_of(path: Path, count: Optional[int] = None) -> str:
    """Hex SHA-256 of a file, or of its first `count` bytes."""
    digest, left = hashlib.sha256(), count
    with open(path, "rb") as f:
        while left is None or left > 0:
            block = f.read(1 << 20 if left is None else min(left, 1 << 20))
            if not block:
                break
            digest.update(block)
            if left is not None:
                left -= len(block)
    return digest.hexdigest()
