"""The shared-memory frame ring: what a reader gets is always one whole picture, the one it asked
for or none; a writer that restarts is followed; the ring is the group's, not the world's."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import numpy as np
import pytest

from camctl.analysis.publisher import RingPublisher, marker_path
from camctl.analysis.reader import RingReader
from camctl.analysis.ring import HEADER_BYTES, SLOT_HEADER_BYTES, RingMissing, RingWriter
from camctl.config import AnalysisConfig

VALUES = (10, 80, 160, 240)  # write n (1-based) fills every byte of its picture with VALUES[n % 4]


def filled(value: int, width: int = 64, height: int = 48, fmt: str = "gray") -> av.VideoFrame:
    frame = av.VideoFrame(width, height, fmt)
    for plane in frame.planes:
        plane.update(bytes([value]) * plane.buffer_size)
    return frame


def test_a_reader_gets_the_latest_picture_or_the_write_it_names_until_it_is_overwritten(tmp_path: Path) -> None:
    writer = RingWriter("camctl-test", slot_bytes=64 * 48, slots=3, folder=tmp_path)
    reader = RingReader("camctl-test", folder=tmp_path)
    assert reader.read() is None, "nothing written yet"
    for n in range(1, 6):
        assert writer.write(100 + n, 1000.0 + n, filled(VALUES[n % 4])) == n
    latest = reader.read()
    assert latest is not None and (latest.write, latest.number, latest.timestamp) == (5, 105, 1005.0)
    assert latest.array.shape == (48, 64) and (latest.array == VALUES[5 % 4]).all()
    third = reader.read(write=3)
    assert third is not None and third.number == 103 and (third.array == VALUES[3 % 4]).all()
    assert reader.read(write=2) is None, "3 slots: write 2 was overwritten by write 5"
    assert reader.read(write=6) is None, "not written yet"
    assert writer.write(1, 0.0, filled(1, 640, 480)) is None, "a picture larger than a slot is refused, not cut"
    reader.close()
    writer.close()
    assert not (tmp_path / "camctl-test").exists()


def test_yuv420p_pictures_read_back_as_one_i420_array(tmp_path: Path) -> None:
    source = av.VideoFrame.from_ndarray(np.random.default_rng(1).integers(0, 255, (72, 96, 3), np.uint8), "rgb24")
    picture = source.reformat(format="yuv420p")
    writer = RingWriter("camctl-yuv", slot_bytes=2 * 96 * 72, folder=tmp_path)
    writer.write(7, 1.5, picture)
    got = RingReader("camctl-yuv", folder=tmp_path).read()
    assert got is not None and got.format == "yuv420p" and got.array.shape == (72 * 3 // 2, 96)
    assert np.array_equal(got.array, picture.to_ndarray()), "the same bytes as PyAV's own I420 array"
    writer.close()


def test_the_ring_is_readable_by_its_group_only(tmp_path: Path) -> None:
    writer = RingWriter("camctl-mode", slot_bytes=16, folder=tmp_path)
    mode = stat.S_IMODE((tmp_path / "camctl-mode").stat().st_mode)
    assert mode == 0o640, oct(mode)
    writer.close()
    with pytest.raises(RingMissing):
        RingReader("camctl-mode", folder=tmp_path)


HAMMER = """
import sys, time
import av
from pathlib import Path
from camctl.analysis.ring import RingWriter
values = (10, 80, 160, 240)
frames = []
for v in values:
    f = av.VideoFrame(1920, 1080, "gray")
    f.planes[0].update(bytes([v]) * f.planes[0].buffer_size)
    frames.append(f)
writer = RingWriter("camctl-hammer", slot_bytes=1920 * 1080, slots=2, folder=Path(sys.argv[1]))
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[2])
stop = Path(sys.argv[1]) / "stop"  # the reader has read enough
n = 0
while time.monotonic() < end and (n % 64 or not stop.exists()):
    n += 1
    writer.write(n, float(n), frames[n % 4])
writer.close(remove=False)
print(n, flush=True)
"""


def test_a_reader_hammered_by_a_writer_in_another_process_never_gets_a_torn_picture(tmp_path: Path) -> None:
    """Two slots, a writer rewriting them as fast as it can (a 1080p picture each time) while this
    process reads: every picture returned is one write's whole, and the number it says."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HAMMER), str(tmp_path), "10"],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        reader = RingReader("camctl-hammer", folder=tmp_path)
        whole = refused = 0
        deadline = time.monotonic() + 9  # enough reads, even on a box busy with other tests
        while time.monotonic() < deadline and whole <= 150:
            got = reader.read(attempts=1)
            if got is None:
                refused += 1  # the writer was in that slot: a torn copy, not handed out
                continue
            values = np.unique(got.array)
            assert values.tolist() == [VALUES[got.number % 4]], f"write {got.number}: bytes of {values.tolist()}"
            whole += 1
        (tmp_path / "stop").touch()
        written = int(proc.communicate(timeout=15)[0].strip())
    finally:
        proc.kill()
        proc.wait()
    assert whole > 100 and written > whole, (whole, written)
    # The test means something only if reads and writes overlapped: some copies were refused.
    assert refused > 0, f"{whole} whole reads and none refused: the writer never caught a reader"


def test_the_camera_side_writes_only_while_a_reader_marks_it_and_converts_once_for_all(tmp_path: Path) -> None:
    publisher = RingPublisher("cam_1", "node-a", AnalysisConfig(width=320, format="rgb24"), folder=tmp_path)
    picture = filled(90, 1280, 720, "yuv420p")
    assert publisher.offer(1, 1.0, picture) is None, "nobody reads: nothing copied"
    assert not (tmp_path / publisher.name).exists()
    os.utime(marker_path(tmp_path / publisher.name))  # a reader's mark (camctl.client does it each second)
    publisher._next_check = 0.0  # look at the marker now rather than within the second
    assert publisher.offer(2, 2.0, picture) == 1
    got = RingReader(publisher.name, folder=tmp_path).read()
    assert got is not None and got.format == "rgb24" and got.array.shape == (180, 320, 3), "scaled once, here"
    assert stat.S_IMODE(marker_path(tmp_path / publisher.name).stat().st_mode) == 0o660, "the group marks it"
    publisher.close()
    assert list(tmp_path.iterdir()) == []


READER = """
import sys
from pathlib import Path
from camctl.analysis.reader import RingReader
reader = RingReader("camctl-crash", folder=Path(sys.argv[1]))
print("reading", flush=True)
while True:
    reader.read()
"""


def test_a_reader_killed_mid_read_leaves_nothing_behind(tmp_path: Path) -> None:
    writer = RingWriter("camctl-crash", slot_bytes=1920 * 1080, slots=2, folder=tmp_path)
    frames = [filled(v, 1920, 1080) for v in VALUES]
    writer.write(1, 1.0, frames[1])
    proc = subprocess.Popen([sys.executable, "-c", READER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "reading"
        for n in range(2, 200):  # the reader copies while these are written; then it dies mid-loop
            writer.write(n, float(n), frames[n % 4])
        proc.kill()
        proc.wait(10)
    finally:
        proc.kill()
        proc.wait()
    began = time.monotonic()
    assert writer.write(200, 200.0, frames[0]) == 200 and time.monotonic() - began < 0.5, "no lock to wait for"
    got = RingReader("camctl-crash", folder=tmp_path).read()
    assert got is not None and got.number == 200 and (got.array == VALUES[0]).all()
    writer.close()


def test_a_picture_whose_counters_agree_but_whose_bytes_changed_is_refused(tmp_path: Path) -> None:
    """What a weakly ordered CPU could show a reader: the slot's counters written, part of the
    picture not yet (or of another write). The sampled checksum catches it."""
    writer = RingWriter("camctl-crc", slot_bytes=64 * 48, slots=2, folder=tmp_path)
    writer.write(1, 1.0, filled(VALUES[1]))
    reader = RingReader("camctl-crc", folder=tmp_path)
    assert reader.read(write=1) is not None
    with (tmp_path / "camctl-crc").open("r+b") as f:  # the slot's first picture byte, counters untouched
        f.seek(HEADER_BYTES + SLOT_HEADER_BYTES)
        f.write(bytes([VALUES[2]]))
    assert reader.read(write=1) is None and reader.read() is None
    writer.close()
