"""Whether now is a good time to fetch guesses: an unmetered link, an idle machine."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

_NM_METERED_YES = (1, 3)
"""NetworkManager's NM_METERED_YES and NM_METERED_GUESS_YES."""


def metered(setting: str = "auto") -> bool:
    """``yes``/``no`` as configured; ``auto``: $HUBSYNC_METERED when set, else
    NetworkManager's ``Metered`` property over D-Bus, else unmetered."""
    if setting in ("yes", "no"):
        return setting == "yes"
    env = os.environ.get("HUBSYNC_METERED", "").strip().lower()
    if env:
        return env in ("1", "yes", "true", "on")
    value = _network_manager_metered()
    return value in _NM_METERED_YES


def _network_manager_metered() -> int | None:
    try:
        from jeepney import DBusAddress, Properties
        from jeepney.io.blocking import open_dbus_connection
    except ImportError:
        return None
    address = DBusAddress(
        "/org/freedesktop/NetworkManager",
        bus_name="org.freedesktop.NetworkManager",
        interface="org.freedesktop.NetworkManager",
    )
    try:
        with open_dbus_connection(bus="SYSTEM") as conn:
            reply = conn.send_and_get_reply(Properties(address).get("Metered"), timeout=2)
    except Exception as exc:  # no system bus, no NetworkManager: not known
        log.debug("NetworkManager not asked about a metered link: %s", exc)
        return None
    body = reply.body
    if not body or not isinstance(body[0], tuple) or len(body[0]) != 2:
        return None
    value = body[0][1]
    return value if isinstance(value, int) else None


def machine_busy(max_load_per_core: float = 0.5) -> bool:
    """The 1-minute load average per core is above ``max_load_per_core``."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # not on this platform
        return False
    return load / (os.cpu_count() or 1) > max_load_per_core
