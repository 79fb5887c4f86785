"""Whole frames (access units) from the packets a camera delivers.

FFmpeg's RTSP demuxer can hand one frame over in several packets: x264 cameras send an access
unit delimiter, then the SPS/PPS and the slices, and the parser splits at the parameter sets, so a
keyframe can arrive as two packets with the same timestamp. Right after connecting, packets may
come without any timestamp: some hold only parameter sets (they belong to the next frame), some a
whole picture (a frame of its own, whose time is then inferred from the next one). A recording
needs exactly one sample per frame, so this module puts the parts together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

from camctl.media.source import Packet

_START_CODE = re.compile(b"\x00\x00\x01")
DEFAULT_TIME_BASE = Fraction(1, 90000)


@dataclass(slots=True)
class AccessUnit:
    data: bytes  # Annex B, as the camera sent it
    pts: int  # in time_base
    dts: int
    time_base: Fraction
    key: bool

    @property
    def seconds(self) -> float:
        """Decode time in camera seconds (cameras rarely send B-frames, but order by decode time)."""
        return self.dts * self.time_base.numerator / self.time_base.denominator

    @property
    def composition_offset(self) -> float:
        return (self.pts - self.dts) * self.time_base.numerator / self.time_base.denominator


def has_picture(data: bytes, codec: str) -> bool:
    """Whether Annex B data holds a coded picture (a VCL NAL unit), not only headers or SEI."""
    for unit in _START_CODE.split(data)[1:]:
        if not unit:
            continue
        if codec == "hevc":
            if (unit[0] >> 1) & 0x3F < 32:
                return True
        elif 1 <= unit[0] & 0x1F <= 5:
            return True
    return False


@dataclass
class _Frame:
    parts: list[bytes]
    key: bool
    pts: int = 0  # for pictures that came without a time: set once the next frame tells it
    dts: int = 0
    time_base: Fraction = DEFAULT_TIME_BASE


def access_units(packets: Iterable[Packet], codec: str = "h264") -> Iterator[AccessUnit]:
    """Joins packets into frames. A frame is yielded when the next one starts, so this adds one
    frame interval of delay: fine for recording, which is not latency-critical."""
    prefix: list[bytes] = []  # headers without a timestamp: they belong to the next frame
    prefix_key = False
    untimed: list[_Frame] = []  # whole pictures that came without a timestamp
    current: _Frame | None = None
    step = 0  # the latest frame interval, in the camera's time base
    for packet in packets:
        data = bytes(packet)
        if packet.pts is None:
            if has_picture(data, codec):
                untimed.append(_Frame([*prefix, data], prefix_key or packet.is_keyframe))
                prefix, prefix_key = [], False
            else:
                prefix.append(data)
                prefix_key = prefix_key or packet.is_keyframe
            continue
        if current is not None and packet.pts == current.pts:
            current.parts += [*prefix, data]
            current.key = current.key or prefix_key or packet.is_keyframe
            prefix, prefix_key = [], False
            continue
        tb = packet.time_base or DEFAULT_TIME_BASE
        if current is not None:
            step = packet.pts - current.pts if packet.pts > current.pts else step
            yield AccessUnit(b"".join(current.parts), current.pts, current.dts, current.time_base, current.key)
        dts = packet.dts if packet.dts is not None else packet.pts
        # Pictures that came without a time sit one frame interval apart, just before this one.
        interval = step or round(1 / (30 * tb))
        for n, frame in enumerate(untimed):
            back = (len(untimed) - n) * interval
            yield AccessUnit(b"".join(frame.parts), packet.pts - back, dts - back, tb, frame.key)
        untimed = []
        current = _Frame([*prefix, data], prefix_key or packet.is_keyframe, packet.pts, dts, tb)
        prefix, prefix_key = [], False
    if current is not None:
        yield AccessUnit(b"".join(current.parts), current.pts, current.dts, current.time_base, current.key)
