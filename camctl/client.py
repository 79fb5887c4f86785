"""Frames for analysis, the easy way: `for frame in Frames("cam_1", fps=10): frame.array`.

    from camctl.client import Frames

    with Frames("cam_1", fps=10) as frames:   # the bus of camctl's config, or run-all's embedded one
        for frame in frames:
            print(frame.number, frame.timestamp, frame.array.shape, frame.skipped)

Each frame event on NATS (`seguranca.camera.frame`) wakes the iterator. When the camera is decoded
on this box the picture comes from its shared-memory ring (no JPEG made, none decoded: a copy of
the decoder's picture, in the camera's `analysis` format); from another box, from the JPEG behind
the event's `url` (decoded here to RGB). Either way the same `Frame`: a numpy array, camctl's frame
number and capture time. A consumer slower than the camera gets the newest frame and the count of
those it skipped, never a stale queue. A camera that does not exist raises `UnknownCamera`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from camctl.analysis.publisher import marker_path
from camctl.analysis.reader import RingReader
from camctl.analysis.ring import RING_DIR, RingMissing
from camctl.bus.client import bus_of, connect_or_fail
from camctl.bus.subjects import FRAME_SUBJECT, STATUS_REQUEST_SUBJECT
from camctl.config import NatsConfig, load_config

TOUCH_EVERY = 1.0  # seconds between the reader's marks on its ring (the writer writes while they come)
RING_GRACE = 3.0  # seconds a local ring may take to start before its events are read by JPEG instead


class UnknownCamera(LookupError):
    """No camctl on the bus knows this camera."""


class NoFrames(TimeoutError):
    """No frame came within the timeout."""


@dataclass(frozen=True)
class Frame:
    camera_id: str
    number: int  # camctl's frame number: the event's frame_number
    timestamp: float  # capture time (Unix seconds): the event's timestamp
    array: np.ndarray[Any, np.dtype[np.uint8]]  # see `format`
    format: str  # rgb24 (h, w, 3) from JPEG; from shared memory the camera's analysis format:
    # yuv420p (h*3/2, w) I420, gray (h, w), rgb24 or bgr24 (h, w, 3)
    skipped: int  # frames of this camera not handed out since the previous one (fell behind, or fps)
    source: str  # "shm" or "jpeg"
    event: dict[str, Any]  # the frame event as published
    received: float  # when its event reached this process (time.time()): the array came after it


class Frames:
    """Iterates over a camera's frames at up to `fps` (None: every frame event)."""

    def __init__(
        self,
        camera_id: str,
        fps: float | None = None,
        nats_url: str | None = None,
        timeout: float = 10.0,
        check_camera: bool = True,
        shared_memory: bool = True,
        nats: NatsConfig | None = None,
    ) -> None:
        """nats_url: where the events are; by default the bus of camctl's config as every command
        finds it ($CAMCTL_CONFIG, ./camctl.yaml, /etc/camctl/camctl.yaml: its url, user, token,
        creds and TLS), else run-all's embedded server on 127.0.0.1:4222; nats: credentials for a
        nats_url given here. timeout: seconds to wait for a frame before NoFrames; check_camera:
        ask camctl's status first, so a camera that does not exist is an error, not a silence;
        shared_memory: False takes the JPEG path even on the camera's box (for comparison)."""
        if nats_url is None:
            nats_url, nats = bus_of(load_config().nats)
        self.camera_id, self.fps, self.nats_url, self.timeout = camera_id, fps, nats_url, timeout
        self.credentials = nats
        self.check_camera, self.shared_memory = check_camera, shared_memory
        self._received = 0.0
        self._cond = threading.Condition()
        self._latest: dict[str, Any] | None = None
        self._events = 0  # events received; the skipped count comes from it
        self._taken = 0
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._readers: dict[str, RingReader] = {}
        self._touched: dict[str, float] = {}
        self._thread = threading.Thread(target=self._listen, name=f"camctl-frames-{camera_id}", daemon=True)
        self._thread.start()
        self._ready.wait(timeout + 5)
        if self._error is not None:
            raise self._error

    # --- the NATS side (its own thread and loop) ---------------------------------------------------

    def _listen(self) -> None:
        try:
            asyncio.run(self._subscribe())
        except BaseException as exc:  # noqa: BLE001 - handed to the iterating thread
            self._error = exc
            self._ready.set()
            with self._cond:
                self._cond.notify_all()

    async def _subscribe(self) -> None:
        nc = await connect_or_fail(self.nats_url, self.timeout, self.credentials)
        try:
            if self.check_camera:
                await self._check_camera(nc)

            async def on_event(msg: Any) -> None:
                event = json.loads(msg.data)
                if event.get("camera_id") != self.camera_id:
                    return
                with self._cond:
                    self._latest, self._received = event, time.time()
                    self._events += 1
                    self._cond.notify_all()

            await nc.subscribe(FRAME_SUBJECT, cb=on_event)
            self._ready.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.2)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    async def _check_camera(self, nc: Any) -> None:
        """Every camctl on the bus answers a status request; none naming the camera: unknown."""
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish(STATUS_REQUEST_SUBJECT, b"", reply=inbox)
        known: list[str] = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=max(0.01, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - nats' timeout: no more answers
                break
            try:
                answer = json.loads(msg.data)
            except ValueError:  # NATS's "no responders" (an empty status message): nobody runs camctl
                break
            cameras = [c.get("camera_id") for c in answer.get("cameras", [])]
            if self.camera_id in cameras:
                await sub.unsubscribe()
                return
            known += [c for c in cameras if c]
        await sub.unsubscribe()
        if known:  # someone answered, and not for this camera
            raise UnknownCamera(f"unknown camera {self.camera_id!r} (known: {', '.join(sorted(set(known)))})")
        raise UnknownCamera(f"no camctl answered on {self.nats_url} for camera {self.camera_id!r}")

    # --- the consumer's side ----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Frame]:
        while True:
            yield self.next()

    def next(self) -> Frame:
        """The newest frame not handed out yet, waiting for one up to `timeout`."""
        due = self._last_handed + 1 / self.fps if self.fps and self._taken else 0.0
        wait = due - time.monotonic()
        if wait > 0:
            self._stop.wait(wait)
        deadline = time.monotonic() + self.timeout
        while True:
            with self._cond:
                while self._events == self._taken and self._error is None:
                    self._touch(self._latest)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise NoFrames(f"no frame from {self.camera_id} within {self.timeout:g}s")
                    self._cond.wait(min(left, TOUCH_EVERY))
                if self._error is not None:
                    raise self._error
                event, events, received = self._latest, self._events, self._received
            if event is None:
                continue
            self._touch(event)
            frame = self._frame(event, events - self._taken - 1, received)
            self._taken = events
            if frame is not None:
                self._last_handed = time.monotonic()
                return frame

    _last_handed = 0.0
    _local_since = 0.0

    def _frame(self, event: dict[str, Any], skipped: int, received: float) -> Frame | None:
        """The event's picture: from the ring when the camera is decoded on this box (its marker is
        here), else by JPEG. None: local, but the writer has not seen our mark yet (it looks once a
        second); the ring's pictures come with the next events."""
        name, write = event.get("ring"), event.get("ring_write")
        if name and self.shared_memory and marker_path(RING_DIR / name).exists():
            self._local_since = self._local_since or time.monotonic()
            reader = self._reader(name) if write is not None else None
            if reader is not None and write is not None:
                reader.replaced()  # a worker restarted: map its new ring
                got = reader.read(write=int(write)) or reader.read()
                if got is not None:
                    skipped += max(0, got.number - int(event["frame_number"]))  # it moved on meanwhile
                    return Frame(self.camera_id, got.number, got.timestamp, got.array, got.format, skipped,
                                 "shm", event, received)  # fmt: skip
            if time.monotonic() - self._local_since < RING_GRACE:
                return None
        return self._from_jpeg(event, skipped, received)

    def _reader(self, name: str) -> RingReader | None:
        if name not in self._readers:
            try:
                self._readers[name] = RingReader(name)
            except RingMissing:
                return None
        return self._readers[name]

    def _touch(self, event: dict[str, Any] | None) -> None:
        """Marks the ring as read (the writer writes while marks come)."""
        name = event.get("ring") if event else None
        if not name or time.monotonic() - self._touched.get(name, 0.0) < TOUCH_EVERY:
            return
        self._touched[name] = time.monotonic()
        with contextlib.suppress(OSError):  # not on this box, or not ours to mark
            os.utime(marker_path(RING_DIR / name))

    def _from_jpeg(self, event: dict[str, Any], skipped: int, received: float) -> Frame | None:
        """None when that JPEG cannot be had (the camera just went offline: 503, a node restarting):
        the next event tries again; a camera that stays away ends in NoFrames."""
        import av  # only the JPEG path needs a decoder
        import av.error

        try:
            with urllib.request.urlopen(event["url"], timeout=self.timeout) as response:  # noqa: S310 - camctl's
                body = response.read()
                number = int(response.headers.get("X-Frame-Number", event["frame_number"]))
            with av.open(io.BytesIO(body), "r", format="mjpeg") as container:
                picture = next(container.decode(video=0))
        except (OSError, ValueError, StopIteration, av.error.FFmpegError):  # URLError and HTTPError are OSErrors
            return None
        array = np.asarray(picture.to_ndarray(format="rgb24"), dtype=np.uint8)
        return Frame(self.camera_id, number, float(event["timestamp"]), array, "rgb24", skipped, "jpeg", event,
                     received)  # fmt: skip

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
