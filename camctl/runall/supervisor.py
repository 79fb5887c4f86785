"""run-all's supervision: one worker process per camera (and the grid's), restarted when it exits.

A camera's worker (`camctl worker CAM`) holds that camera's RTSP session, records it and publishes
its events; a crash (even a segfault in a decoder) or a hang takes down that camera only. The
supervisor restarts a worker that exits, with backoff (1 s doubling to 30 s, back to 1 s after a
minute of good health), counts restarts, runs retention for all cameras, starts the HTTP front
(front.py) and the embedded NATS when none is configured, reloads the config on SIGHUP and, on
SIGTERM, lets every worker finish its segments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from camctl.bus.client import Bus
from camctl.bus.subjects import MARK_SUBJECT, STATUS_REQUEST_SUBJECT
from camctl.config import CameraConfig, Config
from camctl.lifecycle import PARENT_PID_VARIABLE, reread_config
from camctl.recording.retention import RetentionRunner
from camctl.runall.children import WORKER_ENV, Child, Worker, check_socket_folder, worker_socket
from camctl.runall.copying import CopyRunner
from camctl.runall.front import Front
from camctl.runtime import Listen, bus_and_http, run_until_signalled
from camctl.storage.retention import Limits

log = logging.getLogger("camctl.runall")

HEALTHY_AFTER = 60.0  # seconds up before the restart backoff starts over
STOP_GRACE = 8.0  # seconds the workers get to finish their segments


class Supervisor:
    def __init__(self, config: Config, argv: list[str], reload: Callable[[], Config] | None = None) -> None:
        """argv: how to run camctl with the same global options (config, log format)."""
        self.config = config
        self.argv = argv
        self.reload_config = reload
        self.workers: dict[str, Worker] = {}
        self.grid: Child | None = None  # the config's grid, fed by the camera workers
        self.nats_url = config.nats.url or ""
        self.bus: Bus | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="camctl-run-all-"))
        check_socket_folder(self._dir)
        self.copying = CopyRunner()
        self.front = Front(self.workers, lambda: self.config, lambda: self.bus, lambda: self.grid, self.copying)
        self.retention = RetentionRunner(
            config.storage.root, Limits.of(config.storage.retention), interval=config.storage.segment_seconds / 2
        )

    # --- workers ------------------------------------------------------------------------------------

    async def _start(self, worker: Child) -> None:
        worker.socket.unlink(missing_ok=True)
        worker.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            *worker.args(self._dir),
            stdin=asyncio.subprocess.DEVNULL,
            env={**WORKER_ENV, "CAMCTL_WORKER_NATS_URL": self.nats_url, PARENT_PID_VARIABLE: str(os.getpid())},
        )
        worker.started_at = time.monotonic()
        log.info("%s: worker started (pid %d)", worker.name, worker.proc.pid)

    def _add(self, camera: CameraConfig) -> Worker:
        worker = Worker(camera.id, worker_socket(self._dir, camera.id), camera=camera)
        self.workers[camera.id] = worker
        return worker

    async def _start_grid(self) -> None:
        if self.grid is not None:
            await self._stop(self.grid)
            self.grid = None
        if self.config.grid is not None:
            self.grid = Child("grid", self._dir / "grid.sock")
            await self._start(self.grid)

    def _children(self) -> list[Child]:
        return [*self.workers.values(), *([self.grid] if self.grid is not None else [])]

    async def _stop(self, worker: Child) -> None:
        """SIGTERM, time to finish the segment, then SIGKILL."""
        worker.stopping = True
        proc = worker.proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                log.error("%s: worker did not stop within %gs; killing it", worker.name, STOP_GRACE)
                proc.kill()
                await proc.wait()
        await worker.close()

    async def _watch(self) -> None:
        """Restarts workers that exited, with backoff."""
        now = time.monotonic()
        for worker in self._children():
            proc = worker.proc
            if worker.stopping or proc is None:
                continue
            if proc.returncode is None:
                if now - worker.started_at > HEALTHY_AFTER:
                    worker.backoff = 1.0
                continue
            if worker.next_start == 0.0:  # just noticed the exit
                worker.last_exit = worker.exit_reason()
                worker.next_start = now + worker.backoff
                log.error("%s: worker %s; restarting in %.0fs", worker.name, worker.last_exit, worker.backoff)
                worker.backoff = min(30.0, worker.backoff * 2)
            elif now >= worker.next_start:
                worker.next_start = 0.0
                worker.restarts += 1
                await self._start(worker)

    async def _reload(self) -> None:
        new = reread_config(self.reload_config)
        if new is None:
            return
        wanted = {c.id: c for c in new.select(None)}
        changed = [w for cam_id, w in self.workers.items() if wanted.get(cam_id) != w.camera]
        for worker in changed:
            await self._stop(worker)
            del self.workers[worker.camera.id]
        added = [cam for cam_id, cam in wanted.items() if cam_id not in self.workers]
        regrid = new.grid != self.config.grid or bool(changed or added)
        self.config = new
        self.copying.restart_if_changed(new)
        for cam in added:
            await self._start(self._add(cam))
        if regrid:  # its tiles, names or output changed
            await self._start_grid()
        log.info("SIGHUP: config reloaded: %d worker(s) stopped, %d started, %d untouched",
                 len(changed), len(added), len(self.workers) - len(added))  # fmt: skip

    # --- main loop ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, hup: asyncio.Event) -> None:
        http = self.config.http
        name = f"camctl-supervisor@{self.config.node}"
        async with bus_and_http(self.nats_url or None, name, lambda _bus: self.front.app(),
                                Listen(http.listen, http.host, http.port), self.config.nats) as self.bus:  # fmt: skip
            self.nats_url = self.bus.url  # the embedded server's, when none is configured
            await self.bus.respond(STATUS_REQUEST_SUBJECT, self.front.answer_status_for_down_workers)
            await self.bus.respond(MARK_SUBJECT, self.front.marks.on_message)
            try:
                for camera in self.config.select(None):
                    await self._start(self._add(camera))
                await self._start_grid()
                self.copying.start(self.config)
                next_prune = 0.0
                while not stop.is_set():
                    await self._watch()
                    if hup.is_set():
                        hup.clear()
                        await self._reload()
                    if time.monotonic() >= next_prune:
                        next_prune = time.monotonic() + self.retention.interval
                        await asyncio.get_running_loop().run_in_executor(None, self.retention.run)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.25)
            finally:
                await asyncio.get_running_loop().run_in_executor(None, self.copying.stop)
                await asyncio.gather(*(self._stop(w) for w in self._children()))
                for worker in self.workers.values():
                    worker.socket.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    self._dir.rmdir()


def run_supervised(config: Config, argv: list[str], reload: Callable[[], Config] | None) -> None:
    """Until SIGTERM/SIGINT (workers get STOP_GRACE to finish their segments); SIGHUP reloads."""
    run_until_signalled(Supervisor(config, argv, reload).run, hang_after=STOP_GRACE + 10, reload=True)


def camctl_argv(config_path: Path | None, log_json: bool, debug: bool) -> list[str]:
    """How to start camctl again with the same global options (for the workers)."""
    argv = [sys.executable, "-m", "camctl"]
    if config_path is not None:
        argv += ["--config", str(config_path.resolve())]
    if log_json:
        argv += ["--log-format", "json"]
    if debug:
        argv.append("--debug")
    return argv
