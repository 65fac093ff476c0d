"""The HTTP listener: uvicorn (h11) on its own thread and event loop, bounded so that idle or slow clients cannot
starve it: a connection cap answered with 503, a deadline for each request head, a keep-alive timeout, a listen
backlog, and the process's descriptor limit raised to its hard limit. Collection never runs on this thread."""

from __future__ import annotations

import asyncio
import resource
import socket
import threading
from typing import Any

import structlog
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["WebServer", "bind", "raise_descriptor_limit"]

log = structlog.get_logger("collector.http")


class _HeadDeadlineProtocol(H11Protocol):
    """h11 as uvicorn runs it, plus a deadline for the request head: uvicorn's keep-alive timer starts only after a
    response, so a connection that never sends a request (or sends it a byte at a time) would stay open forever."""

    header_timeout_seconds = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_deadline()

    def _arm_head_deadline(self) -> None:
        armed_for = self.cycle
        self.loop.call_later(self.header_timeout_seconds, self._head_deadline, armed_for)

    def _head_deadline(self, armed_for: Any) -> None:
        """No new request head arrived since the deadline was armed: close."""
        if self.cycle is armed_for and not self.transport.is_closing():
            self.transport.close()


def raise_descriptor_limit() -> int:
    """Raise the soft limit on open descriptors to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            log.warning("descriptor_limit_not_raised", soft=soft, hard=hard)
    return soft


def bind(host: str, port: int, backlog: int) -> socket.socket:
    """Bind and listen now, so a taken address fails before anything else starts (raises OSError)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class WebServer:
    """One ASGI app on one bound socket, served from a thread of its own."""

    def __init__(
        self,
        app: Any,
        sock: socket.socket,
        *,
        max_connections: int,
        backlog: int,
        header_timeout_seconds: float,
        keep_alive_timeout_seconds: float,
    ) -> None:
        self.sock = sock
        limit = raise_descriptor_limit()
        protocol = type(
            "HeadDeadlineProtocol", (_HeadDeadlineProtocol,), {"header_timeout_seconds": header_timeout_seconds}
        )
        config = uvicorn.Config(
            app,
            http=protocol,
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            access_log=False,
            server_header=False,
            # every connection holds a descriptor: keep some for the database, the sources and the log
            limit_concurrency=max(16, min(max_connections, limit - 256)),
            backlog=backlog,
            timeout_keep_alive=max(1, round(keep_alive_timeout_seconds)),
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.should_exit = True
            self.thread.join(timeout=10)
        self.sock.close()
