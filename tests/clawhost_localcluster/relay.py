"""A TCP relay in front of a real server, which a test can cut (connections reset, new ones refused) and restore.

How a test makes the API server unreachable for one client while it keeps serving everyone else, or closes the
client's open connections the way a server ends idle kept-alive ones (`close_connections`).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from clawhost_localcluster.processes import free_port


@dataclass
class TcpRelay:
    target_host: str
    target_port: int
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"  # any loopback address: 127.0.0.2 is one the API server's certificate does not name
    _listener: socket.socket | None = None
    accepted: int = 0  # connections accepted so far: how a test sees a client open a new one
    _open: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        """Listen (again) on the relay's port."""
        listener = socket.create_server((self.host, self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="relay-accept", daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut or stopped
            try:
                upstream = socket.create_connection((self.target_host, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """The server becomes unreachable: open connections are reset, new ones refused."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept thread; closing alone would not
            self._listener.close()
            self._listener = None
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)  # wakes the pumps blocked on it
            connection.close()

    def close_connections(self) -> None:
        """Every open connection is closed (an end of stream, not a reset), as a server closes the kept-alive
        connections it found idle; the relay goes on accepting new ones."""
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)  # wakes the pumps blocked on it
            connection.close()

    def stop(self) -> None:
        self.cut()


def relay_to_api_server(kubeconfig: Path, host: str = "127.0.0.1") -> TcpRelay:
    """A started relay on `host` to the API server `kubeconfig` names (its certificate is valid for 127.0.0.1)."""
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    target = urllib.parse.urlsplit(server)
    relay = TcpRelay(str(target.hostname), int(target.port or 443), host=host)
    relay.start()
    return relay
