"""Reading the requirements locks (uv's universal, hashed format) as pip would on this Python."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
# name[extras]==version ; marker \   (the hashes follow on continuation lines)
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)"
    r"(?:\s*;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)


def entries(path: Path) -> list[tuple[str, str, str | None]]:
    """(canonical name, version, marker or None) of every pin in the lock."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            marker = match["marker"].strip() if match["marker"] else None
            found.append((canonicalize_name(match["name"]), match["version"], marker))
    return found


def locked(path: Path, environment: dict[str, str] | None = None) -> dict[str, str]:
    """{canonical name: version} that the lock installs here (or in ``environment``):
    entries whose marker does not hold are left out, as pip leaves them out."""
    pins: dict[str, str] = {}
    for name, version, marker in entries(path):
        if marker is None or Marker(marker).evaluate(environment):
            assert name not in pins, f"{path.name}: {name} pinned twice for one environment"
            pins[name] = version
    return pins
