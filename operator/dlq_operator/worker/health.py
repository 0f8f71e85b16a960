"""A tiny HTTP endpoint for liveness (``/healthz``) and readiness (``/readyz``) probes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve_health(
    port: int, alive: Callable[[], bool], ready: Callable[[], bool]
) -> ThreadingHTTPServer:
    """Serves the probes on ``port`` from a daemon thread; returns the server to shut it down."""

    class Probe(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            check = {"/healthz": alive, "/readyz": ready}.get(self.path)
            if check is None:
                self.send_error(404)
                return
            ok = check()
            body = b"ok\n" if ok else b"not ok\n"
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Probes every few seconds are not worth a log line."""

    server = ThreadingHTTPServer(("0.0.0.0", port), Probe)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
