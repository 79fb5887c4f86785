"""The camctl CLI run inside the test's own process: Typer's CliRunner invoking `camctl.cli.app`
with an injected environment, and what the CLI changes in a process put back afterwards.

A command in this process costs its work, not a Python start-up and camctl's imports (0.4-1.2 s
each). What it changes in the process is taken before and restored after: the root logger's
handlers and level (the CLI's logging.basicConfig(force=True)) and the loggers' levels, the umask
(private_files), signal handlers, os.environ (adopt_config's RCLONE_* defaults), the working
folder, and the secrets registered with the redactor. A call that leaves a thread or a child
process running fails: such a command belongs in a process of its own (the camctl_process fixture).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SIGNALS = [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]
LEFTOVER_GRACE = 2.0  # seconds a thread the command started may take to end after it returned


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")


def _children() -> set[int]:
    """This process's child processes (every thread's), from /proc."""
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class ProcessState:
    """What a CLI call may change in this process, taken before it and put back after it."""

    def __init__(self) -> None:
        self.cwd = Path.cwd()
        self.environ = dict(os.environ)
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.handlers = {sig: signal.getsignal(sig) for sig in _SIGNALS}
        root = logging.getLogger()
        self.root_handlers, self.root_level = list(root.handlers), root.level
        self.levels = {name: logger.level for name, logger in self._loggers()}
        from camctl.secrets import redact

        self.secrets = set(redact._known)
        self.threads = set(threading.enumerate())
        self.children = _children()

    @staticmethod
    def _loggers() -> list[tuple[str, logging.Logger]]:
        return [(n, lg) for n, lg in list(logging.root.manager.loggerDict.items()) if isinstance(lg, logging.Logger)]

    def restore(self) -> None:
        os.chdir(self.cwd)
        for name in set(os.environ) - set(self.environ):
            del os.environ[name]
        for name, value in self.environ.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        os.umask(self.umask)
        for sig, handler in self.handlers.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        root = logging.getLogger()
        for handler in root.handlers:
            if handler not in self.root_handlers:
                handler.close()  # the CLI's, on the runner's stderr
        root.handlers[:] = self.root_handlers
        root.setLevel(self.root_level)
        for name, logger in self._loggers():
            logger.setLevel(self.levels.get(name, logging.NOTSET))
        from camctl.secrets import redact

        redact._known.clear()
        redact._known.update(self.secrets)

    def leftovers(self) -> list[str]:
        """Threads and child processes the call started that still run (after a short grace)."""
        deadline = time.monotonic() + LEFTOVER_GRACE
        # asyncio_N: a default executor's threads, which the test's own loops (an EventTap's) may
        # start at any time; the CLI's asyncio.run() shuts its own down before it returns.
        threads = [t for t in threading.enumerate() if t not in self.threads and not t.name.startswith("asyncio_")]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        children = [pid for pid in _children() - self.children if _alive(pid)]
        while children and time.monotonic() < deadline:
            time.sleep(0.05)  # a child on its way out: no event to wait on without reaping it
            children = [pid for pid in children if _alive(pid)]
        found = [f"thread {t.name!r}" for t in threads if t.is_alive()]
        for pid in children:
            with contextlib.suppress(OSError):
                program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                found.append(f"child {pid} ({program})")
                os.kill(pid, signal.SIGTERM)  # started by this call, in this process: stopped by its PID
        return found


def run_cli(args: Sequence[str], cwd: Path, env: Mapping[str, str | None], timeout: float) -> Result:
    """`camctl ARGS` in this process, in cwd, with env over os.environ (None removes a variable).
    Past timeout seconds the main thread gets SIGINT (what Ctrl-C does to camctl) and the call
    raises subprocess.TimeoutExpired, as subprocess.run(timeout=) would."""
    from typer.testing import CliRunner

    from camctl.cli import app

    state = ProcessState()
    calling, expired = [True], threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if calling[0]:  # a late one, after the call returned, is dropped: it was meant for the call
            raise KeyboardInterrupt

    def expire() -> None:
        if calling[0]:
            expired.set()
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    outcome: Any = None
    try:
        os.chdir(cwd)
        logging.getLogger().handlers.clear()  # as in a new process; basicConfig(force=True) closes none of ours
        signal.signal(signal.SIGINT, on_sigint)
        timer.start()
        try:
            try:
                outcome = CliRunner().invoke(app, list(args), env=dict(env), prog_name="camctl")
            finally:
                calling[0] = False
        except KeyboardInterrupt:
            if not expired.is_set():
                raise
        finally:
            timer.cancel()
            timer.join()
    finally:
        state.restore()
    command = ["camctl", *args]
    if expired.is_set():
        raise subprocess.TimeoutExpired(command, timeout, outcome.stdout_bytes if outcome is not None else None)
    leftovers = state.leftovers()
    if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
        raise AssertionError(
            f"{' '.join(command)} raised {outcome.exception!r} out of the app; stderr:\n{outcome.stderr}"
        ) from outcome.exception
    if leftovers:
        raise AssertionError(
            f"{' '.join(command)} left {', '.join(leftovers)} running in the test's process: "
            "run it with the camctl_process fixture"
        )
    return Result(outcome.exit_code, outcome.stdout_bytes, outcome.stderr_bytes.decode(errors="replace"))
