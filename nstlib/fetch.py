"""Downloading an image from an ``http(s)://`` URL: one deadline for the whole transfer, a size cap.

A per-read socket timeout alone is not enough: a server that trickles a byte every few seconds
(or sends its headers slowly) never trips it. Here a watchdog shuts the connection's sockets
down when the deadline passes, whatever phase the transfer is in (headers, body, redirects).
"""
from __future__ import annotations

import http.client
import re
import socket
import ssl
import threading
import urllib.error
import urllib.request

from .errors import ImageError

__all__ = ["download", "is_url", "URL_DEADLINE", "MAX_DOWNLOAD_BYTES"]

URL_DEADLINE = 30.0  # seconds for the whole download: connect, headers and body
READ_TIMEOUT = 20.0  # seconds any single connect or read may take (within the deadline)
MAX_DOWNLOAD_BYTES = 64 * 2**20
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")


def is_url(text: str) -> bool:
    """Whether ``text`` starts with a URL scheme (``http://``, ``HTTPS://``, ``ftp://``, ...).

    One-letter schemes are not URLs: ``C://photos`` is a Windows path."""
    return bool(_SCHEME.match(text))


class _Watch:
    """The sockets one download opened; :meth:`expire` shuts them all down (and any opened later)."""

    def __init__(self) -> None:
        self.socks: list[socket.socket] = []
        self.expired = False
        self.lock = threading.Lock()

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            self.socks.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self.socks:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:  # the plain socket's shutdown (also under TLS): a blocked recv returns at once
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _opener(watch: _Watch) -> urllib.request.OpenerDirector:
    """urllib's default opener, with connections that register their sockets with ``watch``."""
    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            watch.add(self.sock)

    class TLSConn(http.client.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            watch.add(self.sock)

    class Handler(urllib.request.HTTPHandler):
        def http_open(self, req):  # type: ignore[no-untyped-def]
            return self.do_open(Conn, req)

    context = ssl.create_default_context()  # what urllib uses by default: certificates verified

    class TLSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):  # type: ignore[no-untyped-def]
            return self.do_open(TLSConn, req, context=context)

    return urllib.request.build_opener(Handler, TLSHandler)


def download(url: str, deadline: float | None = None, max_bytes: int | None = None) -> bytes:
    """The bytes at ``url`` (http or https, any letter case), fetched within ``deadline`` seconds
    (default :data:`URL_DEADLINE`) and at most ``max_bytes`` long (default :data:`MAX_DOWNLOAD_BYTES`).

    Raises:
        ImageError: another scheme, a network or HTTP error, the deadline passed, the file is
            larger than the cap, or it is empty; the message names the URL and the limit.
    """
    deadline = URL_DEADLINE if deadline is None else float(deadline)
    max_bytes = MAX_DOWNLOAD_BYTES if max_bytes is None else int(max_bytes)
    scheme = _SCHEME.match(url)
    if not scheme or scheme.group(1).lower() not in ("http", "https"):
        raise ImageError(f"cannot load {url!r}: only http:// and https:// addresses are fetched; "
                         "download the file yourself and pass its path")
    too_big = (f"image {url!r} is larger than the {max_bytes / 2**20:g} MB download limit; "
               "download it yourself, shrink it and pass the file path")
    slow = (f"downloading {url!r} did not finish within the {deadline:g} s limit for the whole "
            "transfer (the server is too slow or stalled); download it yourself and pass the file path")
    watch = _Watch()
    timer = threading.Timer(deadline, watch.expire)
    timer.daemon = True
    timer.start()
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "nstlib"})
        with _opener(watch).open(req, timeout=min(READ_TIMEOUT, deadline)) as r:
            length = r.headers.get("Content-Length", "")
            if length.strip().isdigit() and int(length) > max_bytes:
                raise ImageError(too_big + f" (the server announces {int(length) / 2**20:.1f} MB)")
            chunks, total = [], 0
            while True:
                chunk = r.read1(2**16)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise ImageError(too_big)
                chunks.append(chunk)
    except ImageError:
        raise
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
        if watch.expired:
            raise ImageError(slow) from None
        reason = f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
        raise ImageError(f"could not download image {url!r} ({reason}); check the address and "
                         "your connection, or download it yourself and pass the file path") from None
    finally:
        timer.cancel()
    if watch.expired:  # a socket shut down by the watchdog reads as a normal end of data
        raise ImageError(slow)
    data = b"".join(chunks)
    if not data:
        raise ImageError(f"image {url!r} downloaded as 0 bytes; check the address")
    return data
