"""A lean HTTPS client for the API server: one kept-alive `http.client` connection per thread, few layers.

The kubernetes client's request path (parameter sanitising, auth settings, urllib3's pool manager, retries and
response wrappers) was ~20% of the operator's GIL time while 1,000 new customers were provisioned, on a machine
whose cores the API server needs. Here a call is one `http.client` request on the calling thread's own
connection. Every failure, answered or not, is a `KubeError`.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from clawhost_api.kube.config import KubeConfig
from clawhost_api.kube.errors import KubeError

TIMEOUT_SECONDS = 30.0
# How a request on a kept-alive connection the server has closed fails. A request with a body is sent in two writes
# (headers, then body): the server's RST to the first makes TLS report the second as SSLEOFError, not a reset.
_STALE_CONNECTION = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    http.client.NotConnected,
    ssl.SSLEOFError,
)
_NO_ANSWER = (OSError, http.client.HTTPException)  # socket.timeout and ssl.SSLError are OSErrors


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> KubeError:
        return KubeError.from_answer(self.status, self.reason, self.body)


class Stream:
    """A long-running GET (a watch) on its own connection, read line by line; `close` may come from any thread."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self._connection = connection
        self._response = response
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            while line := self._response.readline():
                yield line
        except _NO_ANSWER as error:
            if self._closed:
                return
            raise KubeError.from_failure(error) from error
        finally:
            self._connection.close()

    def close(self) -> None:
        """Ends the stream: a reader blocked on it sees its end."""
        self._closed = True
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


def _closed_by_server(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection is unusable: the server closed it (or wrote to it unasked), so its
    socket is readable (end of stream, close_notify or reset) although no request is outstanding."""
    sock = connection.sock
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _HTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection that checks the server's certificate against `server_name` (and sends it as SNI),
    which may differ from the address connected to: a kubeconfig's tls-server-name."""

    def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext, server_name: str) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls_context = context
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=self._server_name)


class KubeHttp:
    """Requests to one API server; safe to share between threads (each thread gets its own connection)."""

    def __init__(self, config: KubeConfig, timeout: float = TIMEOUT_SECONDS, user_agent: str = "clawhost") -> None:
        parts = urllib.parse.urlsplit(config.server)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"unsupported API server address {config.server!r}")
        self.config = config
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._context = config.ssl_context() if self._https else None
        self._timeout = timeout
        self._user_agent = user_agent
        self._local = threading.local()
        self._kept_alive: set[http.client.HTTPConnection] = set()  # every thread's, for close()
        self._kept_alive_lock = threading.Lock()

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            assert self._context is not None
            return _HTTPSConnection(
                self._host, self._port, timeout, self._context, self.config.tls_server_name or self._host
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _target(self, path: str, query: list[tuple[str, str]] | None) -> str:
        return self._prefix + path + ("?" + urllib.parse.urlencode(query) if query else "")

    def _headers(self, content_type: str | None, fresh_token: bool = False) -> dict[str, str]:
        try:
            auth = self.config.authorization(fresh_token)
        except OSError as error:
            raise KubeError.from_failure(error) from error
        headers = {"Accept": "application/json", "User-Agent": self._user_agent, **auth}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _send(self, method: str, target: str, body: bytes | None, headers: dict[str, str]) -> Response:
        """One request on this thread's kept-alive connection; a connection the server closed is reopened once.

        The API server closes a connection idle for 90 s. One found closed before sending is replaced at once;
        one closed while the request goes out fails it as stale, and the request is sent again on a new one.
        """
        for attempt in (1, 2):
            connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
            if connection is not None and _closed_by_server(connection):
                self._forget(connection)
                connection = None
            reused = connection is not None
            if connection is None:
                connection = self._local.connection = self._connect(self._timeout)
                with self._kept_alive_lock:
                    self._kept_alive.add(connection)
            try:
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except BaseException as error:
                self._forget(connection)
                if isinstance(error, _STALE_CONNECTION) and reused and attempt == 1:
                    continue  # the server closed an idle kept-alive connection: not a failed request
                if isinstance(error, _NO_ANSWER):
                    raise KubeError.from_failure(error) from error
                raise
            if response.will_close:
                self._forget(connection)
            return Response(response.status, response.reason, data)
        raise AssertionError("unreachable")

    def _forget(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        self._local.connection = None
        with self._kept_alive_lock:
            self._kept_alive.discard(connection)

    def release(self) -> None:
        """Close this thread's kept-alive connection: a thread that stops using the client calls it on its way out,
        since nothing else would close the socket of a finished thread."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            self._forget(connection)

    def close(self) -> None:
        """Close every thread's kept-alive connection (watches close their own); a later request reconnects."""
        with self._kept_alive_lock:
            connections, self._kept_alive = self._kept_alive, set()
        for connection in connections:
            connection.close()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> Response:
        """The API server's answer, whatever its status; `KubeError` only when there was none.

        A 401 with a token read from a file is retried once with the file read again: the token rotated.
        """
        target = self._target(path, query)
        response = self._send(method, target, body, self._headers(content_type))
        if response.status == 401 and self.config.token_file is not None:
            response = self._send(method, target, body, self._headers(content_type, fresh_token=True))
        return response

    def call(
        self,
        method: str,
        path: str,
        body: object | None = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> bytes:
        """A request with a JSON body (an apply patch too: JSON is YAML); the answer's body, or `KubeError`."""
        data = None if body is None else orjson.dumps(body)
        response = self.request(method, path, data, content_type if data is not None else None, query)
        if not response.ok:
            raise response.error()
        return response.body

    def get(self, path: str, query: list[tuple[str, str]] | None = None) -> dict[str, object]:
        loaded: dict[str, object] = orjson.loads(self.call("GET", path, query=query))
        return loaded

    def watch(self, path: str, query: list[tuple[str, str]], read_timeout: float) -> Stream:
        """Opens a watch on its own connection; `KubeError` if it is refused or unreachable."""
        target = self._target(path, query)
        for fresh_token in (False, True):
            connection = self._connect(read_timeout)
            try:
                connection.request("GET", target, headers=self._headers(None, fresh_token))
                response = connection.getresponse()
                if response.status == 200:
                    return Stream(connection, response)
                answer = Response(response.status, response.reason, response.read())
            except _NO_ANSWER as error:
                connection.close()
                raise KubeError.from_failure(error) from error
            connection.close()
            if answer.status != 401 or self.config.token_file is None or fresh_token:
                raise answer.error()
        raise AssertionError("unreachable")
