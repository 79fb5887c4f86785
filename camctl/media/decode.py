"""Decoding: a low-latency decoder for a source, and the first picture of a stream."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import cast

import av
import av.error
import av.video

from camctl.errors import CameraTimeout
from camctl.media.source import Packet, StreamInfo


def open_decoder(info: StreamInfo, threads: int = 1) -> av.VideoCodecContext:
    """A software decoder that hands each frame out as soon as its packet is in (no reordering delay)."""
    dec = cast(av.VideoCodecContext, av.CodecContext.create(info.codec, "r"))
    if info.extradata:
        dec.extradata = info.extradata
    dec.flags |= av.codec.context.Flags.low_delay
    dec.thread_count = threads
    dec.thread_type = "SLICE"  # frame threads would hold frames back
    return dec


def first_frame(
    packets: Iterable[Packet], decoder: av.VideoCodecContext, camera_id: str, deadline: float
) -> tuple[av.VideoFrame, list[Packet]]:
    """Decodes from the first keyframe; returns the first picture and the packets read from it on.

    RTSP flags a packet holding only parameter sets as "key", so the picture itself must be a
    keyframe too: a decoder fed from mid-GOP would otherwise hand out a grey, smeared frame."""
    used: list[Packet] = []
    for packet in packets:
        if used or packet.is_keyframe:
            used.append(packet)
            try:
                frames = decoder.decode(packet)
            except av.error.FFmpegError:
                frames = []  # a damaged packet: the next keyframe will do
            for frame in frames:
                if frame.key_frame:
                    return frame, used
        if time.monotonic() > deadline:
            break
    raise CameraTimeout(camera_id, "no decodable keyframe before the deadline")
