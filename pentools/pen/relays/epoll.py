"""The plain TCP relay: raw non-blocking sockets on pen's own epoll set.

Why not asyncio transports here: on uvloop each transport costs a Python
object, a weak-reference entry, getsockname + getpeername + TCP_NODELAY
system calls, a scheduled connection_made and, for the backend side, a
create_connection coroutine with its futures.  For a new connection per
request that was most of pen's CPU above the kernel's own work (issue 4).
Here a connection is one object and two sockets; events come from one
epoll set, itself watched by the event loop like any file descriptor, so
the control port, signals, UDP and the TLS path (`pentools.pen.relays.tls`)
keep working beside it.

Flow control is the original pen's: while bytes for one side wait in pen's
buffer, pen stops reading the other side.  The client is read only once
the backend connection is made, so its first bytes wait in the kernel.

Each event handler starts with the common case of an established
connection (readable, nothing buffered, nothing to record or rewrite):
one recv_into a shared buffer, one send, no allocation, no epoll change.
Everything else takes the general path below it.  (os.readv/os.write parse
their arguments faster, but the kernel's read/write path costs as much
more: measured even.)
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import logging
import os
import select
import socket
from collections.abc import Callable

from pentools.core.addresses import address_family
from pentools.pen.connection import ClientConnection, client_of, dump
from pentools.pen.proxyproto import proxy_header
from pentools.pen.state import State

log = logging.getLogger("pentools.pen")

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
#: The peer shut its side: with a short read, the read after it would only see EOF.
EPOLLRDHUP = select.EPOLLRDHUP
_READ = EPOLLIN | EPOLLRDHUP
_TROUBLE = select.EPOLLHUP | select.EPOLLERR
_SEND_FLAGS = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL
_RECV_FLAGS = socket.MSG_DONTWAIT
_CHUNK = 65536
#: While a poll finds at least _BUSY events, poll again (up to _ROUNDS times)
#: before going back to the event loop: fewer loop turns under load.
_ROUNDS = 4
_BUSY = 4
#: Accept errors that mean "out of resources": pause accepting instead of spinning.
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
#: The mask of a side taken out of the epoll set after a hang-up.
_DETACHED = -2
_SHUT_WR = socket.SHUT_WR
_STREAM = socket.SOCK_STREAM
_NONBLOCKING_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
_NEW_SOCKET = _socket.socket
#: The buffer of the fast path, shared by every connection: each read is
#: sent on (or copied out) before the next one.
_VIEW = memoryview(bytearray(_CHUNK))


class RawRelay:
    """The listener and every plain connection, driven by one epoll set."""

    def __init__(
        self, state: State, loop: asyncio.AbstractEventLoop, listener: socket.socket
    ) -> None:
        self.state = state
        self.loop = loop
        self._adopt(listener)
        self.epoll = select.epoll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        #: Sockets closed during a dispatch round, closed for real after it, so
        #: that no new socket reuses a descriptor that a pending event still names.
        self.closing: list[_socket.socket] = []
        self.dispatching = False
        self.accepting = False
        #: Accepting stopped because `pending_max` connection attempts are under way.
        self.waiting_for_connects = False
        #: Accepting stopped at the -x cap (``queue_at_conn_max``): clients wait
        #: in the listen queue; the timer refuses them after -t seconds.
        self.at_cap = False
        self.cap_timer: asyncio.TimerHandle | None = None
        #: Backend connections being made and when they time out, oldest first;
        #: one timer for all of them instead of one per connection.
        self.connecting: dict[RawConnection, float] = {}
        self.timer: asyncio.TimerHandle | None = None
        loop.add_reader(self.epoll.fileno(), self.dispatch)
        self.start_accepting()

    # -- the epoll set -------------------------------------------------------------

    def dispatch(self) -> None:
        handlers = self.handlers
        poll = self.epoll.poll
        closing = self.closing
        for _ in range(_ROUNDS):  # while busy, poll again before going back to the loop
            ready = poll(0, 512)
            self.dispatching = True
            try:
                for fd, events in ready:
                    handler = handlers.get(fd)
                    if handler is not None:
                        try:
                            handler(events)
                        except Exception as exc:  # a bug must cost one connection, not pen
                            self.report(exc, handler)
            finally:
                self.dispatching = False
                if closing:
                    for sock in closing:
                        sock.close()
                    closing.clear()
            if len(ready) < _BUSY:
                return

    def report(self, exc: Exception, handler: Callable[[int], None]) -> None:
        log.error("relay error: %r", exc)
        owner = getattr(handler, "__self__", None)
        if isinstance(owner, RawConnection):
            owner.close()

    def watch(self, fd: int, mask: int, handler: Callable[[int], None]) -> None:
        self.epoll.register(fd, mask)
        self.handlers[fd] = handler

    def forget(self, sock: _socket.socket) -> None:
        """Stop watching `sock` and close it (after the dispatch round)."""
        self.handlers.pop(sock.fileno(), None)
        if self.dispatching:
            self.closing.append(sock)  # closing removes it from the epoll set
        else:
            sock.close()

    # -- connect timeouts ------------------------------------------------------------

    def connect_started(self, connection: RawConnection, deadline: float) -> None:
        self.connecting[connection] = deadline
        if self.timer is None:
            self.timer = self.loop.call_at(deadline, self.expire)

    def connect_ended(self, connection: RawConnection) -> None:
        """A connection attempt is over (made, failed or given up): accept again if paused."""
        del self.connecting[connection]
        if self.waiting_for_connects and len(self.connecting) < self.state.settings.pending_max:
            self.waiting_for_connects = False
            self.start_accepting()

    def expire(self) -> None:
        """Fail the connection attempts whose time is up; wait for the next one.

        Deadlines are in start order, so this stops at the first one still to
        come (after penctl shortens the timeout, a few attempts may wait up to
        the old timeout).
        """
        self.timer = None
        connecting = self.connecting
        now = self.loop.time()
        expired = []
        for connection, deadline in connecting.items():
            if deadline > now:
                self.timer = self.loop.call_at(deadline, self.expire)
                break
            expired.append(connection)
        for connection in expired:
            connection.connect_failed()

    # -- accepting -------------------------------------------------------------------

    def start_accepting(self) -> None:
        if self.at_cap or self.waiting_for_connects:
            return
        if not self.accepting and self.listener.fileno() >= 0:
            self.accepting = True
            self.watch(self.listener.fileno(), EPOLLIN, self.accept)

    def stop(self) -> None:
        """TERM: close the listening socket; the open connections go on."""
        self.stop_accepting()
        self.listener.close()

    def listen_on(self, listener: socket.socket) -> None:
        """``listen ADDRESS``: accept on `listener` instead; the open connections go on."""
        self.stop()
        self._adopt(listener)
        self.start_accepting()

    def _adopt(self, listener: socket.socket) -> None:
        self.listener = listener
        self.family = listener.family
        self.tcp = listener.family in (socket.AF_INET, socket.AF_INET6)
        #: TCP_NODELAY as set on the listener: a connection inherits it when
        #: its handshake completes (one system call per setting, not one per
        #: connection).  After a change, the connections already waiting in
        #: the listen queue are set one by one until the queue is empty.
        self.listener_nodelay = False
        self.nodelay_queued = False
        if self.tcp:
            self.inherit_nodelay(self.state.settings.tcp_nodelay)

    def inherit_nodelay(self, nodelay: bool) -> None:
        """Give the connections accepted from now on penctl's ``tcp_nodelay``."""
        self.listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(nodelay))
        self.listener_nodelay = nodelay
        self.nodelay_queued = True

    def stop_accepting(self) -> None:
        if self.accepting:
            self.accepting = False
            fd = self.listener.fileno()
            self.handlers.pop(fd, None)
            self.epoll.unregister(fd)

    def accept(self, _events: int) -> None:
        state = self.state
        settings = state.settings
        accept = self.listener._accept  # type: ignore[attr-defined]
        table = state.table
        family = self.family
        access = state.selector.access
        connecting = self.connecting
        if self.tcp and self.listener_nodelay != settings.tcp_nodelay:
            self.inherit_nodelay(settings.tcp_nodelay)  # penctl changed it
        for _ in range(state.config.multi_accept):  # -m: a flood cannot starve the others
            if len(connecting) >= settings.pending_max:  # clients wait in the listen queue
                self.waiting_for_connects = True
                self.stop_accepting()
                return
            if settings.queue_at_conn_max and len(table) >= settings.conn_max:
                self.wait_for_room()
                return
            try:
                fd, peer = accept()
            except (BlockingIOError, InterruptedError):
                self.nodelay_queued = False
                return
            except OSError as exc:
                state.counters.accept_errors += 1
                if exc.errno in _EXHAUSTED:
                    state.debug(f"accept: {exc.strerror}; pausing for 0.1 s")
                    self.stop_accepting()
                    self.loop.call_later(0.1, self.start_accepting)
                    return
                continue  # the client gave up already (ECONNABORTED and the like)
            sock = _NEW_SOCKET(family, _STREAM, 0, fd)
            if self.nodelay_queued:  # queued before the listener's setting changed
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, self.listener_nodelay)
            if len(table) >= settings.conn_max:
                state.counters.refused += 1
                sock.close()
                continue
            client = client_of(peer)
            if access.active and self.tcp and not state.admits(client):
                sock.close()  # before a server is chosen: the client sees EOF
                continue
            if settings.conn_max_per_client and state.over_client_cap(client):
                sock.close()
                continue
            RawConnection(self, sock, peer, client)

    # -- waiting at the cap ----------------------------------------------------------

    def wait_for_room(self) -> None:
        """At the -x cap (``queue_at_conn_max``): leave new clients in the listen queue."""
        self.at_cap = True
        self.stop_accepting()
        self.state.table.when_removed = self.room_made
        self.cap_timer = self.loop.call_later(self.state.settings.timeout, self.queue_expired)

    def room_made(self) -> None:
        """A connection closed: accept again if that made room (or the cap was lifted)."""
        state = self.state
        settings = state.settings
        if settings.queue_at_conn_max and len(state.table) >= settings.conn_max:
            return
        state.table.when_removed = None
        self.at_cap = False
        if self.cap_timer is not None:
            self.cap_timer.cancel()
            self.cap_timer = None
        self.start_accepting()

    def queue_expired(self) -> None:
        """Still at the cap after -t seconds: refuse the clients queued now.

        So no client waits much longer than -t (two at most) in the queue;
        without ``queue_at_conn_max`` they are refused at once.
        """
        self.cap_timer = None
        self.room_made()
        if not self.at_cap or self.listener.fileno() < 0:
            return
        accept = self.listener._accept  # type: ignore[attr-defined]
        refused = 0
        while True:
            try:
                fd, _peer = accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in _EXHAUSTED:
                    break
                continue
            os.close(fd)
            refused += 1
        self.state.counters.refused += refused
        self.state.debug(f"at the cap for {self.state.settings.timeout:g} s: {refused} refused")
        self.cap_timer = self.loop.call_later(self.state.settings.timeout, self.queue_expired)

    def close(self) -> None:
        self.stop()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.cap_timer is not None:
            self.cap_timer.cancel()
            self.cap_timer = None
        if self.state.table.when_removed == self.room_made:
            self.state.table.when_removed = None
        self.loop.remove_reader(self.epoll.fileno())
        self.epoll.close()


class RawConnection(ClientConnection):
    """One client and its backend: two sockets, two buffers, two masks."""

    __slots__ = (
        "closed",
        "connecting",
        "down",
        "down_eof",
        "down_fd",
        "down_mask",
        "down_shut",
        "peer",
        "relay",
        "to_down",
        "to_up",
        "up",
        "up_eof",
        "up_fd",
        "up_mask",
        "up_shut",
    )

    def __init__(self, relay: RawRelay, sock: _socket.socket, peer: object, client: str) -> None:
        state = relay.state
        self.relay = relay
        self.state = state
        self.down = sock
        self.down_fd = sock.fileno()
        self.down_mask = -1  # not in the epoll set yet: read once the backend answers
        self.peer = peer
        self.client = client
        self.up: _socket.socket | None = None
        self.up_fd = -1
        self.up_mask = -1
        self.to_down = b""
        self.to_up = b""
        self.down_eof = self.up_eof = self.down_shut = self.up_shut = False
        self.connecting = False
        self.closed = False
        self.head = b""
        self.first_chunk = True
        self.http = False
        self.tried: list[int] = []
        self.server_index = -1
        state.table.add(self, relay.loop.time())  # TCP_NODELAY: inherited from the listener
        self.connect()

    # -- the backend connection ------------------------------------------------------

    def connect(self) -> None:
        """Choose a server (not one that failed already) and connect to it."""
        state = self.state
        settings = state.settings
        selector = state.selector
        now = self.relay.loop.time()
        index = selector.choose(self.client, now, self.tried)
        if index is None:
            state.counters.no_server += 1
            self.close()
            return
        self.server_index = index
        server = self.server = selector.server(index)
        self.client_entry = selector.clients.get(self.client) or state.orphan_client
        address = server.address
        try:
            up = _NEW_SOCKET(address_family(address), _NONBLOCKING_STREAM)
        except OSError as exc:  # out of descriptors: pen's trouble, not the server's
            state.debug(f"cannot open a socket to server {index}: {exc.strerror}")
            self.close()
            return
        if settings.tcp_nodelay:
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        source = settings.source_for(address)
        if source is not None:
            try:
                up.bind((source, 0))
            except OSError as exc:  # penctl checked it; the address went away since
                state.debug(f"cannot connect from {source}: {exc.strerror}")
                up.close()
                self.close()
                return
        self.up = up
        self.up_fd = up.fileno()
        result = up.connect_ex((address, server.port))
        if result == errno.EINPROGRESS:
            self.connecting = True
            self.up_mask = EPOLLOUT
            self.relay.watch(self.up_fd, EPOLLOUT, self.on_up)
            self.relay.connect_started(self, now + settings.timeout)
        elif result == 0:
            self.up_mask = 0
            self.relay.watch(self.up_fd, 0, self.on_up)
            self.connected()
        else:
            self.connect_failed()

    def connect_failed(self) -> None:
        """Refused or timed out: blacklist the server and try another."""
        state = self.state
        if self.connecting:
            self.connecting = False
            self.relay.connect_ended(self)
        state.selector.connect_failed(self.server_index, self.relay.loop.time())
        state.debug(f"connect to server {self.server_index} failed: blacklisted")
        self.tried.append(self.server_index)
        self.server_index = -1
        self.relay.forget(self.up)  # type: ignore[arg-type]
        self.up = None
        self.up_fd = self.up_mask = -1
        self.connect()

    def connected(self) -> None:
        version = self.state.settings.proxy_protocol
        if version:
            down = self.down
            self.send_up(proxy_header(version, self.peer, down.getsockname()))
        if not self.closed:
            # The client has most often sent its request while the server
            # connection was being made: read it now rather than a poll later.
            self.on_down(EPOLLIN)
        self.sync()

    # -- events ----------------------------------------------------------------------

    def on_down(self, events: int) -> None:
        if (
            events == EPOLLIN
            and not self.first_chunk
            and not self.head
            and not self.to_up
            and self.state.plain
        ):  # the common case, kept short: bytes from the client, nothing waiting
            try:
                size = self.down.recv_into(_VIEW, _CHUNK, _RECV_FLAGS)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            if size:
                self.active = True
                self.server.sent += size
                self.client_entry.sent += size
                try:
                    sent = self.up.send(_VIEW[:size], _SEND_FLAGS)  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    self.close()
                    return
                if sent == size:
                    return
                self.to_up = _VIEW[sent:size].tobytes()
            else:
                self.client_eof()
            self.sync()
            return
        if events & _TROUBLE and self.down_eof and self.trouble(True, events):
            return
        if events & EPOLLOUT and self.to_down:
            self.flush(True)
        if events & (_READ | _TROUBLE) and not self.down_eof and not self.closed:
            try:
                data = self.down.recv(_CHUNK, _RECV_FLAGS)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            if data:
                self.active = True
                self.forward(data)
                if events & EPOLLRDHUP and len(data) < _CHUNK:
                    self.client_eof()
            else:
                self.client_eof()
        if not self.closed:
            self.sync()

    def on_up(self, events: int) -> None:
        if events == EPOLLIN and not self.to_down and not self.connecting and self.state.plain:
            # the common case, kept short: bytes from the server, nothing waiting
            try:
                size = self.up.recv_into(_VIEW, _CHUNK, _RECV_FLAGS)  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            if size:
                self.active = True
                self.server.received += size
                self.client_entry.received += size
                try:
                    sent = self.down.send(_VIEW[:size], _SEND_FLAGS)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    self.close()
                    return
                if sent == size:
                    return
                self.to_down = _VIEW[sent:size].tobytes()
            else:
                self.server_eof()
            self.sync()
            return
        if self.connecting:
            self.connecting = False
            self.relay.connect_ended(self)
            if self.up.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):  # type: ignore[union-attr]
                self.connect_failed()
            else:
                self.connected()
            return
        if events & _TROUBLE and self.up_eof and self.trouble(False, events):
            return
        if events & EPOLLOUT and self.to_up:
            self.flush(False)
        if events & (_READ | _TROUBLE) and not self.up_eof and not self.closed:
            try:
                data = self.up.recv(_CHUNK, _RECV_FLAGS)  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            if data:
                self.active = True
                size = len(data)
                self.server.received += size
                self.client_entry.received += size
                dump(self.state, self, False, data)
                self.send_down(data)
                if events & EPOLLRDHUP and size < _CHUNK:
                    self.server_eof()
            else:
                self.server_eof()
        if not self.closed:
            self.sync()

    def trouble(self, down: bool, events: int) -> bool:
        """HUP or ERR on a side already at EOF, which epoll reports whatever the mask.

        An error, or a hang-up with bytes still to send to that side, ends
        the connection; a plain hang-up takes the side out of the epoll set
        (it has nothing more to say) so that it cannot wake pen in a loop.
        Returns True when the event needs no more handling.
        """
        if events & select.EPOLLERR or (self.to_down if down else self.to_up):
            self.close()
            return True
        fd = self.down_fd if down else self.up_fd
        mask = self.down_mask if down else self.up_mask
        if mask >= 0:
            self.relay.epoll.unregister(fd)
        if down:
            self.down_mask = _DETACHED
        else:
            self.up_mask = _DETACHED
        return True

    def client_eof(self) -> None:
        self.down_eof = True
        if self.state.settings.fastclose in ("down", "both"):
            self.up_eof = True  # tcp_fastclose: the client's close ends it all
        if self.head:  # the client gave up in the middle of a head: send what it sent
            head, self.head = self.head, b""
            self.send_up(head)
        self.finish()

    def server_eof(self) -> None:
        self.up_eof = True
        if self.state.settings.fastclose in ("up", "both"):
            self.down_eof = True  # tcp_fastclose: the server's close ends it all
        self.finish()

    def finish(self) -> None:
        """Pass each side's EOF on once its bytes are out; close when both are done."""
        if self.closed:
            return
        if self.down_eof and self.up_eof and not self.to_down and not self.to_up:
            self.close()
            return
        try:
            if self.down_eof and not self.to_up and not self.up_shut:
                self.up_shut = True
                self.up.shutdown(_SHUT_WR)  # type: ignore[union-attr]
            if self.up_eof and not self.to_down and not self.down_shut:
                self.down_shut = True
                self.down.shutdown(_SHUT_WR)
        except OSError:
            self.close()

    # -- sending -----------------------------------------------------------------------

    def send_up(self, data: bytes) -> None:
        if self.to_up:
            self.to_up += data
            return
        try:
            sent = self.up.send(data, _SEND_FLAGS)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(data):
            self.to_up = data[sent:]

    def send_down(self, data: bytes) -> None:
        if self.to_down:
            self.to_down += data
            return
        try:
            sent = self.down.send(data, _SEND_FLAGS)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(data):
            self.to_down = data[sent:]

    def flush(self, down: bool) -> None:
        """The socket has room again: send what waits for it."""
        sock, data = (self.down, self.to_down) if down else (self.up, self.to_up)
        try:
            sent = sock.send(data, _SEND_FLAGS)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if down:
            self.to_down = data[sent:]
        else:
            self.to_up = data[sent:]
        if sent == len(data):
            self.finish()

    def sync(self) -> None:
        """Bring both epoll masks in line with the state (no system call if unchanged)."""
        if self.closed:
            return
        want_down = 0 if self.down_eof or self.to_up else _READ
        if self.to_down:
            want_down |= EPOLLOUT
        if want_down != self.down_mask and self.down_mask != _DETACHED:
            if self.down_mask < 0:
                self.relay.watch(self.down_fd, want_down, self.on_down)
            else:
                self.relay.epoll.modify(self.down_fd, want_down)
            self.down_mask = want_down
        want_up = 0 if self.up_eof or self.to_down else _READ
        if self.to_up:
            want_up |= EPOLLOUT
        if want_up != self.up_mask and self.up_mask != _DETACHED:
            self.relay.epoll.modify(self.up_fd, want_up)
            self.up_mask = want_up

    # -- the end ---------------------------------------------------------------------------

    def upstream_port(self) -> int | None:
        return int(self.up.getsockname()[1]) if self.up is not None else None

    def status(self) -> tuple[int, int, int, int]:
        return (self.down_fd, self.up_fd, len(self.to_down), len(self.to_up))

    def connecting_now(self) -> bool:
        return self.connecting

    def closed_sides(self) -> tuple[bool, bool]:
        return self.up_eof, self.down_eof

    def close(self) -> None:
        """Close both sides and give back the server slot.

        Bytes still waiting in pen's buffers (a peer that reset, or TERM's
        drain running out) are dropped, as closing a transport would not.
        """
        if self.closed:
            return
        self.closed = True
        state = self.state
        if self.connecting:
            self.connecting = False
            self.relay.connect_ended(self)
        if self.server_index >= 0:
            state.selector.release(self.server_index)
        relay = self.relay
        relay.forget(self.down)
        if self.up is not None:
            relay.forget(self.up)
        state.table.remove(self)
