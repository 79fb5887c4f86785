"""`camctl run-all`: everything the config enables, one worker process per camera, supervised,
behind one HTTP front (`camctl.runall`)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from camctl.bus.embedded import EMBEDDED_PORT, EMBEDDED_URL
from camctl.commands.record import check_writable
from camctl.config import Config, find_config_file
from camctl.errors import StorageError
from camctl.runall import camctl_argv, run_supervised
from camctl.runall.children import check_socket_folder, memory_warning
from camctl.runtime import check_listen

log = logging.getLogger("camctl.record")


def check_ports(config: Config) -> None:
    """The HTTP address (and the embedded NATS's, when no NATS is configured) can be had, or one
    line now (exit 2) instead of a banner and then an exit."""
    check_listen(config.http.listen, config.http.host, config.http.port)
    check_socket_folder(Path(tempfile.gettempdir()) / "camctl-run-all-XXXXXXXX")  # as mkdtemp will name it
    if config.nats.url is None:
        check_listen(EMBEDDED_URL, "127.0.0.1", EMBEDDED_PORT)


def memory_problem(config: Config) -> str | None:
    return memory_warning(len(config.select(None)))


def storage_warning(config: Config) -> str | None:
    """Why recordings cannot be written now, if so. Not fatal: live frames still flow, and the
    recorders retry and report it."""
    try:
        check_writable(config.storage.root)
    except StorageError as exc:
        return f"{exc}; recording will retry"
    return None


def run_all(
    config: Config, config_path: Path | None, log_json: bool, debug: bool, reload: Callable[[], Config]
) -> None:
    """Until SIGTERM/SIGINT, which finish every open segment; SIGHUP re-reads the config. Workers
    are started as `python -m camctl` with the same global options."""
    argv = camctl_argv(find_config_file(config_path), log_json, debug)
    run_supervised(config, argv, reload=reload)
