"""pen's front: the listening socket and what serves it, reopened by ``listen ADDRESS``.

The front is one of the transports of `pentools.pen.relays`: the plain
epoll relay, the TLS server or the UDP front.  Moving it
binds the new address first, so a refusal ("address in use", "permission
denied" after ``-u``) is a reply on the control port while pen goes on
listening where it was; the original exits then.  Open connections are
not touched (UDP sessions end: their replies came through the old socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Callable

from pentools.core.sockets import bind_socket
from pentools.pen.config import DEFAULT_BACKLOG, ListenSpec, PenConfig, parse_listen
from pentools.pen.relays.epoll import RawRelay
from pentools.pen.relays.tls import Downstream
from pentools.pen.relays.udp import serve_udp
from pentools.pen.state import State

log = logging.getLogger("pentools.pen")


def open_listener(
    spec: ListenSpec,
    what: str,
    *,
    udp: bool = False,
    backlog: int = DEFAULT_BACKLOG,
    reuse_port: bool = False,
) -> socket.socket:
    """The bound socket for `spec` (`pentools.core.sockets`); ListenError names `what`."""
    return bind_socket(
        spec.host,
        spec.port,
        path=spec.path,
        udp=udp,
        backlog=backlog,
        reuse_port=reuse_port,
        what=what,
    )


def describe(sock: socket.socket, spec: ListenSpec) -> str:
    """The address `sock` listens on, as the original's ``listen`` reply shows it."""
    if spec.path is not None:
        return spec.path
    host, port = sock.getsockname()[:2]
    if host == "::":
        host = "0.0.0.0"  # dual-stack "every address", as the original shows it
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Front:
    """The listening socket and its server; `reopen` moves it while pen runs."""

    def __init__(
        self,
        state: State,
        loop: asyncio.AbstractEventLoop,
        config: PenConfig,
        tls: ssl.SSLContext | None,
        sock: socket.socket,
    ) -> None:
        self.state = state
        self.loop = loop
        self.config = config
        self.tls = tls
        self.sock = sock
        self.spec = config.listen
        self.relay: RawRelay | None = None
        self.started = False
        self._stop_serving: Callable[[], None] = lambda: None
        state.listen_description = describe(sock, self.spec)

    async def start(self) -> None:
        """Serve the current socket."""
        self.started = True
        self._stop_serving = await self._serve(self.sock)

    async def _serve(self, sock: socket.socket) -> Callable[[], None]:
        """Serve `sock`; returns what stops serving it (open connections go on)."""
        state, loop = self.state, self.loop
        if self.config.udp:
            return await serve_udp(state, loop, sock)
        if self.tls is None:  # once: `reopen` hands the relay its next listener itself
            self.relay = RawRelay(state, loop, sock)
            return self.relay.stop
        server = await loop.create_server(
            lambda: Downstream(state, loop), sock=sock, ssl=self.tls, backlog=self.config.backlog
        )
        return server.close

    def reopen(self, text: str) -> str:
        """``listen [ADDR:]PORT``: listen there instead; the new address."""
        spec = parse_listen(text)
        if spec == self.spec:  # -F reread on HUP: nothing moves
            return self.state.listen_description
        sock = open_listener(
            spec, "listen address", udp=self.config.udp, backlog=self.config.backlog
        )
        old_sock, old_spec, stop_old = self.sock, self.spec, self._stop_serving
        self.sock, self.spec = sock, spec
        self.state.listen_description = describe(sock, spec)
        if not self.started:  # -F at start: the old socket was never served
            old_sock.close()
        elif self.tls is None and not self.config.udp:
            assert self.relay is not None
            self.relay.listen_on(sock)  # closes the old listener
        else:
            self.loop.create_task(self._switch(stop_old))
        if old_spec.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(old_spec.path)
        self.state.debug(f"listening on {self.state.listen_description}")
        return self.state.listen_description

    async def _switch(self, stop_old: Callable[[], None]) -> None:
        """TLS and UDP: serve the new socket, then stop serving the old one."""
        sock = self.sock
        try:
            stop_new = await self._serve(sock)
        except OSError as exc:
            log.error("cannot serve %s: %s", self.state.listen_description, exc)
            return
        stop_old()
        if self.sock is sock:
            self._stop_serving = stop_new
        else:  # moved again meanwhile
            stop_new()

    def stop(self) -> None:
        """TERM: stop listening; open connections go on."""
        self._stop_serving()
        self.sock.close()

    def close(self) -> None:
        """After the drain: release the relay's epoll set and a Unix socket's path."""
        if self.relay is not None:
            self.relay.close()
        if self.spec.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.spec.path)
