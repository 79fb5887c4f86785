"""The fleet: every camctl node on the NATS bus, listed on each node's page with a link, and a
node that stops answering shown as unreachable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nats

from tests.harness import CamctlProcess, NatsServer, free_port
from tests.ingest_helpers import http_get
from tests.recording_helpers import wait_for


def node_config(tmp_path: Path, name: str, nats: NatsServer, port: int) -> Path:
    config = tmp_path / f"{name}.yaml"
    config.write_text(
        f"node: {name}\ncameras:\n  cam_1: 'demo:?size=160x120&fps=5'\n  cam_2: 'demo:?size=160x120&fps=5'\n"
        f"storage: {{root: '{tmp_path / name}', retention: {{min_free: null}}}}\n"
        f"nats: {{url: '{nats.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\n"
    )
    return config


def fleet(port: int) -> dict[str, dict[str, Any]]:
    code, _headers, body = http_get(f"http://127.0.0.1:{port}/api/fleet")
    return {n["node"]: n for n in json.loads(body)["nodes"]} if code == 200 else {}


def test_each_node_lists_the_others_with_their_page_and_one_that_stops_is_unreachable(
    nats_server: NatsServer, browser: Any, tmp_path: Path
) -> None:
    north_port, south_port = free_port(), free_port()
    north = CamctlProcess(node_config(tmp_path, "north", nats_server, north_port), tmp_path / "n", "run-all")
    south = CamctlProcess(node_config(tmp_path, "south", nats_server, south_port), tmp_path / "s", "ingest")
    with north, south:
        both = wait_for("both nodes, every camera online", lambda: (f := fleet(north_port)) and len(f) == 2
                        and f["south"]["online"] == 2 and f["north"]["online"] == 2 and f, timeout=30)  # fmt: skip
        assert both["south"] | {"last_seen": None} == {
            "node": "south", "url": f"http://127.0.0.1:{south_port}", "self": False, "reachable": True,
            "last_seen": None, "cameras": 2, "online": 2,
        }  # fmt: skip
        assert both["north"]["self"] and both["north"]["reachable"]
        assert fleet(south_port)["north"]["url"] == f"http://127.0.0.1:{north_port}", "run-all answers too"
        # Pages poll the fleet: calls within a couple of seconds share one ask of the bus.
        calls = _status_requests_during(nats_server.url, lambda: [fleet(north_port) for _ in range(5)])
        with ThreadPoolExecutor(1) as thread:  # Playwright's loop holds this thread
            asked = thread.submit(asyncio.run, calls).result(timeout=30)
        assert asked <= 1, f"{asked} status requests for 5 fleet calls in a row"

        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{north_port}/")
        link = page.locator('#fleet a.node[data-node="south"]')
        link.wait_for(timeout=10000)
        assert link.get_attribute("href") == f"http://127.0.0.1:{south_port}/" and "2/2" in link.inner_text()

        assert south.terminate()[0] == 0
        gone = wait_for("south unreachable", lambda: (f := fleet(north_port)) and not f["south"]["reachable"] and f,
                        timeout=10)  # fmt: skip
        assert gone["south"]["url"] == f"http://127.0.0.1:{south_port}", "still listed, with where it was"
        page.reload()
        shown = page.locator('#fleet .node.unreachable[data-node="south"]')
        shown.wait_for(timeout=10000)
        assert "unreachable" in shown.inner_text()
        page.close()
        assert north.terminate()[0] == 0


async def _status_requests_during(url: str, action: Callable[[], object]) -> int:
    """How many status requests crossed the bus while `action` ran (in a thread)."""
    nc = await nats.connect(url)
    seen: list[object] = []

    async def count(msg: object) -> None:
        seen.append(msg)

    await nc.subscribe("seguranca.camera.status.get", cb=count)
    await nc.flush()
    await asyncio.get_running_loop().run_in_executor(None, action)
    await nc.flush()
    await nc.close()
    return len(seen)
