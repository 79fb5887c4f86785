"""URLs this node signs, so that whoever got one from an event (or the CLI on this box) may fetch
it without a password: an HMAC of the path and an expiry, with a key kept in camctl's data folder.
A signature is good for its path only, until it expires."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlencode

from camctl.config import HttpConfig
from camctl.paths import SYSTEM_DATA_DIR

SIGNED_TTL = 60  # seconds a frame event's URL stays good
KEY_FILE = "http-url-key"


def url_key(data_dir: Path) -> bytes:
    """This node's signing key: made once, readable by camctl's user only, shared by run-all's
    workers (which sign the URLs in their events) and its front (which checks them)."""
    path = data_dir / KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    try:
        os.link(tmp, path)  # the first writer wins; everyone then reads the same key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()


class Signer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def signature(self, path: str, expires: int) -> str:
        message = f"{path}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def sign(self, path: str, now: float | None = None, ttl: int = SIGNED_TTL) -> str:
        """path with ?exp=&sig= (path is what the server sees: /cam1/frame.jpg)."""
        expires = int((time.time() if now is None else now) + ttl)
        return f"{path}?{urlencode({'exp': expires, 'sig': self.signature(path, expires)})}"

    def check(self, path: str, expires: str, signature: str, now: float | None = None) -> str | None:
        """None when good, else why not."""
        try:
            when = int(expires)
        except ValueError:
            return "bad signature"
        if not hmac.compare_digest(self.signature(path, when), signature):
            return "bad signature"
        if when < (time.time() if now is None else now):
            return "signature expired"
        return None


def read_key(data_dir: Path) -> bytes | None:
    """The node's key when a camctl service made one (for the CLI, which never makes one): in this
    user's data folder, else the system service's (`scripts/install`), which root may read."""
    for folder in (data_dir, SYSTEM_DATA_DIR):
        try:
            return (folder / KEY_FILE).read_bytes()
        except OSError:
            continue
    return None


def local_url(http: HttpConfig, data_dir: Path, path: str, query: str = "") -> str | None:
    """The URL of path on this box's camctl, signed when its HTTP needs credentials; None when it
    does and no service has made a key here yet (nothing is running)."""
    if not http.authenticated:
        return f"{http.local_url}{path}" + (f"?{query}" if query else "")
    key = read_key(data_dir)
    if key is None:
        return None
    return f"{http.local_url}{Signer(key).sign(path)}" + (f"&{query}" if query else "")
