"""Which Ray a simulation runs on: a private one, or a cluster it joins explicitly.

``simulation.ray_address``: empty starts a private local Ray for this run (``RAY_ADDRESS=local``
for the SuperLink, so neither a ``RAY_ADDRESS`` in the shell nor the address file an earlier
``ray start`` left behind is picked up); ``auto`` joins the cluster ``RAY_ADDRESS`` or Ray's
address file names; ``HOST:PORT`` joins that one. A cluster that does not answer fails before
anything starts, within seconds, naming the address.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from common.config import ConfigError

PROBE_SECONDS = 3.0


def ray_address_file() -> Path:
    """Where ``ray start --head`` records the latest cluster's address."""
    return Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray" / "ray_current_cluster"


def resolve_ray_address(setting: str) -> str:
    """The value for the SuperLink's ``RAY_ADDRESS``: ``local`` or a reachable HOST:PORT."""
    if not setting:
        return "local"
    address = setting
    if setting == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        if not address and ray_address_file().exists():
            address = ray_address_file().read_text().strip()
        if not address or address == "auto":
            raise ConfigError(
                "simulation.ray_address=auto: no Ray cluster found (RAY_ADDRESS is unset and "
                f"{ray_address_file()} does not exist); start one with `ray start --head`"
            )
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"simulation.ray_address={setting!r}: expected HOST:PORT or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_SECONDS):
            pass
    except OSError as err:
        raise ConfigError(
            f"simulation.ray_address={setting!r}: no Ray cluster answers at {address} ({err}); "
            "start it, or leave simulation.ray_address empty for a private Ray"
        ) from err
    return address
