"""Who is on the other end of a Unix socket.

Linux reports it with ``SO_PEERCRED``; macOS and the BSDs with
``LOCAL_PEERCRED`` (the mechanism behind ``getpeereid``), which Python does
not wrap, so the ``xucred`` structure is read directly.
"""

from __future__ import annotations

import socket
import struct
import sys

# <sys/un.h> on macOS/FreeBSD: SOL_LOCAL = 0, LOCAL_PEERCRED = 1.
_SOL_LOCAL = 0
_LOCAL_PEERCRED = 1
# struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; }
_XUCRED_SIZE = 4 + 4 + 4 + 16 * 4


def peer_uid(sock: socket.socket) -> int | None:
    """The effective uid of the peer process, or ``None`` when the OS cannot tell."""
    if hasattr(socket, "SO_PEERCRED"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", raw)
        return int(uid)
    if sys.platform == "darwin" or sys.platform.startswith("freebsd"):
        raw = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED_SIZE)
        _version, uid = struct.unpack_from("=II", raw)
        return int(uid)
    return None


def is_same_user(sock: socket.socket, uid: int) -> bool:
    """True only when the peer is known to run as ``uid``; unknown peers are refused."""
    try:
        peer = peer_uid(sock)
    except OSError:
        return False
    return peer is not None and peer == uid
