"""Process lifecycle safety nets: children that die with their parent, and a shutdown that cannot
hang forever, and SIGTERM/SIGINT asking a threaded command (record, grid) to stop."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING

from camctl.errors import CamctlError
from camctl.secrets import redact

if TYPE_CHECKING:
    from camctl.config import Config, LoadedConfig

log = logging.getLogger("camctl")

_PR_SET_PDEATHSIG = 1


PARENT_PID_VARIABLE = "CAMCTL_PARENT_PID"  # set by run-all for its workers: who they die with


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Linux: ask the kernel to send `sig` to this process when its parent dies, so that a worker
    or an embedded nats-server never outlives a run-all that was SIGKILLed or crashed. Elsewhere a
    no-op (the supervisor's own checks still apply)."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return


def stop_if_orphaned(sig: int = signal.SIGTERM) -> None:
    """After die_with_parent in a run-all worker: a parent that died before that was asked (a
    worker takes a second or two to start) sends nothing, so a worker whose run-all is already
    gone (PARENT_PID_VARIABLE no longer its parent) sends itself the signal and stops as asked."""
    expected = os.environ.get(PARENT_PID_VARIABLE, "")
    if expected.isdigit() and os.getppid() != int(expected):
        os.kill(os.getpid(), sig)


def exit_now(status: int = 0) -> None:
    """Ends a process whose work is finished and saved (segments closed, journal written) without
    the interpreter's teardown: unloading PyAV, numpy and aiohttp costs a worker ~0.15 s of CPU,
    and a hundred workers stopping together on two cores then outlast their grace period."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def exit_if_shutdown_hangs(seconds: float = 15.0) -> None:
    """Called when a stop was asked for: if the process is still alive `seconds` later (a hung
    camera read, a stuck encoder thread that the interpreter would wait for), it exits anyway.
    Segments are finished well before that."""

    def force() -> None:
        log.error("shutdown did not finish within %gs; exiting now", seconds)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT ask for a clean stop; a second one is not needed (we stop within seconds)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class StoppableThread:
    """A daemon thread running `_run` until `stop()`: what every camera loop needs. `_run` checks
    `_stop` (and waits on it, so that a stop cuts a backoff short)."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """True when the thread ended within `timeout` seconds."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


def adopt_config(loaded: LoadedConfig) -> Config:
    """What a program does with a config it loaded (an entry point's work, never the loader's):
    its secrets are masked from then on in every log line and error, and the RCLONE_* variables of
    the camctl.env beside it reach rclone (the copy's child) as they would under systemd's
    EnvironmentFile= (the process environment still wins)."""
    for secret in loaded.secrets:
        redact.register(secret)
    for name, value in loaded.variables.items():
        if name.startswith("RCLONE_"):
            os.environ.setdefault(name, value)
    return loaded.config


def reread_config(reload: Callable[[], Config] | None) -> Config | None:
    """The config read again for SIGHUP, or None (with one error line) when it is not valid: a
    typo in an edit must never stop a running recorder."""
    if reload is None:
        return None
    try:
        return reload()
    except CamctlError as exc:
        log.error("SIGHUP: config not reloaded, keeping the running one: %s", exc)
        return None


PRIVATE_UMASK = 0o027


def private_files() -> None:
    """Footage, journals and keys camctl writes are for its user and group only (0640 files, 0750
    folders), whatever umask it was started with; a looser one is tightened, a tighter one kept."""
    current = os.umask(PRIVATE_UMASK)
    os.umask(current | PRIVATE_UMASK)


_M_MMAP_THRESHOLD = -3  # glibc malloc.h
_M_ARENA_MAX = -8


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def return_freed_memory() -> None:
    """Gives the system back the heap's free pages (glibc's malloc_trim). After hundreds of
    streams end, their buffers are free but spread over the heap, which glibc only trims from the
    top: without this the process keeps its peak size. Cycles go first (a dropped connection's
    buffers often hang on one, through its exception's traceback)."""
    gc.collect()
    libc = _libc()
    with contextlib.suppress(AttributeError):  # not glibc: nothing to trim
        if libc is not None:
            libc.malloc_trim(0)


def tune_malloc() -> None:
    """For long-running video work on glibc: few arenas, and buffers over 128 KiB always mmapped,
    so that freed frames go back to the system instead of staying in the process (glibc raises
    its mmap threshold after the first big frees, and then keeps every later frame on the heap).
    Serving JPEGs from a 1080p camera costs 3 MiB of RSS with this, 37 MiB without."""
    libc = _libc()
    with contextlib.suppress(AttributeError):  # not glibc (musl, macOS): nothing to tune
        if libc is not None:
            libc.mallopt(_M_ARENA_MAX, 2)
            libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
