"""The HTTP layer: a threading HTTP/1.1 server on loopback that speaks the wire format of
contract section 1 (auth, version, betas, `request-id` on every response, the error
envelope) and hands each call to the service. Injected HTTP faults are decided here."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from runner import log
from runner.emulator import endpoints, errors, framing
from runner.emulator.config import HttpFault
from runner.emulator.params import Context
from runner.emulator.service import Service

CHUNK_BYTES = 1 << 20  # results are written in ~1 MB chunks: few syscalls, flat memory
CONTROL = ("clock_advance", "stats")
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
COUNT_TOKENS_MAX_BYTES = 32 * 1024 * 1024  # same 2^20 reading of "MB" as max_body_bytes


class EmulatorServer(ThreadingHTTPServer):
    """Tracks open connections so that closing the server also ends idle keep-alive
    connections the SDK's pool holds, instead of waiting for clients to hang up."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], service: Service, api_key: str | None, verbose: bool
    ) -> None:
        self.service = service
        self.api_key = api_key
        self.verbose = verbose
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets or stalls its connection between requests is not an error
        of the emulator's: no traceback on stderr for it."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._open_lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):  # already closed by the client
                    sock.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, delayed ACKs add ~40 ms.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        # A client that stops sending (or never sends) gives up its thread after this long,
        # like the real API's front end, instead of holding it forever.
        self.connection.settimeout(self.server.service.config.read_timeout_s)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")  # no such endpoint: answered with the API's 404 envelope

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged through structlog in `_handle` instead."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors the stdlib raises itself (an unsupported method such as HEAD or OPTIONS, a
        malformed request line) get the API's JSON envelope and a `request-id` too, never
        the stdlib's HTML page (contract 1.3: request-id on every response)."""
        self.request_id = _request_id()
        self.close_connection = True  # the request may be unread or unparsable
        kind = errors.TYPE_OF_STATUS.get(code) or (
            "api_error" if code >= 500 else "invalid_request_error"
        )
        error = errors.ApiError(code, kind, message or f"HTTP {code}")
        if self.command == "HEAD":  # a HEAD answer has headers only
            self.send_response(code)
            self._common_headers()
            self.send_header("connection", "close")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        self._send_json(code, error.body(self.request_id), {"connection": "close"})

    def _handle(self, method: str) -> None:
        started = time.perf_counter()
        self.request_id = _request_id()
        url = urlsplit(self.path)
        status, endpoint = 500, "?"
        try:
            # The body is read first so that an early error never leaves unread bytes on a
            # keep-alive connection.
            body = self._read_body(self._body_limit(url.path))
            endpoint, item_id = endpoints.route(method, url.path)
            if endpoint not in CONTROL:
                self._authenticate()
            status = self._dispatch(endpoint, item_id, body, parse_qs(url.query))
        except errors.ApiError as exc:
            status = exc.status
            self._try_send(exc)
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (for example it abandoned a results stream): normal.
            self.close_connection = True
            status = 499
        except TimeoutError:
            self.close_connection = True  # a body left half read: this connection is done
            status = 408
            self._try_send(errors.ApiError(408, "timeout_error", "Request body read timed out"))
        except Exception:
            log.get("batchrun.emulator").exception("emulator bug", path=url.path)
            self.close_connection = True  # a response may be half written: start afresh
            status = 500
            self._try_send(errors.ApiError(500, "api_error", "Internal emulator error"))
        self._log(method, url.path, endpoint, status, started)

    def _try_send(self, exc: errors.ApiError) -> None:
        """Answer with the error envelope, unless the client has gone or stopped reading."""
        try:
            self._send_error(exc)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _log(self, method: str, path: str, endpoint: str, status: int, started: float) -> None:
        # In-process emulators (tests, `run --emulate`) stay quiet: their requests are the
        # runner's own and would interleave with its log.
        if not self.server.verbose:
            return
        log.get("batchrun.emulator").info(
            "request",
            method=method,
            path=path,
            endpoint=endpoint,
            status=status,
            ms=round((time.perf_counter() - started) * 1000, 1),
            request_id=self.request_id,
        )

    # -- request ---------------------------------------------------------------------------

    def _authenticate(self) -> None:
        key = self.headers.get("x-api-key") or ""
        bearer = self.headers.get("authorization") or ""
        if not key and bearer.lower().startswith("bearer "):
            key = bearer[7:].strip()
        expected = self.server.api_key
        if not key or (expected is not None and key != expected):
            raise errors.ApiError(401, "authentication_error", "invalid x-api-key")
        if not self.headers.get("anthropic-version"):
            raise errors.invalid("anthropic-version: header is required")

    def _read_body(self, limit: int) -> bytes:
        try:
            return framing.read_body(self.rfile, self.headers, limit)
        except errors.ApiError:
            self.close_connection = True  # the body's end is unknown, or not worth reading
            raise

    def _body_limit(self, path: str) -> int:
        # count_tokens has the Messages API's 32 MB limit (contract 2.7), not the batch one.
        if path == COUNT_TOKENS_PATH:
            return COUNT_TOKENS_MAX_BYTES
        return self.server.service.config.max_body_bytes

    def _context(self) -> Context:
        betas = frozenset(
            b.strip()
            for value in self.headers.get_all("anthropic-beta") or []
            for b in value.split(",")
            if b.strip()
        )
        version = self.headers.get("anthropic-version") or ""
        return Context(version, betas, self.headers.get("anthropic-user-profile-id"))

    def _origin(self) -> str:
        host = self.headers.get("host")
        if not host:
            addr, port = self.server.server_address[:2]
            host = f"{addr!s}:{port}"
        return f"http://{host}"

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(
        self, endpoint: str, item_id: str | None, body: bytes, query: dict[str, list[str]]
    ) -> int:
        service = self.server.service
        if endpoint not in CONTROL:
            fault = service.faults.http_fault(endpoint)
            service.count_call(endpoint, fault is not None)
            if fault is not None:
                raise _fault_error(fault, endpoint)
        origin = self._origin()
        if endpoint == "create":
            batch, fail = service.create(body, self._context(), origin)
            if fail:
                raise errors.ApiError(
                    500,
                    "api_error",
                    "Internal server error (emulated: the batch was created before this failure)",
                )
            return self._send_json(200, batch)
        if endpoint == "results":
            assert item_id is not None
            return self._send_results(service.results(item_id))
        return self._send_json(200, self._simple(endpoint, item_id, body, query, origin))

    def _simple(
        self,
        endpoint: str,
        item_id: str | None,
        body: bytes,
        query: dict[str, list[str]],
        origin: str,
    ) -> dict[str, Any]:
        service = self.server.service
        if endpoint == "list":
            limit = endpoints.int_param(query, "limit", 20)
            after, before = endpoints.first(query, "after_id"), endpoints.first(query, "before_id")
            return service.list(limit, after, before, origin)
        if endpoint == "count_tokens":
            return endpoints.count_tokens(body, self._context())
        if endpoint == "models":
            return endpoints.models(item_id, query)
        if endpoint == "stats":
            return service.stats()
        if endpoint == "clock_advance":
            service.advance(endpoints.advance_seconds(body))
            return {"clock_offset_s": service.clock.offset, "emulated_now": service.clock.now()}
        assert item_id is not None
        if endpoint == "retrieve":
            return service.retrieve(item_id, origin)
        if endpoint == "cancel":
            return service.cancel(item_id, origin)
        return service.delete(item_id)

    # -- responses -------------------------------------------------------------------------

    def _common_headers(self) -> None:
        self.send_header("request-id", self.request_id)
        self.send_header("anthropic-organization-id", "emulated-org")

    def _send_json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> int:
        data = orjson.dumps(payload)
        self.send_response(status)
        self._common_headers()
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return status

    def _send_error(self, exc: errors.ApiError) -> None:
        self._send_json(exc.status, exc.body(self.request_id), exc.headers)

    def _send_results(self, lines: Iterator[bytes]) -> int:
        truncate = self.server.service.faults.truncate_results()
        self.send_response(200)
        self._common_headers()
        self.send_header("content-type", "application/binary")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        if truncate:
            self._write_truncated(lines)
            return 200
        buffer: list[bytes] = []
        size = 0
        for line in lines:
            buffer.append(line)
            size += len(line) + 1
            if size >= CHUNK_BYTES:
                self._write_chunk(b"\n".join(buffer) + b"\n")
                buffer, size = [], 0
        if buffer:
            self._write_chunk(b"\n".join(buffer) + b"\n")
        self.wfile.write(b"0\r\n\r\n")
        return 200

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))

    def _write_truncated(self, lines: Iterator[bytes]) -> None:
        """Send about half the lines, then half a line, then drop the connection: the SDK's
        reader raises httpx2.RemoteProtocolError (contract 11.2)."""
        every = list(lines)
        keep = every[: len(every) // 2]
        cut = every[len(every) // 2]
        data = b"".join(line + b"\n" for line in keep) + cut[: max(1, len(cut) // 2)]
        self.wfile.write(b"%x\r\n" % (len(data) + len(cut)))
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


def _request_id() -> str:
    return "req_emu" + uuid.uuid4().hex[:24]


def _fault_error(fault: HttpFault, endpoint: str) -> errors.ApiError:
    kind = errors.TYPE_OF_STATUS.get(fault.status)
    if kind is None:
        kind = "api_error" if fault.status >= 500 else "invalid_request_error"
    headers = {}
    if fault.retry_after is not None:
        headers["retry-after"] = _number(fault.retry_after)
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = _number(fault.retry_after_ms)
    if fault.should_retry is not None:
        headers["x-should-retry"] = "true" if fault.should_retry else "false"
    message = f"Emulated {kind} on {endpoint} (http_faults)"
    details = {"error_code": fault.error_code} if fault.error_code else None
    return errors.ApiError(fault.status, kind, message, headers, details)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)
