"""Writing files that hold secrets (private keys, HMAC keys): created whole, mode 0600, never overwritten."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a new file atomically: readers see either no file or the whole of it, never a partial key.
    Raises FileExistsError if it is already there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # fails if the name exists, unlike rename
    finally:
        tmp.unlink()
