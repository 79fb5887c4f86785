"""run-all's HTTP front: one address for every camera of the node. Per-camera routes are relayed
to the camera's worker over its unix socket; status, health and metrics are gathered from all of
them, and answered by the front for a worker that is restarting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from camctl.bus.client import Bus
from camctl.bus.subjects import encode
from camctl.config import Config
from camctl.events.marks import MarkIntake
from camctl.metrics import Family, counter_family, exposition, merge_metrics
from camctl.paths import default_data_dir
from camctl.runall.children import Child, Worker
from camctl.runall.copying import CopyRunner
from camctl.runall.grid_state import grid_families, read_state
from camctl.secrets import redact
from camctl.web.auth import gate_for
from camctl.web.fleet import Fleet
from camctl.web.footage import FootageRoutes
from camctl.web.limits import ConnectionLimits
from camctl.web.marks import mark_post
from camctl.web.node import HLS_INIT, HLS_SEGMENT, NodeView, build_app, camera_offline, send, unknown_camera


class Front:
    def __init__(
        self,
        workers: dict[str, Worker],
        config: Callable[[], Config],
        bus: Callable[[], Bus | None],
        grid: Callable[[], Child | None] = lambda: None,
        copying: CopyRunner | None = None,
    ) -> None:
        """workers: the supervisor's, as they come and go; config, bus and grid: the current ones."""
        self.workers = workers
        self._config = config
        self._bus = bus
        self._grid = grid
        self.copying = copying or CopyRunner()
        self.marks = MarkIntake(config)  # POST /api/marks/<cam>; the supervisor also takes them from NATS

    @property
    def config(self) -> Config:
        return self._config()

    @property
    def bus(self) -> Bus | None:
        return self._bus()

    def worker_for(self, name: str) -> Worker:
        for worker in self.workers.values():
            if name in (worker.camera.id, worker.camera.slug):
                return worker
        raise unknown_camera()

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        worker = self.worker_for(request.match_info["cam"])
        if not worker.running:
            return camera_offline(worker.camera.id, f"worker restarting ({worker.exit_reason()})")
        path = f"http://worker/{worker.camera.id}/{request.path.split('/', 2)[2]}"  # frame.jpg, hls/sub/7.mp4
        try:
            upstream = await worker.client().get(path, params=request.query, timeout=aiohttp.ClientTimeout(total=None))
        except (aiohttp.ClientError, OSError):
            return camera_offline(worker.camera.id, "worker not answering")
        try:
            keep = ("Content-Type", "Cache-Control", "Retry-After")
            headers = {k: v for k, v in upstream.headers.items() if k in keep or k.startswith("X-")}
            response = web.StreamResponse(status=upstream.status, headers=headers)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await send(request, response.write(chunk))
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            pass
        finally:
            upstream.release()  # whatever happened to the client: the worker's connection goes back
        return response

    async def relay_ws(self, request: web.Request) -> web.StreamResponse:
        """A live viewer's WebSocket, relayed message by message from the camera's worker: each
        viewer has its own upstream, so the worker's per-viewer limits and skipping apply as they are."""
        worker = self.worker_for(request.match_info["cam"])
        if not worker.running:
            return camera_offline(worker.camera.id, f"worker restarting ({worker.exit_reason()})")
        try:
            query = f"?{request.query_string}" if request.query_string else ""  # ?stream=main
            upstream = await worker.client().ws_connect(f"http://worker/{worker.camera.id}/live.ws{query}")
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 503:
                return web.json_response({"error": "too many viewers", "camera_id": worker.camera.id},
                                         status=503, headers={"Retry-After": "5"})  # fmt: skip
            return camera_offline(worker.camera.id, "worker not answering")
        except (aiohttp.ClientError, OSError):
            return camera_offline(worker.camera.id, "worker not answering")
        ws = web.WebSocketResponse(heartbeat=15.0)

        async def relay() -> None:
            async for msg in upstream:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    await send(request, ws.send_bytes(msg.data))
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await send(request, ws.send_str(msg.data))
                else:
                    break

        try:
            await ws.prepare(request)
            # Whichever ends first: the worker's stream, or the page (noticed even while the camera
            # is offline and nothing flows).
            tasks = {asyncio.create_task(relay()), asyncio.create_task(_drain(ws))}
            try:
                done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.exception()  # a connection that closed is how a relay ends: seen, not raised
            finally:
                for task in tasks:
                    task.cancel()
            await ws.close(code=upstream.close_code or 1001, message=b"worker closed the stream")
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            pass
        finally:
            await upstream.close()
        return ws

    async def status_payloads(self) -> list[dict[str, Any]]:
        async def one(worker: Worker) -> list[dict[str, Any]]:
            if worker.running:
                try:
                    async with worker.client().get("http://worker/status", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        cameras = (await r.json()).get("cameras", [])
                        return [dict(c, restarts=worker.restarts) for c in cameras]
                except (aiohttp.ClientError, OSError, ValueError, TimeoutError):
                    return [self.offline_status(worker, answering=False)]
            return [self.offline_status(worker)]

        results = await asyncio.gather(*(one(w) for w in self.workers.values()))
        return [c for batch in results for c in batch]

    def offline_status(self, worker: Worker, answering: bool = True) -> dict[str, Any]:
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

    def app(self) -> web.Application:
        async def metrics() -> str:
            texts = []
            for worker in self.workers.values():
                if worker.running:
                    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                        async with worker.client().get("http://worker/metrics") as r:
                            texts.append((worker.camera.id, await r.text()))
            restarts = {w.camera.id: w.restarts for w in self.workers.values()}
            families = [counter_family("camctl_worker_restarts_total", restarts)]
            grid = self._grid()
            if grid is not None:
                sample = (f"camctl_grid_restarts_total {grid.restarts}",)
                families.append(
                    Family("camctl_grid_restarts_total", "counter", sample, "Times run-all restarted the grid.")
                )
                state = read_state(grid.socket.parent) if grid.running else None
                families += grid_families(state) if state is not None else []
            families += self.copying.families()
            return merge_metrics(texts) + exposition(families)

        def extra() -> dict[str, Any]:
            grid = self._grid()
            if grid is None:
                return self.copying.status()
            pid = grid.proc.pid if grid.proc is not None and grid.running else None
            shown: dict[str, Any] = {"running": grid.running, "pid": pid, "restarts": grid.restarts,
                                     "last_exit": grid.exit_reason()}  # fmt: skip
            state = read_state(grid.socket.parent) if grid.running else None
            if state is not None:  # what it encodes now: frames, the ladder's rung and its steps
                shown |= {k: v for k, v in state.items() if k != "updated"}
            return {"grid": shown} | self.copying.status()

        def health() -> dict[str, Any]:
            running = sum(1 for w in self.workers.values() if w.running)
            # Not ok when cameras are configured and no worker runs (all crash-looping): the
            # container's health check then says so.
            return {"ok": running > 0 or not self.workers, "cameras": len(self.workers), "workers_running": running}

        def nats() -> dict[str, Any] | None:
            return self.bus.state() if self.bus is not None else None

        view = NodeView(self.status_payloads, health, metrics, nats, self._config, extra)
        proxied = ("frame.jpg", "stream.mjpeg", "live.mp4", "live.m3u8", HLS_INIT, HLS_SEGMENT)
        relayed = dict.fromkeys(proxied, self.proxy)
        http = self.config.http
        limits = ConnectionLimits(http.max_connections, http.max_connections_per_client)
        footage, more = FootageRoutes(self._config).routes()  # the front reads the recordings itself
        more.append(("/api/fleet", Fleet(self._bus, self._config).handler))
        gate = gate_for(http, default_data_dir())
        marks = [mark_post(self.marks)]
        return build_app(view, relayed | {"live.ws": self.relay_ws} | footage, gate, limits, more, marks)

    async def answer_status_for_down_workers(self, msg: Any) -> None:
        """Running workers answer for their own camera; the supervisor for the ones being restarted."""
        down = [self.offline_status(w) for w in self.workers.values() if not w.running]
        if down and msg.reply and self.bus is not None and self.bus.nc is not None:
            body = {"node": self.config.node, "url": self.config.http.public_url, "cameras": down}
            await self.bus.nc.publish(msg.reply, encode(body))


async def _drain(ws: web.WebSocketResponse) -> None:
    async for _msg in ws:
        pass
