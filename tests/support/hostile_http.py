"""A misbehaving artifact server for storage tests: `python tests/support/hostile_http.py PORT`.

/endless    a chunked body that never ends (no content-length)
/slow       a chunked body dripping one byte every 0.2 s, forever
/to/<path>  302 to <path> on this server
/to-127.0.0.2/<path>  302 to <path> on this port of 127.0.0.2 (another loopback address)
anything else: 404
"""

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._respond(body=False)

    def do_GET(self) -> None:
        self._respond(body=True)

    def _respond(self, body: bool) -> None:
        if self.path.startswith("/to-127.0.0.2/"):
            port = self.server.server_address[1]
            return self._redirect(f"http://127.0.0.2:{port}/" + self.path.split("/", 2)[2])
        if self.path.startswith("/to/"):
            return self._redirect(self.path[len("/to") :])
        if self.path not in ("/endless", "/slow"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if not body:
            return None
        chunk, pause = (b"x" * 65536, 0.0) if self.path == "/endless" else (b"x", 0.2)
        try:
            while True:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                if pause:
                    time.sleep(pause)
        except OSError:
            return None  # the client gave up: that is the point

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
