"""The bitrate controller (storage budget, load), the encoder that applies a change at a keyframe,
and the grid's layout and targets."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from av.video.frame import PictureType

from camctl.encoding.bitrate import BitrateController, DiskUsage, StorageBudget
from camctl.encoding.encoder import KeyframeEncoder
from camctl.errors import UsageError
from camctl.rules.layout import Layout, Tile, fit
from camctl.rules.target import Target

DAY = 86400.0
GB = 10**9


class ShrinkingDisk:
    """An injectable free-space probe: the test decides what the disk holds."""

    def __init__(self, free: int, recorded: int = 0) -> None:
        self.usage = DiskUsage(free, recorded)

    def __call__(self, _root: Path) -> DiskUsage:
        return self.usage


def test_the_storage_budget_gives_the_bitrate_that_keeps_24h(tmp_path: Path) -> None:
    disk = ShrinkingDisk(free=100 * GB, recorded=50 * GB)
    budget = StorageBudget(tmp_path, DAY, streams=4, reserve=10 * GB, probe=disk, every=0)
    assert budget.bitrate() == int(140 * GB * 8 / DAY / 4)  # free + recycled - reserve, shared by 4


def test_the_controller_lowers_the_bitrate_when_the_storage_budget_shrinks(tmp_path: Path) -> None:
    disk = ShrinkingDisk(free=500 * GB)
    budget = StorageBudget(tmp_path, DAY, streams=4, probe=disk, every=0)
    controller = BitrateController(2_000_000, 500_000, 2_000_000, budget)
    assert controller.update() is None and controller.bitrate == 2_000_000  # plenty of room
    disk.usage = DiskUsage(free=60 * GB, recorded=0)  # 60 GB for 4 cameras x 24 h: ~1.39 Mbps each
    change = controller.update()
    assert change is not None and change.reason == "storage budget"
    assert change.new == int(60 * GB * 8 / DAY / 4) < 2_000_000
    disk.usage = DiskUsage(free=1 * GB, recorded=0)  # nearly full: never below the floor
    change = controller.update()
    assert change is not None and controller.bitrate == 500_000
    disk.usage = DiskUsage(free=500 * GB, recorded=0)
    change = controller.update()  # space came back
    assert change is not None and change.reason == "recovered" and controller.bitrate == 2_000_000


def test_a_bitrate_change_lands_at_a_keyframe_and_takes_effect() -> None:
    encoder = KeyframeEncoder("libx264", 320, 240, 30, 800_000, gop=30)
    sizes: list[tuple[int, int, bool]] = []
    with av.open("testsrc2=size=320x240:rate=30", format="lavfi") as source:
        for n, frame in enumerate(source.decode(video=0)):
            if n == 180:
                break
            if n == 75:
                encoder.set_bitrate(200_000)  # asked mid-GOP: applies at frame 90
            picture = frame.reformat(format="yuv420p")
            picture.pts, picture.pict_type = n, PictureType.NONE
            sizes += [(n, p.size, p.is_keyframe) for p in encoder.encode(picture)]
    sizes += [(180, p.size, p.is_keyframe) for p in encoder.flush()]
    keyframes = [n for n, _size, key in sizes if key]
    assert keyframes[:6] == [0, 30, 60, 90, 120, 150]
    before = sum(size for n, size, _ in sizes if 30 <= n < 90) * 8 / 2
    after = sum(size for n, size, _ in sizes if 90 <= n < 150) * 8 / 2
    assert encoder.bitrate == 200_000
    assert after < before * 0.5, f"{before:.0f} -> {after:.0f} bps"


def test_grid_layouts() -> None:
    shapes = {
        n: (Layout.for_cameras(n, 1920, 1080).columns, Layout.for_cameras(n, 1920, 1080).rows)
        for n in (1, 2, 3, 4, 5, 9)
    }
    assert shapes == {1: (1, 1), 2: (2, 1), 3: (2, 2), 4: (2, 2), 5: (3, 3), 9: (3, 3)}
    grid = Layout.for_cameras(4, 1920, 1080)
    assert grid.tile(3) == Tile(960, 540, 960, 540)
    assert Layout.for_cameras(9, 1920, 1080).tile(8) == Tile(1280, 720, 640, 360)
    with pytest.raises(UsageError, match="1 to 9 cameras"):
        Layout.for_cameras(10, 1920, 1080)
    with pytest.raises(UsageError, match="even"):
        Layout.for_cameras(4, 1921, 1080)
    # a 4:3 camera in a 16:9 tile keeps its shape, centred, with even offsets
    assert fit(640, 480, Tile(960, 540, 960, 540)) == Tile(1080, 540, 720, 540)


def test_grid_targets() -> None:
    assert Target.parse("out/grid.mp4").format == "mp4"
    assert Target.parse("grid.MKV").format == "matroska"
    rtsp = Target.parse("rtsp://admin:secret@127.0.0.1:8554/grid")
    assert rtsp.format == "rtsp" and "secret" not in rtsp.shown and rtsp.options["rtsp_transport"] == "tcp"
    hls = Target.parse("/srv/hls/")
    assert hls.format == "hls" and hls.url == "/srv/hls/index.m3u8"
    assert Target.parse("/srv/live.m3u8").url == "/srv/live.m3u8"
    with pytest.raises(UsageError, match=r"\.mp4 or \.mkv"):
        Target.parse("grid.avi")
