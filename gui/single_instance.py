"""One tray per user: a second ``hubsync-tray`` asks the first to show its window, then exits.

The first tray listens on a local socket (QLocalServer) whose name is made from the
user and the HubSync home, so two users, or two homes (tests), never see each other.
A name left by a tray that crashed is taken over: nobody answers on it.
"""

from __future__ import annotations

import getpass
import hashlib

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from agent.platform.paths import Paths

CONNECT_MS = 500
RAISE = b"raise\n"


def instance_name(paths: Paths) -> str:
    key = f"{getpass.getuser()}|{paths.control_socket.parent.resolve()}"
    return f"hubsync-tray-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def ask_running_tray_to_show(name: str) -> bool:
    """True when another tray listens on ``name`` and was asked to show its window."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(CONNECT_MS):
        return False
    socket.write(RAISE)
    socket.flush()
    socket.waitForBytesWritten(CONNECT_MS)
    socket.disconnectFromServer()
    return True


class SingleInstance(QObject):
    """Listens for later trays; ``show_requested`` when one asks."""

    show_requested = Signal()

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not self.server.listen(name):
            QLocalServer.removeServer(name)  # left by a tray that crashed
            if not self.server.listen(name):
                raise OSError(f"cannot listen on {name}: {self.server.errorString()}")
        self.server.newConnection.connect(self._accept)

    def _accept(self) -> None:
        while (socket := self.server.nextPendingConnection()) is not None:
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(socket.deleteLater)

    def _read(self, socket: QLocalSocket) -> None:
        if bytes(socket.readAll().data()).startswith(RAISE.strip()):
            self.show_requested.emit()

    def close(self) -> None:
        self.server.close()
