"""The gunicorn worker: gthread, except that no thread waits on a client that is still sending.

Stock gthread hands a connection to a request thread as soon as its first bytes arrive; a client that
sends half a request and stops then holds that thread for as long as it keeps the socket open, and a few
such clients take every thread (`/health` included). Here the worker's main loop, which already polls
every socket, reads each request in full (head and body, without blocking) before a thread takes it.
A request that is not complete within `read_timeout` seconds of its connection becoming readable (or of
being accepted) gets 408 and is closed. Idle and slow clients then cost one socket each, not a thread.
"""

from __future__ import annotations

import errno
import logging
import resource
import selectors
import time
from functools import partial

from gunicorn.workers.gthread import ThreadWorker

__all__ = ["BufferingWorker", "worker_class", "request_complete", "MAX_CONNECTIONS"]

log = logging.getLogger(__name__)

# Open connections per worker; far more than threads, since waiting ones cost only a socket.
MAX_CONNECTIONS = 10_000
# A request head larger than this is handed to the parser, which refuses it.
_MAX_HEAD = 1 << 20
_TIMEOUT_REPLY = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_BUSY_REPLY = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n"
               b"Content-Length: 0\r\n\r\n")


def _headers(head: bytes) -> dict[bytes, bytes]:
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    return fields


def _chunked_end(buf: bytes, pos: int, limit: int) -> bool | None:
    """Whether a chunked body starting at `pos` is complete (True), incomplete (False) or broken (None)."""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return False if len(buf) - pos < 1024 else None
        try:
            size = int(buf[pos:eol].split(b";")[0].strip(), 16)
        except ValueError:
            return None
        if size == 0:
            # The last chunk: trailer fields (usually none), then an empty line.
            return buf.startswith(b"\r\n", eol + 2) or buf.find(b"\r\n\r\n", eol) >= 0
        pos = eol + 2 + size + 2
        if size < 0 or pos > limit:
            return None
        if pos > len(buf):
            return False
        if buf[pos - 2:pos] != b"\r\n":
            return None


def _expects_continue(buf: bytes) -> bool:
    end = buf.find(b"\r\n\r\n")
    return end >= 0 and _headers(buf[:end]).get(b"expect", b"").lower() == b"100-continue"


def request_complete(buf: bytes, max_body: int) -> bool:
    """Whether `buf` holds a whole request, or enough to know it is bad or too large (the parser and the
    app answer those without waiting on the client)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return len(buf) > _MAX_HEAD
    fields = _headers(buf[:end])
    start = end + 4
    if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
        return _chunked_end(buf, start, start + max_body + (1 << 16)) is not False
    try:
        length = int(fields.get(b"content-length", b"0"))
    except ValueError:
        return True
    return length < 0 or length > max_body or len(buf) - start >= length


class BufferingWorker(ThreadWorker):
    """A gthread worker whose main loop reads whole requests before a thread serves them."""

    read_timeout = 30.0
    max_body = 16 << 20
    # Bytes of unfinished requests held at once, over all connections; past it a sender gets 503.
    max_buffered = 256 << 20

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reading = {}
        self.buffered = 0

    def init_process(self):
        # Keep a margin of descriptors for the model, snapshot files and logs.
        self.worker_connections = min(self.worker_connections, _raise_open_files_limit() - 128)
        super().init_process()

    def enqueue_req(self, conn):
        """Every path to a thread (new, kept-alive and pipelining connections) reads the request first."""
        if getattr(conn, "ready", False):
            conn.ready = False
            super().enqueue_req(conn)
            return
        held = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        conn.sock.setblocking(False)
        conn.request = bytearray(held)
        self.buffered += len(held)
        self.reading[conn] = time.monotonic() + self.read_timeout
        if held and request_complete(bytes(held), self.max_body):
            self._dispatch(conn, registered=False)
            return
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def accept(self, listener):
        try:
            super().accept(listener)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            # Out of descriptors: leave the connection in the backlog until some close.
            log.warning("out of file descriptors with %d connections open", self.nr_conns)

    def _on_readable(self, conn, sock):
        try:
            data = sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        conn.request += data
        self.buffered += len(data)
        if self.buffered > self.max_buffered:
            log.warning("%d bytes of unfinished requests held; refusing one with 503", self.buffered)
            self._drop(conn, _BUSY_REPLY)
            return
        if request_complete(bytes(conn.request), self.max_body):
            self._dispatch(conn, registered=True)
        elif not getattr(conn, "continued", False) and _expects_continue(bytes(conn.request)):
            # The client waits for this before it sends the body (the parser would send it too late).
            conn.continued = True
            try:
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            except OSError:
                pass

    def _dispatch(self, conn, registered: bool):
        if registered:
            self.poller.unregister(conn.sock)
        del self.reading[conn]
        self.buffered -= len(conn.request)
        conn.data_ready = True
        conn.ready = True
        self.enqueue_req(conn)

    def handle(self, conn):
        conn.sock.setblocking(True)
        conn.init()
        conn.parser.unreader.unread(bytes(conn.request))
        conn.request = bytearray()
        return super().handle(conn)

    def _drop(self, conn, reply: bytes = b""):
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        if self.reading.pop(conn, None) is not None:
            self.buffered -= len(conn.request)
        if reply:
            try:
                conn.sock.send(reply)
            except OSError:
                pass
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        """Also close connections whose request did not arrive in time (all of them when stopping)."""
        super().murder_pending()
        now = time.monotonic()
        for conn, deadline in list(self.reading.items()):
            if deadline <= now or not self.alive:
                self._drop(conn, _TIMEOUT_REPLY if conn.request else b"")


def _raise_open_files_limit() -> int:
    """Raise this process's descriptor limit towards MAX_CONNECTIONS (never past the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS + 256
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted if soft == resource.RLIM_INFINITY else soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def worker_class(max_body: int, read_timeout: float = 30.0,
                 max_buffered: int | None = None) -> type[BufferingWorker]:
    """Return the worker class with this server's body limit, request read timeout and buffer cap (default:
    256 MiB, and room for at least two largest bodies)."""
    cap = max_buffered if max_buffered is not None else max(BufferingWorker.max_buffered, 2 * max_body + _MAX_HEAD)
    return type("SuperlinearWorker", (BufferingWorker,),
                {"max_body": max_body, "read_timeout": read_timeout, "max_buffered": cap})
