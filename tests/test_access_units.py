"""Frames from packets: the packet patterns seen from real RTSP demuxing (x264 and x265 cameras)."""

from __future__ import annotations

from fractions import Fraction

import av

from camctl.media.access_units import KeyframeJoiner, access_units, has_picture

SPS, PPS, AUD = b"\0\0\0\x01\x67sps", b"\0\0\0\x01\x68pps", b"\0\0\0\x01\x09\x10"
IDR, P_SLICE = b"\0\0\0\x01\x65idr", b"\0\0\0\x01\x41p"
HEVC_VPS, HEVC_IDR, HEVC_P = b"\0\0\0\x01\x40\x01vps", b"\0\0\0\x01\x28\x01idr", b"\0\0\0\x01\x02\x01p"


def packet(data: bytes, pts: int | None, key: bool = False) -> av.Packet:
    p = av.Packet(data)
    p.pts = p.dts = pts
    p.time_base = Fraction(1, 90000)
    p.is_keyframe = key
    return p


def test_parts_with_one_timestamp_are_one_frame_and_headers_join_the_next() -> None:
    # x264 over RTSP: headers without a time, then a keyframe in two packets sharing a pts.
    units = list(
        access_units(
            [
                packet(AUD + SPS + PPS, None, key=True),
                packet(AUD, 0, key=True),
                packet(SPS + PPS + IDR, 0, key=True),
                packet(AUD + P_SLICE, 3000),
                packet(AUD + P_SLICE, 6000),
            ]
        )
    )
    assert [(u.pts, u.key) for u in units] == [(0, True), (3000, False), (6000, False)]
    assert units[0].data == AUD + SPS + PPS + AUD + SPS + PPS + IDR


def test_a_whole_picture_without_timestamp_is_its_own_frame_just_before_the_next() -> None:
    # x265 over RTSP: the first keyframe arrives without a time, then timed P frames.
    units = list(
        access_units([packet(HEVC_VPS + HEVC_IDR, None, key=True), packet(HEVC_P, 3000), packet(HEVC_P, 6000)], "hevc")
    )
    assert [(u.pts, u.key) for u in units] == [(0, True), (3000, False), (6000, False)]
    assert units[0].data == HEVC_VPS + HEVC_IDR


def test_has_picture_tells_slices_from_headers() -> None:
    assert has_picture(SPS + PPS + IDR, "h264") and not has_picture(AUD + SPS + PPS, "h264")
    assert has_picture(HEVC_P, "hevc") and not has_picture(HEVC_VPS, "hevc")


def test_a_split_keyframe_is_joined_before_decoding_and_other_packets_pass_at_once() -> None:
    joiner = KeyframeJoiner()
    out: list[tuple[bytes, int | None, float]] = []

    def push(p: av.Packet, arrived: float) -> None:
        out.extend((bytes(q), q.pts, when) for q, when in joiner.push(p, arrived))

    push(packet(AUD, 0, key=True), 1.0)
    assert out == [], "a keyframe waits to see whether the next packet continues it"
    push(packet(SPS + PPS + IDR, 0, key=True), 1.01)
    push(packet(AUD + P_SLICE, 3000), 1.04)
    assert out == [(AUD + SPS + PPS + IDR, 0, 1.0), (AUD + P_SLICE, 3000, 1.04)]
    push(packet(AUD + P_SLICE, 6000), 1.07)
    assert out[-1] == (AUD + P_SLICE, 6000, 1.07), "a P-frame passes at once"
    push(packet(AUD + SPS + PPS + IDR, 9000, key=True), 1.1)  # a whole keyframe: out with the next packet
    push(packet(AUD + P_SLICE, 12000), 1.13)
    assert [pts for _d, pts, _w in out[-2:]] == [9000, 12000]
    push(packet(AUD + SPS + PPS + IDR, 15000, key=True), 1.16)
    assert [q.pts for q, _when in joiner.flush()] == [15000]
