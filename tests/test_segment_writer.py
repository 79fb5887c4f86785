"""A segment's frames last until the next one: no hole between frames, nor between segments."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from camctl.media.access_units import AccessUnit
from camctl.recording.segment_writer import SegmentWriter


def _frames(count: int, gop: int = 250) -> list[AccessUnit]:
    """Real H.264 access units (Annex B, 64x64, a keyframe every `gop` frames, with its headers)."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width = codec.height = 64
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"bframes": "0", "tune": "zerolatency", "g": str(gop), "keyint_min": str(gop)}
    units: list[AccessUnit] = []
    picture = np.zeros((64, 64, 3), np.uint8)
    for n in range(count):
        picture[:, :, 0] = n * 20
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = n
        units += [AccessUnit(bytes(p), n, n, Fraction(1, 25), p.is_keyframe) for p in codec.encode(frame)]
    units += [AccessUnit(bytes(p), 0, 0, Fraction(1, 25), p.is_keyframe) for p in codec.encode(None)]
    return units


def _durations(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(p.duration * p.time_base) for p in container.demux(video=0) if p.size and p.duration is not None]


def test_the_last_frame_lasts_until_the_next_segment_starts_in_the_file_and_the_journal(tmp_path: Path) -> None:
    """A camera whose frames come irregularly (a loop seam, a burst): the segment ends where the
    next keyframe starts the next segment, not one nominal interval after its last frame."""
    start = 1_800_000_000.0
    times = [0.0, 0.04, 0.08, 0.2]
    writer = SegmentWriter(tmp_path, "cam_1", "h264", 64, 64, start, None)
    for unit, t in zip(_frames(len(times)), times, strict=True):
        writer.write(unit, start + t, start + t, 0.04)
    writer.end_video(start + 0.33)
    info = writer.close()
    assert info.frames == 4
    assert round(info.end - start, 6) == 0.33
    durations = _durations(info.path)
    assert [round(d, 3) for d in durations] == [0.04, 0.04, 0.12, 0.13]


def test_a_segment_closed_without_a_next_frame_gives_its_last_frame_the_nominal_interval(tmp_path: Path) -> None:
    start = 1_800_000_000.0
    writer = SegmentWriter(tmp_path, "cam_1", "h264", 64, 64, start, None)
    for n, unit in enumerate(_frames(3)):
        writer.write(unit, start + n * 0.04, start + n * 0.04, 0.04)
    info = writer.close()
    assert info.frames == 3
    assert round(info.end - start, 6) == 0.12
    assert [round(d, 3) for d in _durations(info.path)] == [0.04, 0.04, 0.04]


def test_a_clip_starting_after_a_segments_last_frame_takes_that_gop_and_the_next_segment(tmp_path: Path) -> None:
    """The GOP before `start` is in one segment, the clip's first picture in the next: its packets
    wait while the next file is read. Before: they pointed at a closed file's stream (a segfault)."""
    from camctl.recording.clip import export_clip
    from camctl.recording.footage import FootageIndex
    from camctl.recording.journal import Journal

    start = 1_800_000_000.0
    units = _frames(10, gop=5)  # a segment starts with a keyframe
    for first, part in ((start, units[:5]), (start + 0.2, units[5:])):
        writer = SegmentWriter(tmp_path, "cam_1", "h264", 64, 64, first, None)
        for n, unit in enumerate(part):
            writer.write(unit, first + n * 0.04, first + n * 0.04, 0.04)
        writer.end_video(first + 0.2)
        Journal(tmp_path, "cam_1").segment(writer.close())
    index = FootageIndex(tmp_path, "cam_1").window()
    assert len(index.segments) == 2
    clip = export_clip(index, start + 0.199, start + 0.3, tmp_path / "clip.mp4")
    assert clip.frames == 5 + 3, "from the keyframe of the first segment, on into the second"
    assert [round(d, 3) for d in _durations(clip.path)] == [0.04] * 8
