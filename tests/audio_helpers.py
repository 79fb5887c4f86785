"""Audio checks on recordings of `scripts/fake-cameras --audio --stamp` cameras.

The fake camera's microphone ticks at the start of every wall-clock second and each video frame
carries its capture time in its bottom rows: in a file, the tick's position and the stamped frames'
positions tell how far audio and video are apart when played.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import av

from tests.harness import read_stamp

TICK_THRESHOLD = 0.2  # of full scale: the tick is at 0.5, AAC's noise floor far below 0.05
QUIET_BEFORE = 0.3  # seconds of quiet before an onset


def tick_onsets(path: Path) -> list[float]:
    """Seconds from the file's start where a tick begins."""
    onsets: list[float] = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        quiet_since = 0.0
        for frame in container.decode(stream):
            if frame.pts is None or frame.time_base is None:
                continue
            start = float(frame.pts * frame.time_base)
            samples = frame.to_ndarray().reshape(-1)  # fltp mono: float samples
            loud = abs(samples) > TICK_THRESHOLD
            for i in loud.nonzero()[0]:
                t = start + int(i) / rate
                if t - quiet_since >= QUIET_BEFORE:
                    onsets.append(t)
                quiet_since = t
    return onsets


def video_capture_offset(path: Path) -> float:
    """Median of (capture time - position in the file) over the stamped video frames."""
    offsets: list[float] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.pts is None or frame.time_base is None:
                continue
            plane = frame.planes[0]
            _number, captured = read_stamp(bytes(plane), frame.width, frame.height, plane.line_size)
            offsets.append(captured - float(frame.pts * frame.time_base))
    return statistics.median(offsets)


def av_sync_error(path: Path) -> float:
    """How much later (s) the audio plays than the video of the same moment (negative: earlier)."""
    video = video_capture_offset(path)
    errors = []
    for onset in tick_onsets(path):
        moment = onset + video  # the wall-clock time the video shows at the tick's position
        second = round(moment)  # the tick was made at a whole wall-clock second
        errors.append(moment - second)
    if not errors:
        raise AssertionError(f"{path.name}: no tick found in the audio")
    return statistics.median(errors)


def audio_packets(path: Path) -> list[tuple[float, float]]:
    """(start, duration) in seconds of each audio packet of a file."""
    out = []
    with av.open(str(path)) as container:
        stream: Any = container.streams.audio[0]
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            out.append((float(packet.pts * packet.time_base), float((packet.duration or 0) * packet.time_base)))
    return out


def streams_of(path: Path) -> dict[str, str]:
    with av.open(str(path)) as container:
        return {s.type: s.codec_context.name for s in container.streams if s.type in ("video", "audio")}
