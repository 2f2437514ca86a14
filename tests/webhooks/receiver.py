"""A webhook receiver for tests: a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Answers `status` to the first `failures` requests, then 200; records every request."""

    def __init__(self, failures: int = 0, status: int = 500, delay: float = 0.0):
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes]] = []
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                time.sleep(delay)
                with lock:
                    receiver.requests.append((dict(self.headers.items()), body))
                    failing = receiver.failures > 0
                    receiver.failures -= failing
                answer = b"down for maintenance" if failing else b"thanks"
                self.send_response(status if failing else 200)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
