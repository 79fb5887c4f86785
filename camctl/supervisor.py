"""`camctl run-all`: one worker process per camera, supervised, behind one HTTP front.

A camera's worker (`camctl worker CAM`) holds that camera's RTSP session, records it and publishes
its events; a crash (even a segfault in a decoder) or a hang takes down that camera only. The
supervisor restarts a worker that exits, with backoff (1 s doubling to 30 s, back to 1 s after a
minute of good health), counts restarts, runs retention for all cameras, serves the HTTP front
(proxying frames to the workers over unix sockets), starts the embedded NATS when none is
configured, reloads the config on SIGHUP and, on SIGTERM, lets every worker finish its segments.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from camctl.bus import STATUS_REQUEST_SUBJECT, Bus, encode
from camctl.config import CameraConfig, Config
from camctl.lifecycle import reread_config
from camctl.metrics import counter_family, exposition, merge_metrics
from camctl.recording.retention import RetentionRunner
from camctl.runtime import Listen, bus_and_http, run_until_signalled
from camctl.secrets import redact
from camctl.storage import Limits

log = logging.getLogger("camctl.supervisor")

# The malloc settings of lifecycle.tune_malloc, from the first allocation of the worker on.
WORKER_ENV = {
    **os.environ,
    "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),
    "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "131072"),
}
HEALTHY_AFTER = 60.0  # seconds up before the restart backoff starts over
STOP_GRACE = 8.0  # seconds the workers get to finish their segments


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

    def client(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.socket)), timeout=aiohttp.ClientTimeout(total=10)
            )
        return self.session


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
        r = config.storage.retention
        self.retention = RetentionRunner(
            config.storage.root, Limits(r.max_age, r.max_bytes, r.min_free), interval=config.storage.segment_seconds / 2
        )

    # --- workers ------------------------------------------------------------------------------------

    async def _start(self, worker: Child) -> None:
        if isinstance(worker, Worker):
            worker.socket.unlink(missing_ok=True)
            # The NATS URL may hold a password: it goes in the environment, never on a command line (ps).
            args = ["worker", worker.camera.id, "--socket", str(worker.socket), "--restarts", str(worker.restarts)]
        else:  # the grid, fed by the camera workers' sockets
            args = ["grid-worker", "--sockets", str(self._dir)]
        worker.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            env={**WORKER_ENV, "CAMCTL_WORKER_NATS_URL": self.nats_url},
        )
        worker.started_at = time.monotonic()
        log.info("%s: worker started (pid %d)", worker.name, worker.proc.pid)

    def _add(self, camera: CameraConfig) -> Worker:
        worker = Worker(camera.id, self._dir / f"{camera.id}.sock", camera=camera)
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
        if isinstance(worker, Worker) and worker.session is not None:
            await worker.session.close()

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
        for cam in added:
            await self._start(self._add(cam))
        if regrid:  # its tiles, names or output changed
            await self._start_grid()
        log.info("SIGHUP: config reloaded: %d worker(s) stopped, %d started, %d untouched",
                 len(changed), len(added), len(self.workers) - len(added))  # fmt: skip

    # --- the HTTP front -------------------------------------------------------------------------------

    def _worker_for(self, name: str) -> Worker:
        for worker in self.workers.values():
            if name in (worker.camera.id, worker.camera.slug):
                return worker
        raise web.HTTPNotFound(text='{"error": "unknown camera"}', content_type="application/json")

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        worker = self._worker_for(request.match_info["cam"])
        if not worker.running:
            body = {"error": "camera offline", "camera_id": worker.camera.id,
                    "reason": f"worker restarting ({worker.exit_reason()})"}  # fmt: skip
            return web.json_response(body, status=503, headers={"Retry-After": "1"})
        path = f"http://worker/{worker.camera.id}/{request.match_info['file']}"
        try:
            upstream = await worker.client().get(path, params=request.query, timeout=aiohttp.ClientTimeout(total=None))
        except (aiohttp.ClientError, OSError):
            return web.json_response({"error": "camera offline", "camera_id": worker.camera.id,
                                      "reason": "worker not answering"}, status=503)  # fmt: skip
        keep = ("Content-Type", "Cache-Control", "Retry-After")
        headers = {k: v for k, v in upstream.headers.items() if k in keep or k.startswith("X-")}
        response = web.StreamResponse(status=upstream.status, headers=headers)
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (ConnectionResetError, aiohttp.ClientError):
            pass
        finally:
            upstream.release()
        return response

    async def status_payloads(self) -> list[dict[str, Any]]:
        async def one(worker: Worker) -> list[dict[str, Any]]:
            if worker.running:
                try:
                    async with worker.client().get("http://worker/status", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        cameras = (await r.json()).get("cameras", [])
                        return [dict(c, restarts=worker.restarts) for c in cameras]
                except (aiohttp.ClientError, OSError, ValueError, TimeoutError):
                    return [self._offline_status(worker, answering=False)]
            return [self._offline_status(worker)]

        results = await asyncio.gather(*(one(w) for w in self.workers.values()))
        return [c for batch in results for c in batch]

    def _offline_status(self, worker: Worker, answering: bool = True) -> dict[str, Any]:
        exited = worker.exit_reason()
        if exited:
            reason = f"worker restarting ({exited})"
        elif not answering and time.monotonic() - worker.started_at > 5.0:
            reason = "worker not answering"  # alive but its loop is stuck, or it died and is not reaped yet
        else:
            reason = "worker starting"
        payload: dict[str, Any] = redact.data({
            "camera_id": worker.camera.id, "online": False, "fps": 0.0, "bitrate_kbps": 0, "dropped_frames": 0,
            "uptime_seconds": 0, "error": reason, "restarts": worker.restarts, "node": self.config.node,
        })  # fmt: skip
        return payload

    def _app(self) -> web.Application:
        app = web.Application()
        cam = r"{cam:[A-Za-z0-9][A-Za-z0-9_-]{0,63}}"

        async def status(_request: web.Request) -> web.Response:
            nats = self.bus.state() if self.bus is not None else None
            return web.json_response({"time": time.time(), "cameras": await self.status_payloads(), "nats": nats})

        async def healthz(_request: web.Request) -> web.Response:
            running = sum(1 for w in self.workers.values() if w.running)
            return web.json_response({"ok": True, "cameras": len(self.workers), "workers_running": running})

        async def metrics(_request: web.Request) -> web.Response:
            texts = []
            for worker in self.workers.values():
                if worker.running:
                    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                        async with worker.client().get("http://worker/metrics") as r:
                            texts.append((worker.camera.id, await r.text()))
            restarts = counter_family(
                "camctl_worker_restarts_total", {w.camera.id: w.restarts for w in self.workers.values()}
            )
            body = merge_metrics(texts) + exposition([restarts])
            return web.Response(text=body, content_type="text/plain", charset="utf-8")

        app.router.add_get("/healthz", healthz)
        app.router.add_get("/status", status)
        app.router.add_get("/metrics", metrics)
        app.router.add_get(f"/{cam}/{{file:frame\\.jpg|stream\\.mjpeg}}", self._proxy)
        return app

    # --- main loop ----------------------------------------------------------------------------------

    async def _answer_status_for_down_workers(self, msg: Any) -> None:
        """Running workers answer for their own camera; the supervisor for the ones being restarted."""
        down = [self._offline_status(w) for w in self.workers.values() if not w.running]
        if down and msg.reply and self.bus is not None and self.bus.nc is not None:
            await self.bus.nc.publish(msg.reply, encode({"node": self.config.node, "cameras": down}))

    async def run(self, stop: asyncio.Event, hup: asyncio.Event) -> None:
        http = self.config.http
        name = f"camctl-supervisor@{self.config.node}"
        async with bus_and_http(self.nats_url or None, name, lambda _bus: self._app(),
                                Listen(http.listen, http.host, http.port)) as self.bus:  # fmt: skip
            self.nats_url = self.bus.url  # the embedded server's, when none is configured
            await self.bus.respond(STATUS_REQUEST_SUBJECT, self._answer_status_for_down_workers)
            try:
                for camera in self.config.select(None):
                    await self._start(self._add(camera))
                await self._start_grid()
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
