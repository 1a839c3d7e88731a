"""A lean HTTPS client for the operator's own API calls: one kept-alive connection per thread, few layers.

The kubernetes client's request path (parameter sanitising, auth settings, urllib3's pool manager, retries and
response wrappers) was ~20% of the operator's GIL time while 1,000 new customers were provisioned, on a
machine whose cores the API server needs. Here a call is one `http.client` request on the calling thread's
own connection. Connection settings (server, CA, client certificate, bearer token and its refresh hook) still
come from the kubernetes client's `Configuration`, so kubeconfig and in-cluster setups work unchanged.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
import urllib.parse
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, cast

import kubernetes

AUTH_REFRESH_SECONDS = 10.0  # a projected service-account token is re-read this often (it rotates hourly)
TIMEOUT_SECONDS = 30.0
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.NotConnected)


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    body: bytes


def _ssl_context(configuration: kubernetes.client.Configuration) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=configuration.ssl_ca_cert or None, cadata=configuration.ca_cert_data or None
    )
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif configuration.assert_hostname is False:
        context.check_hostname = False
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    return context


class KubeHttp:
    """Requests to one API server; safe to share between threads (each thread gets its own connection)."""

    def __init__(
        self,
        configuration: kubernetes.client.Configuration,
        timeout: float = TIMEOUT_SECONDS,
        user_agent: str = "clawhost-operator",
    ) -> None:
        if configuration.proxy:
            raise ValueError("the operator's API client does not go through an HTTP proxy; unset it in the kubeconfig")
        parts = urllib.parse.urlsplit(configuration.host)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"unsupported API server address {configuration.host!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._context = _ssl_context(configuration) if self._https else None
        self._server_name = configuration.tls_server_name or None
        self._configuration = configuration
        self._timeout = timeout
        self._user_agent = user_agent
        self._local = threading.local()
        self._auth_lock = threading.Lock()
        self._auth: tuple[float, dict[str, str]] = (float("-inf"), {})

    def _auth_headers(self) -> dict[str, str]:
        expires, headers = self._auth
        if time.monotonic() < expires:
            return headers
        with self._auth_lock:
            fresh: dict[str, str] = {}
            settings = cast(dict[str, dict[str, Any]], self._configuration.auth_settings())
            for setting in settings.values():
                if setting.get("in") == "header" and setting.get("value"):
                    fresh[str(setting["key"])] = str(setting["value"])
            self._auth = (time.monotonic() + AUTH_REFRESH_SECONDS, fresh)
            return fresh

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._context
            )
            if self._server_name:
                connection._server_hostname = self._server_name  # type: ignore[attr-defined]
            return connection
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _target(self, path: str, query: list[tuple[str, str]] | None) -> str:
        return self._prefix + path + ("?" + urllib.parse.urlencode(query) if query else "")

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self._user_agent, **self._auth_headers()}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> Response:
        """One request on this thread's kept-alive connection; a connection the server closed is reopened once."""
        target, headers = self._target(path, query), self._headers(content_type)
        for attempt in (1, 2):
            connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
            reused = connection is not None
            if connection is None:
                connection = self._local.connection = self._connect(self._timeout)
            try:
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except BaseException as error:
                connection.close()
                self._local.connection = None
                if isinstance(error, _STALE_CONNECTION) and reused and attempt == 1:
                    continue  # the server closed an idle kept-alive connection: not a failed request
                raise
            if response.will_close:
                connection.close()
                self._local.connection = None
            return Response(response.status, response.reason, data)
        raise AssertionError("unreachable")

    def stream_lines(self, path: str, query: list[tuple[str, str]], read_timeout: float) -> Generator[bytes]:
        """A long-running GET (a watch) on its own connection, line by line; raises on a non-200 answer."""
        connection = self._connect(read_timeout)
        try:
            connection.request("GET", self._target(path, query), headers=self._headers(None))
            response = connection.getresponse()
            if response.status != 200:
                raise api_error(Response(response.status, response.reason, response.read()))
            while line := response.readline():
                yield line
        finally:
            connection.close()


def api_error(response: Response) -> kubernetes.client.ApiException:
    """The kubernetes client's exception for a failed call, so callers handle both clients' errors alike."""
    error = kubernetes.client.ApiException(status=response.status, reason=response.reason)
    error.body = response.body.decode("utf-8", "replace")
    return error
