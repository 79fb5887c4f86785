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

import av

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
    arrived: float = 0.0  # wall clock when its first part arrived (0 when not told)

    @property
    def presentation(self) -> float:
        """Presentation time in camera seconds."""
        return self.pts * self.time_base.numerator / self.time_base.denominator


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
    arrived: float = 0.0


class AccessUnitAssembler:
    """Push packets in, get whole frames out. A frame comes out when the next one starts, so this
    adds one frame interval of delay: fine for recording, which is not latency-critical."""

    def __init__(self, codec: str = "h264") -> None:
        self.codec = codec
        self._prefix: list[bytes] = []  # headers without a timestamp: they belong to the next frame
        self._prefix_key = False
        self._untimed: list[_Frame] = []  # whole pictures that came without a timestamp
        self._current: _Frame | None = None
        self._step = 0  # the latest frame interval, in the camera's time base

    def push(self, packet: Packet, arrived: float = 0.0) -> list[AccessUnit]:
        """arrived: when the packet came; a frame keeps the time its first part came (the frame
        comes out only once the next one starts, a frame interval later)."""
        data = bytes(packet)
        if packet.pts is None:
            if has_picture(data, self.codec):
                frame = _Frame([*self._prefix, data], self._prefix_key or packet.is_keyframe, arrived=arrived)
                self._untimed.append(frame)
                self._prefix, self._prefix_key = [], False
            else:
                self._prefix.append(data)
                self._prefix_key = self._prefix_key or packet.is_keyframe
            return []
        current = self._current
        if current is not None and packet.pts == current.pts:
            current.parts += [*self._prefix, data]
            current.key = current.key or self._prefix_key or packet.is_keyframe
            self._prefix, self._prefix_key = [], False
            return []
        done: list[AccessUnit] = []
        tb = packet.time_base or DEFAULT_TIME_BASE
        if current is not None:
            self._step = packet.pts - current.pts if packet.pts > current.pts else self._step
            done.append(_unit(current))
        dts = packet.dts if packet.dts is not None else packet.pts
        # Pictures that came without a time sit one frame interval apart, just before this one.
        interval = self._step or round(1 / (30 * tb))
        for n, frame in enumerate(self._untimed):
            back = (len(self._untimed) - n) * interval
            done.append(AccessUnit(b"".join(frame.parts), packet.pts - back, dts - back, tb, frame.key, frame.arrived))
        self._untimed = []
        key = self._prefix_key or packet.is_keyframe
        self._current = _Frame([*self._prefix, data], key, packet.pts, dts, tb, arrived)
        self._prefix, self._prefix_key = [], False
        return done

    def flush(self) -> list[AccessUnit]:
        """The frame still being built (end of stream)."""
        current, self._current = self._current, None
        return [_unit(current)] if current is not None else []


def _unit(frame: _Frame) -> AccessUnit:
    return AccessUnit(b"".join(frame.parts), frame.pts, frame.dts, frame.time_base, frame.key, frame.arrived)


def access_units(packets: Iterable[Packet], codec: str = "h264") -> Iterator[AccessUnit]:
    assembler = AccessUnitAssembler(codec)
    for packet in packets:
        yield from assembler.push(packet)
    yield from assembler.flush()


class KeyframeJoiner:
    """For decoders: joins a keyframe that came in two packets before it is decoded.

    Decoding the parts one by one yields two pictures with one timestamp, the first of them only
    partly drawn: a half-grey snapshot, an extra frame. Only keyframes are split (at the parameter
    sets), so only keyframes wait, for the next packet, to see whether it continues them: one frame
    interval of delay once per GOP; every other packet passes at once.
    """

    def __init__(self) -> None:
        self._held: tuple[Packet, float] | None = None

    def push(self, packet: Packet, arrived: float) -> list[tuple[Packet, float]]:
        out: list[tuple[Packet, float]] = []
        held = self._held
        if held is not None:
            first, first_arrived = held
            self._held = None
            if packet.pts is not None and packet.pts == first.pts:
                joined = av.Packet(bytes(first) + bytes(packet))
                joined.pts, joined.dts, joined.time_base = first.pts, first.dts, first.time_base
                joined.is_keyframe = True
                packet, arrived = joined, first_arrived  # still held: a third part may follow
            else:
                out.append(held)
        if packet.is_keyframe and packet.pts is not None:
            self._held = (packet, arrived)
        else:
            out.append((packet, arrived))
        return out

    def flush(self) -> list[tuple[Packet, float]]:
        held, self._held = self._held, None
        return [held] if held is not None else []
