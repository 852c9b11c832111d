"""A fault-injecting HTTP proxy for the tests: forwards requests to the S3 server and,
for requests that match a rule, answers 503 or 500, resets the connection, stalls (for
`seconds`, or until the proxy stops), delays the request by `seconds` (then forwards it,
whether or not the client still waits), answers 200 with an S3 `<Error>` body, or gives
an answer of the test's own instead; answers 412 PreconditionFailed (as a store does to
`If-None-Match: *` when the key exists); sends the request to the server twice and
answers the second answer ("duplicate": another writer got there first, so the server's
own 412 comes back to a conditional write, or, for the same bytes, the client's check
that the object there is its own); calls the test's `before(path)` and then forwards
("before": another writer, say); or flips one byte of the request's body and
forwards it (a corruption in transit, for the store's checksum check to catch); or
answers 400 MissingContentMD5 unless the request carries its body's right `Content-MD5`
("needs-md5"). Every
request's headers are recorded (`headers`). Listens on a free loopback port; with `tls`
(a certificate and key file, from tls.py) it speaks HTTPS to its clients, as hosted
catalogs do, and plain HTTP upstream."""

from __future__ import annotations

import base64
import hashlib
import http.client
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import free_port

ERROR_BODY = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
              b'<Message>injected</Message><RequestId>x</RequestId></Error>')


@dataclass
class Rule:
    """Answers `action` to requests whose "METHOD path?query" (and, for JSON APIs such as
    Glue, " Service.Operation" from X-Amz-Target) matches `pattern`, for the
    first `times` matches (None: all of them)."""

    pattern: str
    action: str  # "503", "500", "reset", "stall", "delay", "200-error", "412", "duplicate", "before", "flip",
    # "needs-md5" or "answer"
    times: int | None = 1
    hits: int = 0
    answer: tuple[int, bytes] | None = None  # for "answer": the status and XML body
    before: object = None  # for "before": called with the request's path, then it is forwarded
    seconds: float = 5  # for "stall": how long before the connection is closed unanswered; for "delay"

    def take(self, line: str) -> bool:
        if not re.search(self.pattern, line):
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        self.hits += 1
        return True


@dataclass
class FaultProxy:
    upstream_port: int
    rules: list[Rule] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    # (request line, headers with lower-case names), in arrival order.
    headers: list[tuple[str, dict]] = field(default_factory=list)
    tls: tuple[str, str] | None = None  # (certificate file, key file): answer over HTTPS

    def __post_init__(self):
        self.port = free_port()
        self.endpoint = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.closing = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                line = f"{self.command} {self.path}"
                # JSON APIs (Glue) name the operation in a header, not the path.
                if self.headers.get("X-Amz-Target"):
                    line += f" {self.headers['X-Amz-Target']}"
                with proxy.lock:
                    proxy.seen.append(line)
                    proxy.headers.append((line, {k.lower(): v for k, v in self.headers.items()}))
                    rule = next((r for r in proxy.rules if r.take(line)), None)
                if rule is None:
                    return self.forward(body)
                if rule.action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    self.close_connection = True
                    return
                if rule.action == "flip" and body:
                    middle = len(body) // 2
                    body = body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1:]
                    return self.forward(body)
                if rule.action == "needs-md5":
                    # As stores built on older S3 code do: no Content-MD5, no request.
                    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
                    if self.headers.get("Content-MD5") == md5:
                        return self.forward(body)
                    rule = Rule(rule.pattern, "400-md5")
                if rule.action == "before":
                    rule.before(self.path)
                    return self.forward(body)
                if rule.action == "duplicate":
                    self.forward(body, answer=False)
                    return self.forward(body)
                if rule.action == "delay":
                    proxy.closing.wait(rule.seconds)
                    return self.forward(body)
                if rule.action == "stall":
                    proxy.closing.wait(rule.seconds)
                    self.close_connection = True
                    return
                if rule.action == "answer" and rule.answer is not None:
                    status, payload = rule.answer
                else:
                    status, code = {"503": (503, "SlowDown"), "500": (500, "InternalError"),
                                    "200-error": (200, "InternalError"),
                                    "412": (412, "PreconditionFailed"),
                                    "400-md5": (400, "MissingContentMD5")}[rule.action]
                    payload = ERROR_BODY.replace(b"{code}", code.encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def forward(self, body: bytes, answer: bool = True):
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                upstream = conn.getresponse()
                data = upstream.read()
                if not answer:
                    conn.close()
                    return
                answer = upstream
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def saw(self, pattern: str) -> bool:
        with self.lock:
            return any(re.search(pattern, line) for line in self.seen)

    def headers_of(self, pattern: str) -> list[dict]:
        """The headers of every request whose line matches `pattern`."""
        with self.lock:
            return [h for line, h in self.headers if re.search(pattern, line)]

    def stop(self):
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
