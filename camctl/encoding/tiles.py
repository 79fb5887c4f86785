"""Frames for a grid that runs in another process: the camera workers' side and the grid's side.

Under `run-all` each camera lives in its own worker process with its one RTSP session, and the
grid runs in a process of its own. Rather than a second RTSP session per camera (or a JPEG round
trip per frame), each worker streams its newest frames already scaled into the grid's tile, raw
yuv420p, over its unix socket: `GET /<cam>/tiles.yuv?width=W&height=H`. Each record is a header
(frame number, capture time, width, height) and the picture; a header with width 0 is a
keep-alive, with number -1 it says the camera is offline.
"""

from __future__ import annotations

import http.client
import logging
import socket
import struct
from pathlib import Path

import av
from av.video.reformatter import Interpolation, VideoReformatter

from camctl.lifecycle import StoppableThread
from camctl.media.live import LiveFrame
from camctl.rules.layout import Tile, fit

log = logging.getLogger("camctl.grid")

HEADER = struct.Struct("<qdII")  # frame number, capture time, width, height
OFFLINE = -1
RETRY_SECONDS = 0.5


class TileScaler:
    """The camera worker's side: a frame scaled into a tile, keeping its shape."""

    def __init__(self, width: int, height: int) -> None:
        self.tile = Tile(0, 0, width, height)
        self._reformatter = VideoReformatter()  # our own: a frame's cached one is shared with JPEG encoding

    def record(self, number: int, captured: float, frame: av.VideoFrame) -> bytes:
        placed = fit(frame.width, frame.height, self.tile)
        scaled = self._reformatter.reformat(frame, width=placed.width, height=placed.height, format="yuv420p",
                                            interpolation=Interpolation.BILINEAR)  # fmt: skip
        return HEADER.pack(number, captured, placed.width, placed.height) + packed_yuv420p(scaled)


def packed_yuv420p(frame: av.VideoFrame) -> bytes:
    """The planes without their row padding. Not through numpy: the camera workers never import
    it (11 MiB each, a tenth of a worker)."""
    parts = []
    for plane in frame.planes:
        data, stride, width = memoryview(plane), plane.line_size, plane.width
        if stride == width:
            parts.append(bytes(data[: width * plane.height]))
        else:
            parts += [bytes(data[row * stride : row * stride + width]) for row in range(plane.height)]
    return b"".join(parts)


def keepalive(online: bool) -> bytes:
    return HEADER.pack(0 if online else OFFLINE, 0.0, 0, 0)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("worker", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.path))
        self.sock = sock


class WorkerTiles(StoppableThread):
    """The grid's side: one camera's newest tile, read from its worker in a thread of its own.

    A TileSource for Grid: `online` and `latest()`. When the worker is gone (restarting), the
    camera is offline for the grid until the worker answers again.
    """

    def __init__(self, camera_id: str, socket_path: Path, width: int, height: int) -> None:
        super().__init__(f"tiles-{camera_id}")
        self.camera_id = camera_id
        self.socket_path = socket_path
        self.width, self.height = width, height
        self.online = False
        self._latest: LiveFrame | None = None

    def latest(self) -> LiveFrame | None:
        return self._latest

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._read()
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if self.online:
                    log.warning("%s: tiles from its worker stopped: %s", self.camera_id, exc)
            self.online = False
            self._stop.wait(RETRY_SECONDS)

    def _read(self) -> None:
        connection = _UnixConnection(self.socket_path, timeout=5.0)  # keep-alives come every second
        try:
            connection.request("GET", f"/{self.camera_id}/tiles.yuv?width={self.width}&height={self.height}")
            response = connection.getresponse()
            if response.status != 200:
                raise OSError(f"worker answered {response.status}")
            while not self._stop.is_set():
                head = response.read(HEADER.size)
                if len(head) < HEADER.size:
                    raise OSError("worker closed the stream")
                number, captured, width, height = HEADER.unpack(head)
                if width == 0:
                    self.online = self.online and number != OFFLINE
                    continue
                data = response.read(width * height * 3 // 2)
                if len(data) < width * height * 3 // 2:
                    raise OSError("worker closed the stream")
                import numpy as np  # here, in the grid's process only

                array = np.frombuffer(data, dtype=np.uint8).reshape(height * 3 // 2, width)
                self._latest = LiveFrame(number, captured, av.VideoFrame.from_ndarray(array, format="yuv420p"))
                self.online = True
        finally:
            connection.close()
