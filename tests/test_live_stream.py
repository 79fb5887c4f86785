"""The live stream's parts: fragmented MP4 made here from a camera's packets, and the per-viewer
queues that skip a slow viewer to the next keyframe (no browser; see test_live_view.py for that)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import pytest

from camctl.config import CameraConfig, stream_view
from camctl.media.fmp4 import codec_string, fragment, init_segment, length_prefixed, top_level_boxes
from camctl.media.live_stream import Fragment, Header, LiveStream, Offline
from camctl.media.session import CameraSession
from camctl.web.live import MAX_LAG, MAX_SKIPS, LiveHub, Viewer, ViewerDropped, ViewerLimit
from tests.harness import FakeCameras


def _encoded(codec: str, frames: int = 20, size: tuple[int, int] = (320, 240)) -> list[tuple[bytes, bool]]:
    """Annex B access units from PyAV's own encoder, as a camera would send them."""
    encoder = av.CodecContext.create("libx264" if codec == "h264" else "libx265", "w")
    encoder.width, encoder.height, encoder.pix_fmt = *size, "yuv420p"
    encoder.time_base = Fraction(1, 15)
    encoder.options = {"g": "10", "bf": "0"} | ({"x265-params": "log-level=none:repeat-headers=1"} if codec != "h264"
                                               else {"x264-params": "repeat-headers=1"})  # fmt: skip
    out = []
    for n in range(frames):
        frame = av.VideoFrame(*size, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(n * 7) % 255]) * plane.buffer_size)
        frame.pts = n
        out += [(bytes(p), p.is_keyframe) for p in encoder.encode(frame)]
    out += [(bytes(p), p.is_keyframe) for p in encoder.encode(None)]
    return out


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_init_and_one_fragment_per_frame_decode_as_the_camera_sent_them(tmp_path: Path, codec: str) -> None:
    units = _encoded(codec)
    init = init_segment(codec, 320, 240, units[0][0])
    assert [kind for kind, _at, _size in top_level_boxes(init)] == [b"ftyp", b"moov"]
    name = codec_string(init)
    assert name.startswith("avc1.") if codec == "h264" else name.startswith("hvc1.")
    fragments = [fragment(n + 1, n * 6000, 6000, 0, key, length_prefixed(data)) for n, (data, key) in enumerate(units)]
    for frag in fragments:
        assert [kind for kind, _at, _size in top_level_boxes(frag)] == [b"moof", b"mdat"]
    path = tmp_path / "live.mp4"
    path.write_bytes(init + b"".join(fragments))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [(frame.width, frame.height, frame.pts) for frame in container.decode(stream)]
    assert len(decoded) == len(units), "every frame decodes, none lost or doubled"
    assert all(w == 320 and h == 240 for w, h, _ in decoded)
    assert [pts for _w, _h, pts in decoded] == [n * 6000 for n in range(len(units))], "times as given"


def test_codec_strings_follow_rfc_6381() -> None:
    avcc = b"\x00\x00\x00\x10avc1" + b"\x00\x00\x00\x0eavcC\x01\x64\x00\x1f\xff\xe1"
    assert codec_string(avcc) == "avc1.64001f"
    # hvcC of an x265 Main profile, level 3.1 stream: profile space 0, tier Main, compat 0x60000000.
    hvcc = b"hvc1" + b"hvcC" + bytes([1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93])
    assert codec_string(hvcc) == "hvc1.1.6.L93.90"


def test_a_data_offset_points_at_the_sample() -> None:
    sample = length_prefixed(b"\x00\x00\x00\x01\x65" + b"x" * 100)
    frag = fragment(7, 90000, 3000, 0, True, sample)
    trun = frag.index(b"trun")
    offset = struct.unpack_from(">i", frag, trun + 4 + 4 + 4)[0]  # after flags and sample count
    assert frag[offset : offset + len(sample)] == sample


def _fragment(sequence: int, key: bool, size: int = 1000) -> Fragment:
    return Fragment(b"x" * size, key, sequence, 0.0)


async def _queued(viewer: Viewer) -> list[int]:
    return [e.sequence for e in await asyncio.wait_for(viewer.events(), 1.0) if isinstance(e, Fragment)]


def test_a_slow_viewer_skips_to_the_next_keyframe_and_is_dropped_when_it_keeps_falling_behind() -> None:
    async def run() -> None:
        viewer = Viewer(budget=5000)
        for n in range(1, 5):
            viewer.offer(_fragment(n, key=n == 1))
        assert await _queued(viewer) == [1, 2, 3, 4], "within budget: everything, in order"
        for n in range(5, 12):  # 7 KB into a 5 KB budget: the queue goes, and delta frames wait
            viewer.offer(_fragment(n, key=n == 5))
        viewer.offer(_fragment(12, key=True))
        viewer.offer(_fragment(13, key=False))
        assert await _queued(viewer) == [12, 13], "it starts again at the next keyframe"
        assert viewer.skipped == 1
        viewer.offer(_fragment(13, key=False))
        assert not viewer._queue, "a fragment already queued (a join racing the camera) is not sent twice"
        sequence = 14
        for _ in range(MAX_SKIPS):
            for _ in range(6):
                viewer.offer(_fragment(sequence, key=True))
                sequence += 1
        with pytest.raises(ViewerDropped, match="too slow"):
            await asyncio.wait_for(viewer.events(), 1.0)

    asyncio.run(run())


def test_viewers_share_one_subscription_and_the_cap_answers(fake_cameras: Callable[..., FakeCameras]) -> None:
    """A real camera session: a viewer who joins later gets the header and the GOP so far at once."""
    cams = fake_cameras(count=1, size="320x240", fps=15, gop=15, bitrate=300)
    camera = stream_view(CameraConfig(id="cam_1", url=cams.url()), "main")
    stream = LiveStream(camera)
    session = CameraSession(camera, [stream])

    async def run() -> None:
        hub = LiveHub(stream, asyncio.get_running_loop(), max_viewers=2)
        first = hub.join()
        session.start()
        events: list[object] = []
        while sum(isinstance(e, Fragment) for e in events) < 20:
            events += await asyncio.wait_for(first.events(), 10.0)
        assert isinstance(events[0], Offline) and isinstance(events[1], Header), "why no picture, then the stream"
        assert isinstance(events[2], Fragment) and events[2].key, "the stream starts at a keyframe"
        second = hub.join()
        late = await asyncio.wait_for(second.events(), 1.0)
        assert isinstance(late[0], Header) and isinstance(late[1], Fragment) and late[1].key, "a picture at once"
        with pytest.raises(ViewerLimit):
            hub.join()
        assert stream.viewers == 1, "one subscription for all viewers"
        hub.leave(first)
        hub.leave(second)
        assert stream.viewers == 0, "nobody watching: nothing handed to the loop"

    try:
        asyncio.run(run())
    finally:
        session.stop()
        assert session.join(5.0)


def test_a_viewer_more_than_max_lag_behind_the_camera_skips_even_within_its_byte_budget() -> None:
    async def run() -> None:
        viewer = Viewer()
        for n, at in enumerate((10.0, 10.5, 11.0, 10.0 + MAX_LAG + 0.1), start=1):
            viewer.offer(Fragment(b"x" * 100, n == 1, n, at))
        assert viewer.skipped == 1, "the fourth frame came MAX_LAG after the first still queued"
        viewer.offer(Fragment(b"x" * 100, True, 5, 12.5))
        assert await _queued(viewer) == [5]

    asyncio.run(run())


def test_live_mp4_waits_for_a_camera_that_is_still_connecting_instead_of_refusing() -> None:
    from camctl.web.live import _until_header

    async def run() -> None:
        viewer = Viewer()
        viewer.offer(Offline("waiting for a keyframe"))
        asyncio.get_running_loop().call_later(0.05, viewer.offer, Header(b"init", "avc1.42c01f", 320, 240))
        events, _reason = await _until_header(viewer, 2.0)
        assert isinstance(events[0], Header), "the header that came a moment later"
        nothing, reason = await _until_header(Viewer(), 0.1)
        assert nothing == [] and reason == "no picture yet"

    asyncio.run(run())


def test_a_header_delivered_twice_is_sent_once_and_a_new_one_goes_through() -> None:
    async def run() -> None:
        viewer, header = Viewer(), Header(b"init", "avc1.42c01f", 320, 240)
        viewer.offer(header)
        viewer.offer(header)  # a join racing an event already on its way
        assert await asyncio.wait_for(viewer.events(), 1.0) == [header]
        reconnected = Header(b"init2", "avc1.42c01f", 320, 240)
        viewer.offer(reconnected)
        assert await asyncio.wait_for(viewer.events(), 1.0) == [reconnected]

    asyncio.run(run())
