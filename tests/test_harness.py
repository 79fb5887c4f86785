"""The test parts themselves: fake cameras that go down and come back, a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import av
import av.error
import pytest

from tests.harness import FakeCameras, NatsServer


def _first_packet(url: str) -> av.Packet:
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(10, 10)) as container:
        return next(p for p in container.demux(video=0) if p.size)


def test_fake_camera_goes_down_and_comes_back(fake_cameras: Callable[..., FakeCameras]) -> None:
    cams = fake_cameras(count=2)
    assert _first_packet(cams.url("cam2")).size > 0
    cams.down("cam2")
    with pytest.raises(av.error.HTTPNotFoundError):
        _first_packet(cams.url("cam2"))
    assert _first_packet(cams.url("cam1")).size > 0  # the others stay up
    cams.up("cam2")
    assert _first_packet(cams.url("cam2")).size > 0


def test_fake_camera_requires_password_when_asked(fake_cameras: Callable[..., FakeCameras]) -> None:
    cams = fake_cameras(count=2, auth="admin:s3cret", auth_only=["cam2"])
    assert _first_packet(cams.url("cam1")).size > 0
    with pytest.raises(av.error.HTTPUnauthorizedError):
        _first_packet(cams.url("cam2"))
    assert _first_packet(cams.url("cam2").replace("rtsp://", "rtsp://admin:s3cret@")).size > 0


def test_nats_server_round_trip(nats_server: NatsServer) -> None:
    import nats

    async def round_trip() -> bytes:
        nc = await nats.connect(nats_server.url, connect_timeout=5)
        try:
            sub = await nc.subscribe("camctl.test")
            await nc.publish("camctl.test", b"hello")
            msg = await sub.next_msg(timeout=5)
            return bytes(msg.data)
        finally:
            await nc.close()

    assert asyncio.run(round_trip()) == b"hello"
