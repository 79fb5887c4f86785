"""A synthetic live camera: an FFmpeg test pattern encoded with libx264, paced in real time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from fractions import Fraction

import av
from av.video.frame import PictureType

from camctl.config import StreamView
from camctl.media.source import Packet, Source, StreamInfo


class DemoSource(Source):
    def __init__(self, camera: StreamView) -> None:
        self.camera = camera
        self.spec = spec = camera.demo
        self.input = av.open(f"{spec.pattern}=size={spec.width}x{spec.height}:rate={spec.fps}", format="lavfi")
        self.time_base = Fraction(1, spec.fps)
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height, enc.pix_fmt = spec.width, spec.height, "yuv420p"
        enc.time_base = self.time_base
        enc.framerate = Fraction(spec.fps)
        enc.bit_rate = spec.bitrate
        enc.gop_size = spec.keyframe_interval
        enc.max_b_frames = 0
        gop, kbps = spec.keyframe_interval, spec.bitrate // 1000
        # Headers repeated in-band at every keyframe, as RTSP cameras send them.
        enc.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            # A VBV cap keeps the bitrate near its target whatever the pattern, as a camera's CBR does.
            "x264-params": (
                f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1:vbv-maxrate={kbps}:vbv-bufsize={kbps}"
            ),
        }
        enc.thread_count = 1
        enc.open()
        self.encoder = enc
        self.info = StreamInfo(
            codec="h264",
            profile=enc.profile,
            width=spec.width,
            height=spec.height,
            claimed_fps=float(spec.fps),
            time_base=self.time_base,
            extradata=None,
            transport="demo",
        )

    def packets(self, audio: bool = False) -> Iterator[Packet]:
        started = time.monotonic()
        for number, raw in enumerate(self.input.decode(video=0)):
            # A camera delivers frame n at n/fps after it started: wait for that moment.
            delay = started + number / self.spec.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            frame = raw if raw.format.name == "yuv420p" else raw.reformat(format="yuv420p")
            frame.pts, frame.time_base = number, self.time_base
            frame.pict_type = PictureType.NONE  # lavfi marks every frame I: let x264 choose
            for packet in self.encoder.encode(frame):
                packet.time_base = self.time_base
                yield packet

    def close(self) -> None:
        self.input.close()
