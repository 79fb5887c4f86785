"""One recorder per camera per storage root: two would write the same segments and journal twice.

The lock is `flock` on `<root>/<camera>/.recorder.lock`, held for as long as the recorder runs; the
kernel drops it when the process dies (even by SIGKILL), so a crash never leaves a stale lock. The
file holds the holder's pid, for the message the second recorder prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from camctl.errors import AlreadyRecording, StorageError
from camctl.storage.files import folders_inside, no_symlink

LOCK_NAME = ".recorder.lock"


class RecorderLock:
    def __init__(self, root: Path, camera_id: str) -> None:
        folder = root / camera_id
        self.path = folder / LOCK_NAME
        try:
            folders_inside(root, folder)
            no_symlink(self.path)
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        except OSError as exc:
            raise StorageError(f"cannot write {folder}: {(exc.strerror or str(exc)).lower()}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(self._fd)
            os.close(self._fd)
            self._fd = None
            raise AlreadyRecording(
                f"{camera_id} is already being recorded into {root}"
                + (f" by process {holder}" if holder else "")
                + " (another camctl record or run-all): stop it, or record into another storage root"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        """Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock


def _holder(fd: int) -> str | None:
    """The pid the lock's holder wrote, if it is readable."""
    with contextlib.suppress(OSError, ValueError):
        return str(int(os.pread(fd, 32, 0).decode().strip()))
    return None
