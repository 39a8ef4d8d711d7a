"""Real HTTP receivers on 127.0.0.1 for the webhook tests: one that records what it gets (and how many connections
it accepted: a refused callback must not even connect), one that answers one byte a second."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """An HTTP server that records each request and answers with the next of `answers` (then 200). `connections`
    counts the TCP connections it accepted: a refused callback must not even connect."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict] = []
        self.answers: list[int | str] = []
        self.connections = 0
        self.server_names: list[str | None] = []
        self.release = threading.Event()
        self.in_flight = self.most_in_flight = 0
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                answer = receiver.answers.pop(0) if receiver.answers else 200
                if answer == "slow":
                    time.sleep(2)
                    answer = 200
                if answer == "hold":  # until the test releases it: a send in flight
                    with lock:
                        receiver.in_flight += 1
                        receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                    receiver.release.wait(30)
                    with lock:
                        receiver.in_flight -= 1
                    answer = 200
                self.send_response(answer)
                if answer == 302:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                payload = b"ok" if answer < 300 else b"receiver says no"
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def verify_request(self, request, client_address):
                receiver.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        if context is not None:
            context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/aigc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Trickler:
    """A receiver that reads the request, then answers one byte a second, for as long as it is let."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.open = 0
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(sock,), daemon=True).start()

    def _trickle(self, sock) -> None:
        self.open += 1
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            )
            while len(body) < length:
                body += sock.recv(65536)
            answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"." * 100000
            for byte in answer:
                if self.stop.is_set():
                    break
                sock.sendall(bytes([byte]))
                time.sleep(1)
        except OSError:
            pass
        finally:
            self.open -= 1
            sock.close()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
