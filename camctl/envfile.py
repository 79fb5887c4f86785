"""The secrets file beside the config (`/etc/camctl/camctl.env`): KEY=VALUE lines, as systemd's
`EnvironmentFile=` and docker compose's `env_file:` read them, so one file serves the service, the
container and an operator's `camctl config check` in a shell that lacks those variables."""

from __future__ import annotations

import re
from pathlib import Path

ENV_FILE_NAME = "camctl.env"
_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")


class EnvFile:
    """What the file beside a config gives: its values, or why it could not be read."""

    def __init__(self, path: Path, values: dict[str, str], problem: str | None = None) -> None:
        self.path = path
        self.values = values
        self.problem = problem  # e.g. "permission denied": said when a variable is then missing

    @classmethod
    def beside(cls, config_file: Path) -> EnvFile | None:
        path = config_file.with_name(ENV_FILE_NAME)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except PermissionError:
            return cls(path, {}, "permission denied")
        except (OSError, UnicodeDecodeError) as exc:
            return cls(path, {}, str(exc))
        return cls(path, parse_env_text(text))


def parse_env_text(text: str) -> dict[str, str]:
    """KEY=VALUE per line; blank lines and `#` comments skipped; one pair of quotes taken off."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.fullmatch(line)
        if m is None:
            continue
        value = m[2].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[m[1]] = value
    return values
