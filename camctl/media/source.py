"""Camera sources: an RTSP camera or a synthetic `demo:` camera, both yielding H.264/H.265 packets.

Everything downstream (probe, snapshot, and later recording and ingest) reads the same
`Source.packets()` iterator, so the demo exercises the same code path as a real camera.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeAlias

import av
import av.error

from camctl.config import StreamView
from camctl.errors import AuthFailed, CameraError, CameraTimeout, CameraUnreachable
from camctl.media.audio import AudioInfo, audio_info

if TYPE_CHECKING:
    Packet: TypeAlias = av.Packet[Any]
else:
    Packet = av.Packet


TCP_REFUSED = "the camera refuses RTSP over TCP (461)"  # RTSP 461 Unsupported Transport


@dataclass(frozen=True)
class StreamInfo:
    codec: str  # FFmpeg decoder name: h264, hevc
    profile: str | None
    width: int  # 0 when the camera does not announce it; the first decoded frame tells
    height: int
    claimed_fps: float | None  # what the camera announces; probe measures the real rate
    time_base: Fraction
    extradata: bytes | None
    transport: str  # tcp, udp, auto, or demo
    audio: AudioInfo | None = None  # the camera's audio, when it sends any
    # The demuxed audio stream, for whoever copies its parameters during on_connected (it is freed
    # when the connection closes: never keep it).
    audio_stream: Any = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        size = f"{self.width}x{self.height}" if self.width else "size from the first keyframe"
        return f"{self.codec} {size}" + (f", audio {self.audio.describe()}" if self.audio else ", no audio")


class Source(ABC):
    camera: StreamView
    info: StreamInfo
    audio_stream: Any = None  # the demuxed audio stream, when the camera sends audio

    @abstractmethod
    def packets(self, audio: bool = False) -> Iterator[Packet]:
        """Video packets in arrival order, never empty ones, and with audio=True the audio packets
        too (`is_audio` tells them apart); raises CameraError on failure."""

    def is_audio(self, packet: Packet) -> bool:
        return self.audio_stream is not None and packet.stream_index == self.audio_stream.index

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class RtspSource(Source):
    def __init__(self, camera: StreamView, timeout: float) -> None:
        self.camera = camera
        self.timeout = timeout
        options = {
            # Open at once from the SDP instead of buffering a second of video to guess at
            # parameters: the first keyframe then reaches us as soon as the camera sends it.
            "analyzeduration": "0",
            "probesize": "32",
            "fpsprobesize": "0",
            "timeout": str(int(timeout * 1_000_000)),  # socket I/O timeout, microseconds
        }
        if camera.transport != "auto":
            options["rtsp_transport"] = camera.transport
        started = time.monotonic()
        try:
            self.container = av.open(camera.connect_url(), options=options, timeout=(timeout, timeout))
        except av.error.FFmpegError as exc:
            raise self._error(exc, time.monotonic() - started, "connecting") from None
        if not self.container.streams.video:
            self.container.close()
            raise CameraUnreachable(camera.id, "the stream has no video track", camera.display_url)
        self.stream = self.container.streams.video[0]
        # Data tracks (ONVIF metadata, backchannels) are never read; audio when wanted and usable.
        audio = self.container.streams.audio[0] if self.container.streams.audio else None
        self.audio_stream = audio if audio is not None and audio_info(audio) is not None else None
        ctx = self.stream.codec_context
        # Only an average the demuxer measured is a claim of frames per second: base_rate ("tbr")
        # is the H.264 timing's tick rate, twice the frame rate for most cameras (25 fps read "50").
        rate = self.stream.average_rate
        self.info = StreamInfo(
            codec=ctx.name,
            profile=ctx.profile,
            width=ctx.width,
            height=ctx.height,
            claimed_fps=float(rate) if rate else None,
            time_base=self.stream.time_base or Fraction(1, 90000),
            extradata=ctx.extradata,
            transport=camera.transport,
            audio=audio_info(self.audio_stream) if self.audio_stream is not None else None,
            audio_stream=self.audio_stream,
        )

    def packets(self, audio: bool = False) -> Iterator[Packet]:
        started = time.monotonic()
        streams = [self.stream, self.audio_stream] if audio and self.audio_stream is not None else [self.stream]
        try:
            for packet in self.container.demux(streams):
                if packet.size:
                    yield packet
                started = time.monotonic()
        except av.error.FFmpegError as exc:
            raise self._error(exc, time.monotonic() - started, "reading") from None
        raise CameraUnreachable(self.camera.id, "the camera ended the stream", self.camera.display_url)

    def close(self) -> None:
        self.container.close()

    def _error(self, exc: av.error.FFmpegError, elapsed: float, doing: str) -> CameraError:
        """Maps FFmpeg's error to ours; FFmpeg's own text carries the URL, so only strerror is kept."""
        cam, where = self.camera.id, self.camera.display_url
        if isinstance(exc, av.error.HTTPUnauthorizedError):
            return AuthFailed(cam, "authentication refused", where)
        if isinstance(exc, av.error.HTTPForbiddenError):
            return AuthFailed(cam, "access forbidden (403)", where)
        if isinstance(exc, av.error.HTTPNotFoundError):
            return CameraUnreachable(cam, "no such stream on the camera (404)", where)
        if isinstance(exc, av.error.ConnectionRefusedError):
            return CameraUnreachable(cam, "connection refused", where)
        if elapsed >= self.timeout * 0.95 or isinstance(exc, (av.error.ExitError, TimeoutError)):
            return CameraTimeout(cam, f"no answer within {self.timeout:g}s while {doing}", where)
        if isinstance(exc, av.error.EOFError):
            return CameraUnreachable(cam, "the camera ended the stream", where)
        reason = (exc.strerror or type(exc).__name__).strip().rstrip(".").lower()
        if reason == "protocol not supported" and self.camera.transport == "tcp":
            # RTSP 461 Unsupported Transport: servers such as VLC's send RTP over UDP only.
            return CameraUnreachable(cam, f"{TCP_REFUSED}: set transport: auto or udp", where)
        return CameraUnreachable(cam, f"{reason} while {doing}", where)
