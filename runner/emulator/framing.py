"""Reading a request body as the API's front end would: framed by one plain
`Content-Length` or by chunked encoding, never both, never past the limit. A malformed
frame is a 400 and an oversized body a 413 (`errors.ApiError`, with the API's envelope),
never a 500; after any of them the connection is closed, as the end of the body is not
known (or not worth reading)."""

from __future__ import annotations

from email.message import Message
from io import BufferedIOBase

from runner.emulator import errors

DRAIN_BYTES = 1 << 20


def read_body(rfile: BufferedIOBase, headers: Message, limit: int) -> bytes:
    """The body of the request whose `headers` were read from `rfile`."""
    lengths = headers.get_all("content-length") or []
    chunked = "chunked" in (headers.get("transfer-encoding") or "").lower()
    if chunked and lengths:
        raise errors.invalid("Content-Length and Transfer-Encoding: chunked together")
    if chunked:
        return _read_chunked(rfile, limit)
    if len(set(lengths)) > 1:
        raise errors.invalid("Content-Length: given twice with different values")
    text = lengths[0].strip() if lengths else "0"
    if not text.isdigit() or not text.isascii():
        raise errors.invalid(f"Content-Length: {text[:40]!r} is not a number of bytes")
    length = int(text)
    if length > limit:
        drain(rfile, min(length, limit))
        raise too_large()
    # One read of the whole body: the fastest way in, and a single copy in memory.
    body = rfile.read(length) if length else b""
    if len(body) < length:
        raise errors.invalid("the request body ended before its Content-Length")
    return body


def _read_chunked(rfile: BufferedIOBase, limit: int) -> bytes:
    """A chunked request body (SDK callers that pass a generator as `content`). Past
    `limit` the rest is drained, not kept, so an oversized body costs no memory."""
    parts: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline().split(b";")[0].strip()
        try:
            size = int(line or b"0", 16)
        except ValueError:
            raise errors.invalid("Transfer-Encoding: chunked: bad chunk size") from None
        if size == 0:
            while rfile.readline().strip():  # trailers end with an empty line
                pass
            if total > limit:
                raise too_large()
            return b"".join(parts)
        total += size
        if total > limit:
            parts.clear()
            drain(rfile, size)
        else:
            parts.append(rfile.read(size))
        rfile.readline()


def drain(rfile: BufferedIOBase, length: int) -> None:
    """Read and drop `length` bytes: the client then sees the 413 instead of a reset while
    it is still sending; one that stops sending is not waited for past the read timeout."""
    try:
        while length > 0:
            chunk = rfile.read(min(length, DRAIN_BYTES))
            if not chunk:
                break
            length -= len(chunk)
    except TimeoutError:
        return


def too_large() -> errors.ApiError:
    return errors.ApiError(
        413, "request_too_large", "Request exceeds the maximum allowed number of bytes."
    )
