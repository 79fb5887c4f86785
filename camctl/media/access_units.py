"""Whole frames (access units) from the packets a camera delivers.

FFmpeg's RTSP demuxer can hand one frame over in several packets: x264 cameras send an access
unit delimiter, then the SPS/PPS and the slice, and the parser splits at the parameter sets, so a
keyframe arrives as two packets with the same timestamp, the very first one even without a
timestamp. A recording needs one sample per frame, so parts are joined here: a packet without a
timestamp belongs to the next one that has one, and packets sharing a timestamp are one frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

from camctl.media.source import Packet


@dataclass(frozen=True)
class AccessUnit:
    data: bytes  # Annex B, as the camera sent it
    pts: int  # in time_base
    dts: int
    time_base: Fraction
    key: bool

    @property
    def seconds(self) -> float:
        """Decode time in camera seconds (cameras rarely send B-frames, but order by decode time)."""
        return float(self.dts * self.time_base)

    @property
    def composition_offset(self) -> float:
        return float((self.pts - self.dts) * self.time_base)


def access_units(packets: Iterable[Packet]) -> Iterator[AccessUnit]:
    """Joins packets into frames. A frame is yielded when the next one starts, so this adds one
    frame interval of delay: fine for recording, which is not latency-critical."""
    parts: list[bytes] = []
    key = False
    current: tuple[int, int, Fraction] | None = None  # pts, dts, time_base of the frame being built
    for packet in packets:
        pts = packet.pts if packet.pts is not None else None
        if pts is not None and current is not None and pts != current[0]:
            yield AccessUnit(b"".join(parts), current[0], current[1], current[2], key)
            parts, key, current = [], False, None
        parts.append(bytes(packet))
        key = key or packet.is_keyframe
        if pts is not None and current is None:
            dts = packet.dts if packet.dts is not None else pts
            current = (pts, dts, packet.time_base or Fraction(1, 90000))
    if current is not None:
        yield AccessUnit(b"".join(parts), current[0], current[1], current[2], key)
