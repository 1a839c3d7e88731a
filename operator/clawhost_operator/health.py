"""The liveness endpoint (`/healthz`), on its own port: 200 with the caches' sizes while every watch thread runs."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (alive, details): details are counts and thread names, never object contents.
Check = Callable[[], tuple[bool, dict[str, object]]]


def serve_health(port: int, check: Check, host: str = "0.0.0.0") -> ThreadingHTTPServer:  # noqa: S104 - a probe port
    """Serve `/healthz` from a daemon thread; `shutdown()` on the returned server stops it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/healthz":
                self.send_error(404)
                return
            alive, details = check()
            body = json.dumps(details).encode()
            self.send_response(200 if alive else 500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # a probe every few seconds is not worth a log line

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
