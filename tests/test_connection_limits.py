"""The HTTP front's connection limits: in all and per client address, 503 past them, /healthz never."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from camctl.web.limits import ConnectionLimits


@contextlib.asynccontextmanager
async def served(limits: ConnectionLimits, release: asyncio.Event) -> AsyncIterator[str]:
    async def stream(_request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), timeout=10)
        return web.Response(text="done")

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[limits.middleware])
    app.router.add_get("/stream", stream)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def held(
    session: aiohttp.ClientSession, url: str, limits: ConnectionLimits, count: int
) -> list[asyncio.Task[int]]:
    """`count` requests that stay in progress until released; returns once the server holds them."""

    async def one() -> int:
        async with session.get(url) as response:
            await response.read()
            return response.status

    before = limits.open
    tasks = [asyncio.create_task(one()) for _ in range(count)]
    async with asyncio.timeout(5):
        while limits.open < before + count:
            await asyncio.sleep(0.01)
    return tasks


def test_a_client_past_its_limit_gets_503_while_another_client_is_served() -> None:
    async def scenario() -> None:
        limits, release = ConnectionLimits(total=10, per_client=3), asyncio.Event()
        async with served(limits, release) as base:
            first = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, local_addr=("127.0.0.2", 0)))
            other = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, local_addr=("127.0.0.3", 0)))
            async with first, other:
                streams = await held(first, f"{base}/stream", limits, 3)
                async with first.get(f"{base}/stream") as refused:
                    assert refused.status == 503 and refused.headers["Retry-After"] == "5"
                    assert "max_connections_per_client" in (await refused.json())["detail"]
                async with first.get(f"{base}/healthz") as health:
                    assert health.status == 200, "health checks are never refused"
                served_too = await held(other, f"{base}/stream", limits, 1)
                release.set()
                assert await asyncio.gather(*streams, *served_too) == [200] * 4
            assert limits.open == 0 and limits.in_use("127.0.0.2") == 0, "every request gave its place back"

    asyncio.run(scenario())


def test_past_the_total_limit_every_client_gets_503_until_one_leaves() -> None:
    async def scenario() -> None:
        limits, release = ConnectionLimits(total=4, per_client=3), asyncio.Event()
        async with served(limits, release) as base:
            sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, local_addr=(f"127.0.0.{n}", 0)))
                        for n in (2, 3, 4)]  # fmt: skip
            try:
                streams = await held(sessions[0], f"{base}/stream", limits, 3)
                streams += await held(sessions[1], f"{base}/stream", limits, 1)
                async with sessions[2].get(f"{base}/stream") as refused:
                    assert refused.status == 503
                    assert "http.max_connections)" in (await refused.json())["detail"]
                release.set()
                assert await asyncio.gather(*streams) == [200] * 4
                release.clear()
                again = await held(sessions[2], f"{base}/stream", limits, 1)
                release.set()
                assert await asyncio.gather(*again) == [200]
            finally:
                for session in sessions:
                    await session.close()
        assert limits.refused == 1

    asyncio.run(scenario())
