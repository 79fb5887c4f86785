"""`camctl probe onvif://...` and `camctl discover`: a camera added by its address, its streams
found by ONVIF instead of guessed from each maker's URL patterns."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from camctl.config import Config, load_config, parse_config
from camctl.envfile import EnvFile
from camctl.errors import ConfigError, UsageError
from camctl.onvif.address import OnvifAddress, parse_onvif_url
from camctl.onvif.device import Device, OnvifError, read_device
from camctl.onvif.discovery import Found, probe
from camctl.secrets import Secret

PASSWORD_ENV = "CAMCTL_ONVIF_PASSWORD"  # noqa: S105 - the variable `discover --add` writes, never the password


def probe_onvif(url: str, timeout: float) -> Device:
    return read_device(parse_onvif_url(url), timeout)


def stanza(device: Device, address: OnvifAddress, camera_id: str = "cam_1") -> str:
    """A ready camctl.yaml entry: the largest profile as main, the smallest as sub, the
    credentials as the environment's (a password is never printed)."""
    main, sub = device.main, device.sub
    if main is None or main.stream_uri is None:
        raise UsageError(f"{address.shown}: it offers no stream (no ONVIF profile with a stream URI)")
    lines = [f"  {camera_id}:"]
    if device.model or device.manufacturer:
        lines.append(f"    name: {' '.join(filter(None, (device.manufacturer, device.model)))!r}")
    lines.append("    streams:")
    lines.append(f"      main: {main.stream_uri}  # {_profile_line(main)}")
    if sub is not None and sub.stream_uri:
        lines.append(f"      sub: {sub.stream_uri}  # {_profile_line(sub)}")
    if address.username:
        lines.append(f"    username: {address.username}")
        lines.append(f"    password: ${{{PASSWORD_ENV}}}")
    return "cameras:\n" + "\n".join(lines) + "\n"


def _profile_line(profile: Any) -> str:
    size = f"{profile.width}x{profile.height}" if profile.width else "?"
    fps = f"@{profile.fps:g}" if profile.fps else ""
    rate = f" {profile.bitrate_kbps} kbit/s" if profile.bitrate_kbps else ""
    return f"{profile.token}: {profile.codec or '?'} {size}{fps}{rate}"


@dataclass(frozen=True)
class Discovered:
    found: Found
    configured: str | None  # the camera of the config at that address
    device: Device | None = None  # with credentials: what it says of itself
    error: str | None = None  # and why it could not be read

    def to_json(self) -> dict[str, Any]:
        return {**self.found.to_json(), "configured": self.configured,
                "device": self.device.to_json() if self.device else None, "error": self.error}  # fmt: skip


def discover(hosts: list[str], port: int, wait: float, config: Config | None, user: str | None,
             password: str | None, timeout: float) -> list[Discovered]:  # fmt: skip
    """Devices answering a WS-Discovery probe; with a user, each one's profiles read too."""
    known = _configured_hosts(config)
    out = []
    for found in probe(hosts, port, wait):
        configured = known.get(found.address)
        device = error = None
        if user is not None:
            address = OnvifAddress(found.address, found.port, user, Secret(password) if password else None)
            try:
                device = read_device(address, timeout)
            except OnvifError as exc:
                error = exc.reason
        out.append(Discovered(found, configured, device, error))
    return out


def _configured_hosts(config: Config | None) -> dict[str, str]:
    """host -> camera id, from every stream URL of the config's cameras."""
    hosts: dict[str, str] = {}
    for camera in config.cameras.values() if config is not None else []:
        for spec in camera.streams.values():
            host = urlsplit(spec.url).hostname
            if host:
                hosts.setdefault(host, camera.id)
    return hosts


def add_to_config(path: Path, found: list[Discovered], user: str | None, password: str | None) -> list[str]:
    """Appends the devices not in the config yet as `onvif:` cameras (cam_N, after the highest),
    validated as a whole before the file is replaced; the old file kept as <name>.bak. The
    password is written as ${CAMCTL_ONVIF_PASSWORD}: set it where camctl runs (its env file)."""
    text = path.read_text() if path.exists() else ""
    existing = load_config(path).cameras if path.exists() else {}
    numbers = [int(n.split("_", 1)[1]) for n in existing if n.startswith("cam_") and n[4:].isdigit()]
    next_number = max(numbers, default=0) + 1
    entries, added = [], []
    for item in found:
        if item.configured:
            continue
        camera_id = f"cam_{next_number}"
        next_number += 1
        credentials = f"{quote(user, safe='')}:${{{PASSWORD_ENV}}}@" if user else ""
        host = f"[{item.found.address}]" if ":" in item.found.address else item.found.address
        port = "" if item.found.port == 80 else f":{item.found.port}"
        name = item.device.model if item.device and item.device.model else item.found.model or item.found.name
        entry = f'  {camera_id}:\n    onvif: "onvif://{credentials}{host}{port}"\n'
        if name:
            entry += f"    name: {name!r}\n"
        entries.append(entry)
        added.append(camera_id)
    if not entries:
        return []
    new_text = _with_cameras(text, "".join(entries))
    env = dict(os.environ)
    if password is not None:
        env[PASSWORD_ENV] = password
    _validate(path, new_text, env)
    if path.exists():
        shutil.copy2(path, path.with_name(path.name + ".bak"))
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(new_text)
    temporary.replace(path)
    return added


def _with_cameras(text: str, entries: str) -> str:
    """`entries` (indented by two) at the end of the file's `cameras:` block, or a new block."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "cameras:"), None)
    if start is None:
        tail = "" if not text or text.endswith("\n") else "\n"
        return f"{text}{tail}cameras:\n{entries}"
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith((" ", "\t", "#"))):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # before the blank lines that end the block
    return "".join(lines[:end]) + entries + "".join(lines[end:])


def _validate(path: Path, text: str, env: dict[str, str]) -> None:
    """The whole new config loads (its env file's values and the password variable set as they will be)."""
    secrets = EnvFile.beside(path)
    try:
        parse_config(text, str(path), {**(secrets.values if secrets else {}), **env})
    except ConfigError as exc:
        raise ConfigError(f"not added: the config would not load: {exc}") from None
