"""Whole frames (access units) from the packets a camera delivers.

FFmpeg's RTSP demuxer can hand one frame over in several packets: x264 cameras send an access
unit delimiter, then the SPS/PPS and the slices, and the parser splits at the parameter sets, so a
keyframe can arrive as two packets with the same timestamp. Right after connecting, packets may
come without any timestamp: some hold only parameter sets (they belong to the next frame), some a
whole picture (a frame of its own, whose time is then inferred from the next one). A recording
needs exactly one sample per frame, so this module puts the parts together.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av

from camctl.media.source import Packet

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
    return bool(_slice_units(data, codec))


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

    def __init__(self, codec: str = "h264", time_base: Fraction | None = None) -> None:
        """time_base: the stream's, when known (PyAV builds a new Fraction each time a packet's
        is read, and this runs for every packet)."""
        self.codec = codec
        self.time_base = time_base
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
        tb = self.time_base or packet.time_base or DEFAULT_TIME_BASE
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


@dataclass(slots=True)
class Picture:
    """One whole coded picture (access unit), as soon as it is known to be whole."""

    data: bytes  # Annex B
    key: bool
    pts: int | None  # None: the camera gave none (the first picture of some)
    dts: int | None
    time_base: Fraction | None
    arrived: float
    slices: int = 0

    def join(self, part: Picture) -> None:
        """The next part of the same picture (its time, when the first part came without one)."""
        self.data += part.data
        self.slices += part.slices
        self.key = self.key or part.key
        if self.pts is None:
            self.pts, self.dts, self.time_base = part.pts, part.dts, part.time_base


class PictureJoiner:
    """Whole pictures for live use (viewers, restream), without the assembler's frame of delay.

    Parameter sets that come alone are put before the picture that follows. FFmpeg's parser also
    hands x264 keyframes over in parts (split at the parameter sets repeated before each slice), the
    last part only when the next frame starts; a keyframe with fewer slices than the latest whole
    picture is held until the rest has come (the next part's first slice is not a picture's first).
    Every other picture passes at once.
    """

    def __init__(self, codec: str = "h264") -> None:
        self.codec = codec
        self._held = b""  # parameter sets that came alone
        self._held_key = False
        self._pending: Picture | None = None  # a keyframe whose other slices are still to come
        self._slices = 0  # slices of the latest whole non-key picture

    def push(self, packet: Packet, arrived: float) -> list[Picture]:
        data = self._held + bytes(packet)
        key = packet.is_keyframe or self._held_key
        if not has_picture(data, self.codec):
            self._held, self._held_key = data, key
            return []
        self._held, self._held_key = b"", False
        picture = Picture(data, key, packet.pts, packet.dts, packet.time_base, arrived, slice_count(data, self.codec))
        out: list[Picture] = []
        pending, self._pending = self._pending, None
        if pending is not None:
            if continues_picture(data, self.codec):
                pending.join(picture)
                picture = pending
            else:
                out.append(pending)
        if not picture.key:
            self._slices = picture.slices  # what a whole picture has (x264's sliced threads: one per thread)
        if picture.key and (self._slices == 0 or picture.slices < self._slices):
            self._pending = picture
        else:
            out.append(picture)
        return out


def _slice_units(data: bytes, codec: str) -> list[bytes]:
    """The first bytes (NAL header and the slice header's start) of each coded slice: enough to
    tell what it is, without copying the picture (this runs for every frame)."""
    heads = []
    at = data.find(b"\x00\x00\x01")
    while at >= 0:
        head = data[at + 3 : at + 6]
        if codec == "hevc":
            if len(head) > 2 and (head[0] >> 1) & 0x3F < 32:
                heads.append(head)
        elif len(head) > 1 and 1 <= head[0] & 0x1F <= 5:
            heads.append(head)
        at = data.find(b"\x00\x00\x01", at + 3)
    return heads


def slice_count(data: bytes, codec: str) -> int:
    return len(_slice_units(data, codec))


def continues_picture(data: bytes, codec: str) -> bool:
    """Whether Annex B data continues the picture before it: its first slice is not the picture's
    first (H.264: first_mb_in_slice != 0; H.265: first_slice_segment_in_pic_flag == 0), read from
    the first bit of the slice header."""
    units = _slice_units(data, codec)
    if not units:
        return False
    return not units[0][2 if codec == "hevc" else 1] & 0x80
