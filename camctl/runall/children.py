"""The processes run-all supervises: a camera's worker, and the grid fed by the workers."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from camctl.config import CameraConfig
from camctl.errors import UsageError

# The malloc settings of lifecycle.tune_malloc, from the first allocation of the worker on.
WORKER_ENV = {
    **os.environ,
    "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),
    "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "131072"),
}


WORKER_MEMORY = 70 * 2**20  # a camera worker's resident memory, measured (1080p, H.264, recording)
MAX_SOCKET_PATH = 107  # bytes in a unix socket's address (Linux sun_path, less its final NUL)


def worker_socket(folder: Path, camera_id: str) -> Path:
    """A camera worker's socket: named by a short digest, not the id, which may be 64 characters
    long (with a long TMPDIR the address would not fit). The grid finds it the same way."""
    return folder / f"cam-{hashlib.sha256(camera_id.encode()).hexdigest()[:12]}.sock"


def check_socket_folder(folder: Path) -> None:
    size = len(os.fsencode(worker_socket(folder, "")))
    if size > MAX_SOCKET_PATH:
        raise UsageError(f"TMPDIR is too long for the workers' unix sockets ({size} of at most {MAX_SOCKET_PATH}"
                         f" bytes in {folder}): set TMPDIR to a shorter folder, e.g. /tmp")  # fmt: skip


@dataclass
class Child:
    """A supervised process: restarted with backoff when it exits."""

    name: str
    socket: Path
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start: float = 0.0
    last_exit: str | None = None
    backoff: float = 1.0
    stopping: bool = False
    session: aiohttp.ClientSession | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def args(self, sockets: Path) -> list[str]:
        """camctl's arguments for this child; sockets: the folder of the workers' sockets."""
        return ["grid-worker", "--sockets", str(sockets)]  # the grid, fed by the camera workers

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def exit_reason(self) -> str | None:
        code = self.proc.returncode if self.proc is not None else None
        if code is None:
            return self.last_exit
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"


@dataclass
class Worker(Child):
    """A camera's worker: its RTSP session, recording and ingest, HTTP on a unix socket."""

    camera: CameraConfig = field(kw_only=True)

    def args(self, sockets: Path) -> list[str]:
        # The NATS URL may hold a password: it goes in the environment, never on a command line (ps).
        return ["worker", self.camera.id, "--socket", str(self.socket), "--restarts", str(self.restarts)]

    def client(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(
                # No pool limit: streams hold their connection as long as they play, and a full pool
                # would leave frame.jpg waiting behind them; the front's connection limits bound it.
                connector=aiohttp.UnixConnector(path=str(self.socket), limit=0),
                timeout=aiohttp.ClientTimeout(total=10),
            )
        return self.session


def memory_warning(cameras: int, total: int | None = None) -> str | None:
    """Why run-all's one process per camera may not fit this box's memory (half of it, leaving
    room for the page cache the recordings go through), or None."""
    total = _memory_total() if total is None else total
    need = cameras * WORKER_MEMORY
    if not total or need <= total // 2:
        return None
    return (f"run-all starts a worker per camera, about {WORKER_MEMORY >> 20} MB each: {cameras} cameras need "
            f"about {need / 2**30:.1f} GB of this box's {total / 2**30:.1f} GB; spread them over several "
            "boxes (a fleet shares one NATS) or run fewer here")  # fmt: skip


def _memory_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
