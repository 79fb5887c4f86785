"""`camctl ingest`: camera sessions in threads, one asyncio loop for NATS and HTTP.

Camera threads never wait on the loop: they hand events over with call_soon_threadsafe and go on
reading. The loop publishes frame events as they come, status events every `status_interval`
and at once when a camera goes on- or offline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from camctl.analysis.motion import MotionDetector, Sensitivity, luma_plane
from camctl.analysis.publisher import RingPublisher
from camctl.bus.client import Bus
from camctl.bus.subjects import (
    FRAME_SUBJECT,
    MARK_SUBJECT,
    SNAPSHOT_SUBJECT,
    STATUS_REQUEST_SUBJECT,
    STATUS_SUBJECT,
    encode,
    frame_event,
)
from camctl.config import CameraConfig, Config, StreamView, stream_view
from camctl.encoding.transcode import Transcoder, recording_input
from camctl.errors import CamctlError
from camctl.events.marks import MarkIntake
from camctl.lifecycle import reread_config
from camctl.media.feeds import MAIN, CameraFeeds, UnknownStream
from camctl.media.jpeg import jpeg_settings
from camctl.media.live import LiveCamera, LiveFrame
from camctl.media.live_stream import LiveStream
from camctl.media.restream import Restreamer
from camctl.media.session import CameraSession, Consumer
from camctl.metrics import (
    LatencyHistogram,
    bus_families,
    camera_families,
    exposition,
    latency_family,
    stream_families,
)
from camctl.paths import default_data_dir
from camctl.recording.motion_log import append_motion
from camctl.recording.recorder import CameraRecorder
from camctl.recording.retention import RetentionRunner
from camctl.runtime import Listen, bus_and_http, run_until_signalled
from camctl.secrets import redact
from camctl.storage.retention import Limits
from camctl.web.auth import gate_for, signer_for
from camctl.web.camera import JpegCache, camera_routes, local_view
from camctl.web.fleet import Fleet
from camctl.web.footage import FootageRoutes
from camctl.web.limits import ConnectionLimits
from camctl.web.live import LiveHub, live_routes
from camctl.web.marks import mark_post
from camctl.web.node import build_app

log = logging.getLogger("camctl.ingest")


@dataclass(frozen=True)
class WorkerOptions:
    socket: Path  # HTTP for the supervisor's front end
    nats_url: str
    restarts: int  # how many times the supervisor restarted this camera's worker


JPEGS_PER_CAMERA = 6
STILL_WAIT = 5.0  # seconds a snapshot waits for a picture decoded on demand


def _no_frame(_cam: LiveCamera, _frame: LiveFrame) -> None:
    """Only the analysis stream's pictures become frame events."""


class IngestService:
    def __init__(
        self,
        config: Config,
        cameras: list[CameraConfig],
        record: bool = False,
        reload: Callable[[], Config] | None = None,
        worker: WorkerOptions | None = None,
    ) -> None:
        """record: also record every camera from the same session (what `run-all` does);
        reload: reads the config again on SIGHUP; worker: run as one camera's worker process under
        the run-all supervisor (HTTP on a unix socket, routine retention left to the supervisor)."""
        self.config = config
        self.worker = worker
        self.cameras = cameras
        self.record = record
        self.reload_config = reload
        self.recorders: dict[str, CameraRecorder] = {}
        self.transcoders: dict[str, Transcoder] = {}
        self.rings: dict[str, RingPublisher] = {}  # analysis frames in shared memory, per camera
        self.restreamers: dict[str, Restreamer] = {}
        self.retention: RetentionRunner | None = None
        if record:  # under run-all the supervisor prunes for all; a worker only forces it when storage fails
            storage = config.storage
            self.retention = RetentionRunner(storage.root, Limits.of(storage.retention),
                                             interval=storage.segment_seconds / 2)  # fmt: skip
        self.live: dict[str, CameraFeeds] = {}  # each camera's opened streams
        self.sessions: dict[str, list[CameraSession]] = {}  # one per opened stream
        self.by_name: dict[str, CameraFeeds] = {}  # what HTTP serves: ids and slugs
        self.hubs: dict[tuple[str, str], LiveHub] = {}  # live viewers, by camera id and stream
        self.bus: Bus | None = None
        self.latency = LatencyHistogram()
        self.signer = signer_for(config.http, default_data_dir())  # event URLs usable without a password
        # A few encodes per camera (latest frames x requested sizes): a 1080p JPEG is ~250 KB, and a
        # worker holds one camera, so 32 entries there were 8 MB of old pictures nobody asks for.
        self.jpegs = JpegCache(size=JPEGS_PER_CAMERA * max(1, len(cameras)))
        self._fps: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Queue[str] = asyncio.Queue()
        self.marks = MarkIntake(lambda: self.config)
        self.motion: dict[str, MotionDetector] = {}  # cameras whose motion this process finds and journals

    # --- cameras come and go (start, SIGHUP) -------------------------------------------------------

    def _add(self, cam: CameraConfig) -> None:
        """One session per stream some role names; a stream no role names opens none."""
        feeds = CameraFeeds(cam)
        sessions: list[CameraSession] = []
        for name in cam.roles.used():
            view = stream_view(cam, name)
            analysed = name == cam.roles.analysis
            pictures = LiveCamera(view, self._on_frame if analysed else _no_frame, self._on_change,
                                  hardware_decode=self.config.ingest.hardware_decode, analysed=analysed)  # fmt: skip
            stream = LiveStream(view)  # first: viewers get each frame before it is decoded or recorded
            feeds.pictures[name], feeds.streams[name] = pictures, stream
            consumers: list[Consumer] = [stream, pictures, *self._recording(view, pictures)]
            if name == MAIN and cam.restream is not None:
                restreamer = Restreamer(cam, cam.restream.reveal())
                self.restreamers[cam.id] = restreamer
                consumers.append(restreamer)
                restreamer.start()
            sessions.append(CameraSession(view, consumers, read_timeout=self.config.ingest.stall_seconds))
            if self._loop is not None:
                self.hubs[cam.id, name] = LiveHub(stream, self._loop, self.config.http.max_viewers)
        self.rings[cam.id] = RingPublisher(cam.id, self.config.node, cam.analysis)
        if self._detects_motion(cam):
            self.motion[cam.id] = MotionDetector(cam.id, Sensitivity.of(cam.motion))
        self.live[cam.id], self.sessions[cam.id] = feeds, sessions
        self.by_name[cam.id] = self.by_name[cam.slug] = feeds
        for session in sessions:
            session.start()

    def _recording(self, view: StreamView, pictures: LiveCamera) -> list[Consumer]:
        """The stream's recorder, when it is one the camera records (a copy; the main stream may be
        re-encoded at a bitrate instead, from the pictures its LiveCamera decodes)."""
        if not self.record or view.stream not in view.camera.roles.record:
            return []
        storage = self.config.storage
        recorder = CameraRecorder(  # it records under the view's footage_id: cam_1, cam_1.sub
            view, storage.root, storage.segment_seconds,
            on_segment=lambda _info: self._prune() if self.worker is None else None,
            on_storage_error=lambda _exc: self._prune(force=True),
        )  # fmt: skip
        self.recorders[view.footage_id] = recorder
        if view.stream != MAIN:
            return [recorder]
        streams = len(self.config.select(None))
        feed = recording_input(view, recorder, storage, streams, self.config.ingest.hardware_decode)
        if isinstance(feed, Transcoder):  # it re-encodes what the stream's decoder decodes for it
            feed.decodes = False
            pictures.picture_listeners.append(feed.take)
            self.transcoders[view.id] = feed
        return [feed]

    def _remove(self, camera_id: str) -> None:
        """Stops one camera and finishes its segment; blocking (run it off the loop)."""
        sessions = self.sessions.pop(camera_id)
        feeds = self.live.pop(camera_id)
        self.motion.pop(camera_id, None)
        for name in (camera_id, feeds.camera.slug):
            self.by_name.pop(name, None)
        for stream in feeds.pictures:
            self.hubs.pop((camera_id, stream), None)
        for session in sessions:
            session.stop()
        deadline = time.monotonic() + 3.0
        for session in sessions:
            session.join(max(0.0, deadline - time.monotonic()))
        ring = self.rings.pop(camera_id, None)
        if ring is not None:
            ring.close()
        self.transcoders.pop(camera_id, None)
        restreamer = self.restreamers.pop(camera_id, None)
        if restreamer is not None:
            restreamer.stop()  # the session's on_stopped stops it too; its thread ends within a second
        for stream in feeds.camera.roles.record:
            recorder = self.recorders.pop(feeds.camera.footage_of(stream), None)
            if recorder is not None:
                recorder.finalize()

    async def _reload(self) -> None:
        new = reread_config(self.reload_config)
        if new is None:
            return
        wanted = {c.id: c for c in new.select(None)}
        current = {cam_id: live.camera for cam_id, live in self.live.items()}
        gone = [cam_id for cam_id, cam in current.items() if wanted.get(cam_id) != cam]
        loop = asyncio.get_running_loop()
        for cam_id in gone:
            await loop.run_in_executor(None, self._remove, cam_id)
        self.config = self.config.model_copy(update={"cameras": new.cameras})
        added = [cam for cam_id, cam in wanted.items() if current.get(cam_id) != cam]
        for cam in added:
            try:
                self._add(cam)
            except CamctlError as exc:  # another recorder has it: the others go on
                log.error("SIGHUP: %s not started: %s", cam.id, exc)
        log.info(
            "SIGHUP: config reloaded: %d camera(s) added or changed, %d removed, %d untouched%s",
            len(added), len(set(gone) - set(wanted)), len(set(current) - set(gone)),
            "" if (new.storage, new.nats, new.http) == (self.config.storage, self.config.nats, self.config.http)
            else " (storage, nats and http changes apply at the next restart)",
        )  # fmt: skip

    # --- callbacks from camera threads ------------------------------------------------------------

    def _detects_motion(self, cam: CameraConfig) -> bool:
        """Where footage is recorded: when asked, or (auto) when the retention keeps motion longer."""
        if not self.record or cam.motion.detect == "off":
            return False
        return cam.motion.detect == "on" or self.config.storage.retention.motion is not None

    def _on_frame(self, cam: LiveCamera, live: LiveFrame) -> None:
        """An analysis frame (the camera's thread): into shared memory while someone reads there,
        then the event, which names the ring's write for readers on this box."""
        detector = self.motion.get(cam.camera.id)
        if detector is not None:
            self._find_motion(detector, live)
        ring = self.rings.get(cam.camera.id)
        written = ring.offer(live.number, live.timestamp, live.frame) if ring is not None else None
        if self._loop is not None:
            shm = (ring.name, written) if ring is not None and ring.marker is not None else None
            self._loop.call_soon_threadsafe(self._publish_frame, cam, live, shm)

    def _find_motion(self, detector: MotionDetector, live: LiveFrame) -> None:
        """The analysed picture's luma (no conversion: the decoder's first plane) into the camera's
        detector; a movement that ended is journalled beside the footage for the motion tier."""
        luma = luma_plane(live.frame)
        if luma is None:
            return
        event = detector.push(luma, live.timestamp, live.number)
        if event is None or event.end is None:
            return
        storage = self.config.storage
        keep = Limits.of(storage.retention).age_of("motion")
        try:
            append_motion(storage.root, event.camera_id, event.start, event.end, event.score, keep)
        except OSError as exc:
            log.warning("%s: motion not noted beside the footage: %s", event.camera_id, exc)

    def _on_change(self, cam: LiveCamera) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._changed.put_nowait, cam.camera.id)

    # --- on the loop ------------------------------------------------------------------------------

    def _publish_frame(self, cam: LiveCamera, live: LiveFrame, shm: tuple[str, int | None] | None = None) -> None:
        if self.bus is None:
            return
        fps = self._fps.get(cam.camera.id) or cam.claimed_fps or 0.0
        path = f"/{cam.camera.camera.slug}/frame.jpg"  # the analysis stream's picture
        url = self.config.http.public_url + (self.signer.sign(path) if self.signer is not None else path)
        payload = frame_event(cam.camera.id, live.timestamp, live.number, live.resolution, fps, url)
        payload["stream"] = cam.stream  # after the seed's six keys: which stream was analysed
        if shm is not None:  # after the seed's six keys: where readers on this box find the picture
            payload["ring"] = shm[0]
            if shm[1] is not None:  # written: someone on this box reads the ring
                payload["ring_write"] = shm[1]
        self.latency.observe((time.time() - live.timestamp) * 1000)
        self.bus.publish_soon(FRAME_SUBJECT, payload)

    def status_payloads(self) -> list[dict[str, Any]]:
        now = time.time()
        payloads = []
        for cam in self.live.values():
            payload = cam.status(now)
            payload["node"] = self.config.node
            hubs = {name: self.hubs.get((cam.camera.id, name)) for name in cam.pictures}
            viewers = {name: hub.watching if hub is not None else 0 for name, hub in hubs.items()}
            payload["viewers"] = sum(viewers.values())  # live.ws, live.mp4 and HLS, every stream
            for name, count in viewers.items():
                payload["streams"][name]["viewers"] = count
            if self.worker is not None:
                payload["restarts"], payload["worker_pid"] = self.worker.restarts, os.getpid()
            recorder = self.recorders.get(cam.camera.id)
            if recorder is not None:
                payload["recording"] = recorder.status.state
                payload["recording_error"] = recorder.status.error if recorder.status.failure == "storage" else None
            for name in cam.camera.roles.record:
                recorder = self.recorders.get(cam.camera.footage_of(name))
                if recorder is not None and name in payload["streams"]:
                    payload["streams"][name]["recording"] = recorder.status.state
            restreamer = self.restreamers.get(cam.camera.id)
            if restreamer is not None:
                payload["restream"] = {"target": restreamer.shown, "connected": restreamer.connected,
                                       "error": restreamer.error, "sent": restreamer.sent}  # fmt: skip
            transcoder = self.transcoders.get(cam.camera.id)
            if transcoder is not None:  # what the recording is re-encoded at, and why
                payload["transcode_bitrate_kbps"] = transcoder.bitrate // 1000
                payload["transcode_reason"] = transcoder.controller.reason
                payload |= transcoder.ladder_state()
            payloads.append(redact.data(payload))  # an error text must never carry a password
        return payloads

    async def _status_loop(self, stop: asyncio.Event, reload: asyncio.Event | None) -> None:
        interval = self.config.ingest.status_interval
        next_all = time.monotonic()
        pending: set[str] = set()
        parent = os.getppid()
        while not stop.is_set():
            if self.worker is not None and os.getppid() != parent:
                log.error("the run-all supervisor is gone; stopping this worker")
                stop.set()
                break
            if reload is not None and reload.is_set():
                reload.clear()
                await self._reload()
            now = time.time()
            for feeds in self.live.values():  # the fps put in frame events, refreshed every second
                cam = feeds.analysis
                fps, _kbps = cam.measured(now)
                if fps is not None:
                    self._fps[cam.camera.id] = round(fps, 2)
            if time.monotonic() >= next_all:
                pending |= set(self.live)
                next_all = max(next_all + interval, time.monotonic())
            while not self._changed.empty():
                pending.add(self._changed.get_nowait())
            if pending and self.bus is not None:
                for payload in self.status_payloads():
                    if payload["camera_id"] in pending:
                        await self.bus.publish(STATUS_SUBJECT, payload)
            pending = set()
            wait = min(1.0, max(0.05, next_all - time.monotonic()))
            # A change wakes us (status goes out as a camera flips), and so does stop: a hundred
            # workers stopping together must not each decode for another second first.
            changed, stopping = asyncio.ensure_future(self._changed.get()), asyncio.ensure_future(stop.wait())
            await asyncio.wait((changed, stopping), timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if changed.done():
                pending.add(changed.result())
            else:
                changed.cancel()

    async def _answer_snapshot(self, msg: Any) -> None:
        """NATS request/reply: seguranca.camera.snapshot.<camera_id>, optional JSON body
        {"quality": 85, "width": 640}; the reply is the JPEG, with Camctl-Frame-Number and
        Camctl-Frame-Timestamp headers, or an empty body with a Camctl-Error header."""
        feeds = self.live.get(msg.subject.rpartition(".")[2])
        if feeds is None:
            return  # another node's camera: stay silent so that node can answer
        try:
            options = json.loads(msg.data) if msg.data else {}
            if not isinstance(options, dict):
                raise ValueError("the request body is a JSON object")
            quality, width = jpeg_settings(options.get("quality"), options.get("width"))
            stream = options.get("stream")
            cam = feeds.picture(None if stream is None else str(stream), "snapshot")
        except (ValueError, UnknownStream) as exc:  # JSONDecodeError too; Infinity and 1e9 are answered
            await self._reply(msg, b"", {"Camctl-Error": f"bad request: {exc}"})
            return
        live = await cam.still(STILL_WAIT, fresh=True)
        if live is None:
            await self._reply(msg, b"", {"Camctl-Error": f"camera offline: {cam.error or 'no picture in time'}"})
            return
        jpeg = await self.jpegs.get(cam.camera.label, live, quality, width)
        headers = {"Camctl-Frame-Number": str(live.number), "Camctl-Frame-Timestamp": f"{live.timestamp:.6f}"}
        await self._reply(msg, jpeg, headers)

    async def _answer_status(self, msg: Any) -> None:
        body = {"node": self.config.node, "url": self.config.http.public_url, "cameras": self.status_payloads()}
        await self._reply(msg, encode(body))

    async def _reply(self, msg: Any, body: bytes, headers: dict[str, str] | None = None) -> None:
        if msg.reply and self.bus is not None and self.bus.nc is not None:
            await self.bus.nc.publish(msg.reply, body, headers=headers)

    def metrics(self) -> str:
        statuses = self.status_payloads()
        families = [*camera_families(statuses, self.config.node), *stream_families(statuses, self.config.node),
                    latency_family(self.latency)]  # fmt: skip
        if self.bus is not None:
            families += bus_families(self.bus.connected, self.bus.published, self.bus.dropped)
        return exposition(families)

    async def run(self, stop: asyncio.Event, reload: asyncio.Event | None = None) -> None:
        """Until stop is set; each time reload is set, the config is read again (SIGHUP)."""
        self._loop = asyncio.get_running_loop()
        url = self.worker.nats_url if self.worker is not None else self.config.nats.url
        http = self.config.http
        listen = Listen(http.listen, http.host, http.port, self.worker.socket if self.worker is not None else None)

        def app(bus: Bus) -> web.Application:
            view = local_view(self.by_name, self.status_payloads, self.metrics, bus.state, lambda: self.config)
            routes = camera_routes(self.by_name, self.jpegs) | live_routes(self._hub)
            if self.worker is not None:
                return build_app(view, routes)  # who may come, and how many, is the front's job
            http = self.config.http
            limits = ConnectionLimits(http.max_connections, http.max_connections_per_client)
            footage, more = FootageRoutes(lambda: self.config).routes()
            more.append(("/api/fleet", Fleet(lambda: self.bus, lambda: self.config).handler))
            marks = [mark_post(self.marks)]
            return build_app(view, routes | footage, gate_for(http, default_data_dir()), limits, more, marks)

        # The configured NATS's credentials; none for run-all's embedded server (loopback only).
        credentials = self.config.nats if self.config.nats.url else None
        async with bus_and_http(url, f"camctl@{self.config.node}", app, listen, credentials) as self.bus:
            await self.bus.respond(f"{SNAPSHOT_SUBJECT}.*", self._answer_snapshot)
            await self.bus.respond(STATUS_REQUEST_SUBJECT, self._answer_status)
            if self.worker is None:  # under run-all the supervisor takes the marks
                await self.bus.respond(MARK_SUBJECT, self.marks.on_message)
            try:
                for cam in self.cameras:
                    self._add(cam)
                if self.worker is None:  # under run-all the supervisor's banner has said it once
                    log.info(
                        "ingesting %d camera(s): frames on %s/<camera>/frame.jpg, events on %s (%s, %s)",
                        len(self.sessions), http.public_url, redact(self.bus.url), FRAME_SUBJECT, STATUS_SUBJECT,
                    )  # fmt: skip
                await self._status_loop(stop, reload)
            finally:
                for sessions in self.sessions.values():
                    for session in sessions:
                        session.stop()
                await asyncio.get_running_loop().run_in_executor(None, self._join_sessions)
                for recorder in self.recorders.values():
                    recorder.finalize()  # a session stuck on a silent camera: close its segment from here
                for ring in self.rings.values():
                    ring.close()

    def _hub(self, name: str, stream: str | None) -> LiveHub | None:
        """The live viewers of a camera's stream: the one asked for, else its live role's."""
        feeds = self.by_name.get(name)
        if feeds is None:
            return None
        return self.hubs.get((feeds.camera.id, feeds.pick(stream, "live")))

    def _prune(self, force: bool = False) -> None:
        if self.retention is not None:
            self.retention.run(force)

    def serve(self) -> None:
        """Runs until SIGTERM or SIGINT; SIGHUP reloads the config when `reload` was given; a
        worker never outlives its supervisor."""
        run_until_signalled(self.run, reload=self.reload_config is not None, child=self.worker is not None)

    def _join_sessions(self) -> None:
        deadline = time.monotonic() + 3.0
        for sessions in self.sessions.values():
            for session in sessions:
                session.join(max(0.0, deadline - time.monotonic()))
