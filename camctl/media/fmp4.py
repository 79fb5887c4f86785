"""Fragmented MP4 for live viewing: one init segment per connection, then one fragment per frame.

The init segment (ftyp + moov, with the avcC/hvcC codec header) is made by FFmpeg's own MP4 muxer
from the connection's first keyframe, so the codec header is built by the same code as the
recordings'. Every frame after that becomes a moof + mdat here, at once: FFmpeg's muxer writes a
fragment only when the next frame arrives (it needs that frame's time for the duration), which would
put a frame interval between the camera and the screen. Browsers' Media Source Extensions, ffplay
and VLC play these fragments as they come.
"""

from __future__ import annotations

import io
import struct
from fractions import Fraction

import av

TIMESCALE = 90_000  # ticks per second on the live timeline (RTP's video clock)
TRACK_ID = 1
_KEY_FLAGS = 0x02000000  # sample_depends_on = 2: a sync sample
_DELTA_FLAGS = 0x01010000  # sample_depends_on = 1, sample_is_non_sync_sample = 1


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def length_prefixed(annex_b: bytes) -> bytes:
    """An Annex B access unit (start codes, as cameras send it) as MP4 wants it: each NAL unit
    preceded by its 4-byte length. One copy of the picture (this runs for every frame)."""
    marks = []  # (where the start code begins, where the NAL unit begins)
    at = annex_b.find(b"\x00\x00\x01")
    while at >= 0:
        marks.append((at - 1 if at > 0 and annex_b[at - 1] == 0 else at, at + 3))
        at = annex_b.find(b"\x00\x00\x01", at + 3)
    view, out = memoryview(annex_b), bytearray()
    for i, (_code, begin) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else len(annex_b)
        if end > begin:
            out += struct.pack(">I", end - begin)
            out += view[begin:end]
    return bytes(out)


def fragment(sequence: int, dts: int, duration: int, offset: int, key: bool, sample: bytes) -> bytes:
    """moof + mdat holding one frame. dts, duration and offset (pts - dts) in TIMESCALE ticks;
    sample: length-prefixed NAL units."""
    trun_flags = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800  # offset, duration, size, flags, cto
    fields = struct.pack(">IiIIIi", 1, 0, duration, len(sample), _KEY_FLAGS if key else _DELTA_FLAGS, offset)
    traf = box(
        b"traf",
        full_box(b"tfhd", 0, 0x020000, struct.pack(">I", TRACK_ID)),  # default-base-is-moof
        full_box(b"tfdt", 1, 0, struct.pack(">Q", dts)),
        full_box(b"trun", 1, trun_flags, fields),
    )
    moof = box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), traf)
    # The data offset counts from the start of moof to the first sample byte (inside mdat).
    at = moof.index(fields) + 4
    moof = moof[:at] + struct.pack(">i", len(moof) + 8) + moof[at + 4 :]
    return moof + struct.pack(">I", 8 + len(sample)) + b"mdat" + sample


def init_segment(codec: str, width: int, height: int, keyframe: bytes) -> bytes:
    """ftyp + moov for one video track, built by FFmpeg from a keyframe (Annex B, with its
    parameter sets)."""
    out = io.BytesIO()
    options = {"movflags": "empty_moov+default_base_moof+frag_keyframe+delay_moov",
               "video_track_timescale": str(TIMESCALE)}  # fmt: skip
    with av.open(out, "w", format="mp4", options=options) as container:
        stream = container.add_mux_stream(codec, width=width, height=height)
        stream.time_base = Fraction(1, TIMESCALE)
        packet = av.Packet(keyframe)
        packet.pts = packet.dts = 0
        packet.duration = TIMESCALE // 30
        packet.time_base = stream.time_base
        packet.is_keyframe = True
        packet.stream = stream
        container.mux(packet)
    data = out.getvalue()
    end = 0
    for kind, start, size in top_level_boxes(data):
        if kind not in (b"ftyp", b"moov"):
            break
        end = start + size
    if end == 0:
        raise ValueError("the MP4 muxer wrote no header")
    init = data[:end]
    entry = init.find(b"hev1", init.find(b"stsd"))
    if codec == "hevc" and entry > 0:
        # The sample entry browsers accept for H.265 (Safari only takes hvc1); the header is the same.
        init = init[:entry] + b"hvc1" + init[entry + 4 :]
    return init


def top_level_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of each whole top-level box."""
    boxes, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        if size < 8 or at + size > len(data):
            break
        boxes.append((kind, at, size))
        at += size
    return boxes


def codec_string(init: bytes) -> str:
    """The RFC 6381 codec of an init segment, as MediaSource.isTypeSupported wants it:
    avc1.64001f, hvc1.1.6.L93.B0."""
    for entry in (b"avc1", b"avc3"):
        at = init.find(b"avcC")
        if init.find(entry) >= 0 and at >= 0:
            profile, compat, level = init[at + 5], init[at + 6], init[at + 7]
            return f"{entry.decode()}.{profile:02x}{compat:02x}{level:02x}"
    at = init.find(b"hvcC")
    if at >= 0:
        entry = b"hvc1" if init.find(b"hvc1") >= 0 else b"hev1"
        c = init[at + 4 : at + 4 + 13]
        space = "" if c[1] >> 6 == 0 else "ABC"[(c[1] >> 6) - 1]
        tier = "H" if c[1] & 0x20 else "L"
        compat = int(f"{int.from_bytes(c[2:6], 'big'):032b}"[::-1], 2)  # bit-reversed, per ISO/IEC 14496-15
        constraints = list(c[6:12])
        while constraints and constraints[-1] == 0:
            constraints.pop()
        tail = "".join(f".{b:X}" for b in constraints)
        return f"{entry.decode()}.{space}{c[1] & 0x1F}.{compat:X}.{tier}{c[12]}{tail}"
    raise ValueError("no avcC or hvcC in the init segment")
