"""Domain errors, each carrying the documented exit status the CLI maps it to."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1  # unexpected
    USAGE = 2  # bad arguments or configuration
    UNREACHABLE = 3  # camera unreachable or timed out
    AUTH = 4  # authentication refused
    STORAGE = 5  # storage not writable or full
    NO_FOOTAGE = 6  # nothing recorded in the requested range
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


class CamctlError(Exception):
    """An error the user can act on: printed as one line, mapped to an exit status."""

    exit_status = ExitStatus.ERROR


class ConfigError(CamctlError):
    exit_status = ExitStatus.USAGE


class UsageError(CamctlError):
    exit_status = ExitStatus.USAGE


class StorageError(CamctlError):
    exit_status = ExitStatus.STORAGE


class BusUnreachable(CamctlError):
    """NATS does not answer (a consumer of camctl's events cannot work without it)."""

    exit_status = ExitStatus.UNREACHABLE


class AlreadyRecording(CamctlError):
    """Another camctl records this camera into the same storage root."""

    exit_status = ExitStatus.USAGE


class NoFootage(CamctlError):
    exit_status = ExitStatus.NO_FOOTAGE


class CameraError(CamctlError):
    """Something went wrong with one camera; `where` is its masked URL."""

    exit_status = ExitStatus.UNREACHABLE
    kind = "unreachable"

    def __init__(self, camera_id: str, reason: str, where: str = "") -> None:
        self.camera_id = camera_id
        self.reason = reason
        self.where = where
        suffix = f" ({where})" if where else ""
        super().__init__(f"{camera_id}: {reason}{suffix}")


class CameraUnreachable(CameraError):
    pass


class CameraTimeout(CameraUnreachable):
    kind = "timeout"


class AuthFailed(CameraError):
    exit_status = ExitStatus.AUTH
    kind = "auth"
