"""A camera's stream re-encoded at a target bitrate, handed on as if the camera had sent it.

`Transcoder` is a session consumer placed in front of another (the recorder): it decodes the
camera's packets, encodes the pictures at the controller's bitrate (a keyframe every 2 s, rate
changes at keyframes) and passes the new packets on with the camera's own timing, so the recorder's
segments, timeline and journal work unchanged. When decoding and encoding take longer than real
time the encoder ladder makes each frame cheaper (x264's preset), then keeps every other frame;
the bitrate follows the storage budget only. Stream copy stays the default: a camera without
`transcode` in its config never gets here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from typing import Any

import av
import av.error
from av.video.reformatter import VideoReformatter

from camctl.config import StorageConfig, StreamView, TranscodeConfig
from camctl.encoding.bitrate import BitrateController, StorageBudget
from camctl.encoding.encoder import KeyframeEncoder
from camctl.encoding.ladder import EncoderLadder
from camctl.media.access_units import KeyframeJoiner
from camctl.media.decode import DecoderChoice, open_best_decoder
from camctl.media.encoders import best_encoder
from camctl.media.session import Consumer
from camctl.media.source import Packet, StreamInfo

log = logging.getLogger("camctl.transcode")

TIME_BASE = Fraction(1, 90000)
KEYFRAME_SECONDS = 2.0
SHOWN_STEPS = 10  # the ladder's latest steps in status


class Transcoder:
    def __init__(
        self,
        camera: StreamView,
        settings: TranscodeConfig,
        inner: Consumer,
        budget: StorageBudget | None = None,
        hardware_decode: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """clock: what decoding and encoding are timed by (the ladder's measure of load)."""
        self.camera = camera
        self.clock = clock
        self.inner = inner
        self.settings = settings
        self.hardware_decode = hardware_decode
        self.decodes = True  # False when another consumer decodes and hands pictures to take()
        self.controller = BitrateController(self.settings.bitrate, self.settings.min_bitrate, None, budget)
        self.encoder_name = best_encoder(self.settings.encoder)
        preset = self.settings.preset if self.encoder_name == "libx264" else None
        self.ladder = EncoderLadder(self.encoder_name, 0.0, pinned=preset, name=camera.id)  # fps: at the first picture
        self.dropped_frames = 0  # pictures lost to decode or encode errors
        self._info: StreamInfo | None = None
        self._decoder: DecoderChoice | None = None
        self._joiner = KeyframeJoiner()
        self._encoder: KeyframeEncoder | None = None
        self._origin: float | None = None  # camera seconds of the first picture since connecting
        self._last_pts = -1
        self._busy = 0.0  # seconds spent decoding and encoding since the last keyframe
        self._since = self.clock()
        self._started = self._since
        self._pictures = 0  # since connecting: the ladder's lowest rung keeps every other one
        # Our own scaler, as everywhere a frame may be shared: frame.reformat() keeps one per frame.
        self._reformatter = VideoReformatter()

    @property
    def bitrate(self) -> int:
        return self.controller.bitrate

    def ladder_state(self) -> dict[str, object]:
        """The encoder ladder's rung and latest steps, for status (and metrics)."""
        return {
            "transcode_preset": self.ladder.rung.preset,
            "transcode_fps": self.ladder.encoded_fps if self.ladder.fps else None,  # None: not connected yet
            "transcode_ladder_steps": len(self.ladder.steps),
            "transcode_ladder": [step.to_json() for step in self.ladder.steps[-SHOWN_STEPS:]],
        }

    # --- session callbacks ---------------------------------------------------------------------

    def on_connected(self, info: StreamInfo) -> None:
        self._info = info
        self.ladder.fps = round(info.claimed_fps or 25)
        self._decoder = open_best_decoder(info, self.hardware_decode) if self.decodes else None
        self._joiner = KeyframeJoiner()
        self._encoder, self._origin, self._last_pts = None, None, -1  # opened at the first picture: its size

    def on_packet(self, packet: Packet, arrived: float) -> None:
        if self._decoder is None:
            return
        for whole, when in self._joiner.push(packet, arrived):
            began = self.clock()
            try:
                pictures = self._decoder.context.decode(whole)
            except av.error.FFmpegError:
                self.dropped_frames += 1
                continue
            finally:
                self._busy += self.clock() - began
            for picture in pictures:
                self._encode(picture, whole, when)

    def on_audio(self, packet: Packet, arrived: float) -> None:
        self.inner.on_audio(packet, arrived)  # audio is kept as the camera sent it (G.711: as AAC)

    def take(self, picture: av.VideoFrame, arrived: float) -> None:
        """A picture decoded by another consumer of the same session (the live decoder).

        Encoding sets its pts, time_base and pict_type; the live side never reads those (frames
        are known by their number and arrival time), so the picture is not copied for that."""
        if self._info is not None:
            self._encode(picture, None, arrived)

    def on_offline(self, reason: str, kind: str) -> None:
        self._flush(time.time())
        self._decoder = None
        self.inner.on_offline(reason, kind)

    def on_stopped(self) -> None:
        self._flush(time.time())
        self.inner.on_stopped()

    # --- encoding --------------------------------------------------------------------------------

    def _encode(self, picture: av.VideoFrame, packet: Packet | None, arrived: float) -> None:
        encoder = self._encoder or self._open(picture)
        if encoder is None:
            return
        self._pictures += 1
        if self._pictures % self.ladder.rung.stride:
            return  # the ladder's lowest rung: every other picture
        if encoder.keyframe_due:
            self._adjust(encoder)
        began = self.clock()
        if picture.format.name != "yuv420p" or (picture.width, picture.height) != (encoder.width, encoder.height):
            picture = self._reformatter.reformat(picture, width=encoder.width, height=encoder.height, format="yuv420p")
        picture.pts = self._pts(picture, packet)
        picture.time_base = TIME_BASE
        try:
            packets = encoder.encode(picture)
        except av.error.FFmpegError as exc:
            self.dropped_frames += 1
            log.warning("%s: encoding failed: %s", self.camera.id, exc)
            return
        self._busy += self.clock() - began
        for out in packets:
            self.inner.on_packet(out, arrived)

    def _pts(self, picture: av.VideoFrame, packet: Packet | None) -> int:
        """The camera's clock, from 0 at the first picture, strictly increasing."""
        seconds = picture.time if picture.time is not None else None
        if seconds is None and packet is not None and packet.pts is not None and packet.time_base is not None:
            seconds = float(packet.pts * packet.time_base)
        if seconds is None:
            pts = self._last_pts + 1
        else:
            if self._origin is None:
                self._origin = seconds
            pts = round((seconds - self._origin) * TIME_BASE.denominator)
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        return pts

    def _open(self, picture: av.VideoFrame) -> KeyframeEncoder | None:
        info = self._info
        if info is None:
            return None
        fps = round(info.claimed_fps or 25)
        width, height = picture.width // 2 * 2, picture.height // 2 * 2
        self._pictures = 0
        try:
            self._encoder = KeyframeEncoder(self.encoder_name, width, height, fps, self.controller.bitrate,
                                            max(1, round(fps * KEYFRAME_SECONDS)), TIME_BASE,
                                            self.ladder.rung.preset)  # fmt: skip
        except (av.error.FFmpegError, ValueError) as exc:
            self.dropped_frames += 1
            log.error("%s: %s does not open at %dx%d: %s", self.camera.id, self.encoder_name, width, height, exc)
            return None
        log.info("%s: transcoding %s %dx%d to %s at %d kbps%s", self.camera.id, info.codec, width, height,
                 self.encoder_name, self.controller.bitrate // 1000,
                 f", preset {self.ladder.rung.preset}" if self.ladder.rung.preset else "")  # fmt: skip
        codec = "hevc" if "hevc" in self.encoder_name else "h264"
        # Audio passes as the camera sent it: its parameters go on with the new video's.
        self.inner.on_connected(replace(info, codec=codec, profile=None, width=width, height=height,
                                        time_base=TIME_BASE, extradata=None))  # fmt: skip
        return self._encoder

    def _adjust(self, encoder: KeyframeEncoder) -> None:
        """At a keyframe: the ladder's rung from how the last GOP went (decoding and encoding it
        took most of its real time: struggling), the bitrate from the storage budget."""
        now = self.clock()
        elapsed = now - self._since
        struggling = None
        if elapsed > 0 and self._busy > 0.9 * elapsed:
            struggling = f"transcoding took {self._busy / elapsed:.0%} of real time"
        rung = self.ladder.update(now - self._started, struggling)
        if rung is not None:
            encoder.set_preset(rung.preset)
        change = self.controller.update(name=self.camera.id)  # load is the ladder's
        if change is not None:
            encoder.set_bitrate(change.new)
        self._busy, self._since = 0.0, now

    def _flush(self, arrived: float) -> None:
        if self._encoder is None:
            return
        try:
            packets: list[Any] = self._encoder.flush()
        except av.error.FFmpegError:
            packets = []
        for out in packets:
            self.inner.on_packet(out, arrived)
        self._encoder = None


def recording_input(
    camera: StreamView, recorder: Consumer, storage: StorageConfig, streams: int, hardware_decode: bool = True
) -> Consumer:
    """What the session feeds for recording: the recorder itself (stream copy), or a Transcoder in
    front of it when the camera has `transcode` settings, budgeted on the recordings' disk."""
    settings = camera.camera.transcode
    if settings is None:
        return recorder
    r = storage.retention
    budget = StorageBudget(storage.root, r.max_age, streams, r.min_free or 0) if r.max_age else None
    return Transcoder(camera, settings, recorder, budget, hardware_decode)
