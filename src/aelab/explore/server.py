"""`aelab explore RUN`: a local web server over one trained run, and the page it serves.

The standard library's ThreadingHTTPServer is enough for one user's browser on this
machine, and adds nothing to install: the page is one static file (page.html, plain
HTML and JavaScript, nothing loaded from the network), and the answers are small JSON
objects that explorer.py computes with the model, one request at a time.

    GET  /                       the page
    GET  /api/info               the run: settings, metrics, code size, labels, sliders
    GET  /api/points?axes=pca    the test codes in a plane ('pca' or 'I,J'), with the plane's axes
    GET  /api/image?index=N      test image N, its reconstruction and code
    POST /api/decode             {"z": [...], "label": y, "all_labels": true}
    POST /api/random             {"seed": s, "label": y}: a code from the prior
    POST /api/interpolate        {"from": i, "to": j, "steps": n, "label": y}
    POST /api/channel            {"index": i, "sigma": s, "seed": k}: a noisy code decoded, its PSNR

A bad request gets a 4xx answer {"error": "one line"}; the server goes on. No request names
a file: the page is read once from the package, and the run's files when the server starts.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from urllib.parse import parse_qsl, urlsplit

from aelab.errors import AelabError
from aelab.explore.session import BadRequest, Explorer

BODY_LIMIT = 1 << 20  # bytes of a request body (a 64x64x16 code as JSON is about 20 KB)


def _no_constants(name: str):
    raise BadRequest(f"{name} is not a number JSON allows")


class Handler(BaseHTTPRequestHandler):
    server_version = "aelab-explore"
    explorer: Explorer  # set on the subclass made by make_server
    page: bytes
    quiet = True

    def do_GET(self):  # noqa: N802 (the standard library's name)
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            return self._send(HTTPStatus.OK, self.page, "text/html; charset=utf-8")
        routes = {"/api/info": lambda q: self.explorer.info(), "/api/points": self.explorer.points,
                  "/api/image": self.explorer.image}
        self._answer(routes, url.path, lambda: dict(parse_qsl(url.query, keep_blank_values=True)))

    def do_POST(self):  # noqa: N802
        routes = {"/api/decode": self.explorer.decode, "/api/random": self.explorer.random,
                  "/api/interpolate": self.explorer.interpolate, "/api/channel": self.explorer.channel}
        self._answer(routes, urlsplit(self.path).path, self._body)

    def _body(self):
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise BadRequest("Content-Length: missing or not a number") from None
        if not 0 <= length <= BODY_LIMIT:
            raise _TooLarge(f"the request body may hold at most {BODY_LIMIT} bytes, not {length}")
        raw = self.rfile.read(length)
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
        except BadRequest:  # NaN or Infinity, from _no_constants
            raise
        except ValueError as e:  # UnicodeDecodeError and json's errors alike
            raise BadRequest(f"the request body is not JSON: {' '.join(str(e).split())[:80]}") from None

    def _answer(self, routes, path: str, request):
        handle = routes.get(path)
        if handle is None:
            other = "GET" if self.command == "POST" else "POST"
            if path in _ROUTES[other]:
                return self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {other}, not {self.command}")
            return self._error(HTTPStatus.NOT_FOUND, f"no such address: {path[:80]}")
        try:
            answer = handle(request())
        except _TooLarge as e:
            return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(e))
        except BadRequest as e:
            return self._error(HTTPStatus.BAD_REQUEST, str(e))
        except Exception as e:  # noqa: BLE001 - one failing request must not stop the server
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {' '.join(str(e).split())[:200]}")
        self._send(HTTPStatus.OK, json.dumps(answer, allow_nan=False).encode(), "application/json")

    def _error(self, status: HTTPStatus, message: str):
        self.close_connection = True  # the body of a refused request may not have been read
        self._send(status, json.dumps({"error": message}).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - the standard library's signature
        if not self.quiet:
            super().log_message(format, *args)


class _TooLarge(BadRequest):
    pass


_ROUTES = {"GET": {"/api/info", "/api/points", "/api/image"},
           "POST": {"/api/decode", "/api/random", "/api/interpolate", "/api/channel"}}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # the standard library's 5 drops connections of a few clients at once (1 s retries)


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 8000, quiet: bool = True) -> Server:
    """A server over `explorer`, bound but not yet serving (port 0: any free port)."""
    page = files("aelab.explore").joinpath("page.html").read_bytes()
    handler = type("ExploreHandler", (Handler,), {"explorer": explorer, "page": page, "quiet": quiet})
    try:
        return Server((host, port), handler)
    except OSError as e:
        raise AelabError(f"--host {host} --port {port}: cannot listen there: {e.strerror or e}") from None


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(run_path: str, host: str, port: int, verbose: bool = False) -> int:
    from aelab.runs.rundir import RunDir

    if not 0 <= port <= 65535:
        raise AelabError(f"--port: {port} is out of range 0-65535")
    run = RunDir.open(run_path)
    start = time.perf_counter()
    explorer = Explorer(run)
    server = make_server(explorer, host, port, quiet=not verbose)
    where = server.server_address
    shown = f"[{where[0]}]" if ":" in where[0] else where[0]
    print(f"{run.path}: {explorer.cfg.model.short} with a {explorer.dim}-number code, {explorer.n_test} test images "
          f"(loaded in {time.perf_counter() - start:.1f} s)", file=sys.stderr)
    if not loopback(host):
        print(f"note: listening on {host}, not only this machine: anyone who can reach it can use the explorer",
              file=sys.stderr)
    print(f"exploring at http://{shown}:{where[1]}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
