"""A segment torn by a failed write is cut back to its last whole fragment, or removed."""

from __future__ import annotations

import random
from pathlib import Path

import av
import pytest

from camctl.recording.repair import playable_end, repair_segment
from camctl.rules.mp4 import MOVFLAGS


def fragmented_mp4(path: Path, seconds: int = 3, fps: int = 10) -> Path:
    with av.open(str(path), "w", format="mp4", options={"movflags": MOVFLAGS, "frag_duration": "500000"}) as out:
        stream = out.add_stream("libx264", rate=fps, options={"g": str(fps)})
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for n in range(seconds * fps):
            frame = av.VideoFrame(160, 120, "yuv420p")
            for plane in frame.planes:  # noise: fragments of some size, like a camera's
                plane.update(random.Random(n).randbytes(plane.buffer_size))  # noqa: S311 - test noise
            frame.pts = n
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        container.streams.video[0].codec_context.options = {"err_detect": "explode"}
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.parametrize("keep", [0.35, 0.5, 0.8, 0.97])
def test_a_torn_segment_is_cut_back_to_what_plays(tmp_path: Path, keep: float) -> None:
    path = fragmented_mp4(tmp_path / "seg.mp4")
    whole = decoded_frames(path)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(int(size * keep))  # a write failed here
    assert repair_segment(path)
    assert path.stat().st_size == playable_end(path) < size
    assert 0 < decoded_frames(path) < whole


def test_a_segment_torn_before_its_first_fragment_is_removed(tmp_path: Path) -> None:
    path = fragmented_mp4(tmp_path / "seg.mp4")
    with path.open("r+b") as f:
        f.truncate(600)
    assert not repair_segment(path)
    assert not path.exists()


def test_a_whole_segment_is_left_alone(tmp_path: Path) -> None:
    path = fragmented_mp4(tmp_path / "seg.mp4")
    size = path.stat().st_size
    assert repair_segment(path)
    assert path.stat().st_size == size
