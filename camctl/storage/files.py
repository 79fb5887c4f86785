"""Files beside the footage written safely (never through a symlink, never half a file), JSON
lines read back as a crash left them, and the room left on the disk."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from camctl.errors import StorageError

log = logging.getLogger("camctl.record")


def folders_inside(root: Path, folder: Path) -> None:
    """Makes folder (under root) and every folder between, none of them a symlink: one put inside
    the storage root (by mistake or by someone else) is replaced by a real folder and said, so that
    recordings never land outside the root, where retention never looks. The root itself may be a
    symlink (a mount elsewhere): it is the operator's choice."""
    root.mkdir(parents=True, exist_ok=True)
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        no_symlink(current)
        with contextlib.suppress(FileExistsError):
            current.mkdir()


def append_fd(path: Path) -> int:
    """A file descriptor appending to path (a journal), never through a symlink put in its place.
    A last line torn by a crash is ended first: the next line must not be glued to it (and lost)."""
    no_symlink(path)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")
    return fd


def no_symlink(path: Path) -> None:
    """A symlink at path (inside the storage root) is removed, and said; its target is left alone."""
    if path.is_symlink():
        target = path.readlink()
        path.unlink()
        log.warning("%s was a symlink (to %s) inside the storage root: replaced, nothing written through it",
                    path, target)  # fmt: skip


def write_atomically(path: Path, data: bytes) -> None:
    """Written beside the target and renamed: a reader never sees half a file (StorageError, exit 5)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file beside the footage; lines torn by a crash are skipped, a
    missing file is none."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                found.append(entry)
    return found


def _usage(path: Path) -> Any:
    """shutil.disk_usage of the filesystem holding path (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe)


def free_space(path: Path) -> int:
    """Bytes free for this user on the filesystem holding path."""
    return int(_usage(path).free)


def filesystem_size(path: Path) -> int:
    return int(_usage(path).total)
