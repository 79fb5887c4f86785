"""Decoding: a low-latency decoder for a source, and the first picture of a stream."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import av
import av.error
import av.video

from camctl.errors import CameraTimeout
from camctl.media.hardware import why_not
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


# Hardware decoders first; each is proven by opening it, so a box without the device falls back.
HARDWARE_DECODERS = {"h264": ("h264_cuvid", "h264_v4l2m2m"), "hevc": ("hevc_cuvid", "hevc_v4l2m2m")}


@dataclass(frozen=True)
class DecoderChoice:
    context: av.VideoCodecContext
    name: str  # the FFmpeg decoder that opened
    hardware: bool
    skipped: dict[str, str]  # decoders tried before it, and why they did not open


def open_hardware_decoder(name: str, info: StreamInfo) -> av.VideoCodecContext | str:
    """The opened decoder, or why it would not open (no device, not in this FFmpeg build)."""
    try:
        ctx = cast(av.VideoCodecContext, av.CodecContext.create(name, "r"))
        if info.extradata:
            ctx.extradata = info.extradata
        ctx.open()
    except (av.error.FFmpegError, ValueError) as exc:
        return why_not(name, exc)
    return ctx


def open_best_decoder(info: StreamInfo, hardware: bool = True) -> DecoderChoice:
    """NVDEC (cuvid) or V4L2 M2M when the box has them, else FFmpeg's software decoder."""
    skipped: dict[str, str] = {}
    for name in HARDWARE_DECODERS.get(info.codec, ()) if hardware else ():
        opened = open_hardware_decoder(name, info)
        if isinstance(opened, str):
            skipped[name] = opened
            continue
        return DecoderChoice(opened, name, True, skipped)
    dec = open_decoder(info)
    return DecoderChoice(dec, dec.codec.name, False, skipped)


def picture_size(info: StreamInfo, keyframe: bytes) -> tuple[int, int] | None:
    """(width, height) of a whole keyframe (Annex B), by decoding it: exact for any codec, and
    cheap once per connection. None when it does not decode to a picture."""
    decoder = open_decoder(info)
    try:
        frames = [*decoder.decode(av.Packet(keyframe)), *decoder.decode(None)]
    except av.error.FFmpegError:
        return None
    return (frames[0].width, frames[0].height) if frames else None
