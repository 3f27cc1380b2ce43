"""A UDP DNS proxy that delays every answer (this kernel has no tc netem).

``python -m benchmarks.dns_delay --listen 127.0.84.54:53 --upstream 127.0.84.53:53
--delay 0.02``: each query is forwarded at once and its answer released
`delay` seconds after the query arrived, without holding up any other.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from typing import cast

from pentools.core.addresses import HostPort, parse_host_port
from pentools.core.sockets import size_receive_buffer

#: Hundreds of queries arrive at once; the default 208 KiB buffer holds ~270.
RECEIVE_BUFFER = 8 * 1024 * 1024


def _grow_receive_buffer(transport: asyncio.BaseTransport) -> None:
    size_receive_buffer(transport.get_extra_info("socket"), RECEIVE_BUFFER)


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, proxy: _Listener) -> None:
        self.proxy = proxy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _grow_receive_buffer(transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.proxy.answered(data)


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.transport: asyncio.DatagramTransport | None = None
        self.upstream: asyncio.DatagramTransport | None = None
        self.next_id = 0
        # proxy id -> (client's id, client address, arrival time)
        self.waiting: dict[int, tuple[bytes, tuple[str, int], float]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's transport (in 3.11 not a DatagramTransport subclass)
        self.transport = cast(asyncio.DatagramTransport, transport)
        _grow_receive_buffer(transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or self.upstream is None:
            return
        self.next_id = (self.next_id + 1) % 65536
        self.waiting[self.next_id] = (data[:2], addr, time.monotonic())
        self.upstream.sendto(self.next_id.to_bytes(2, "big") + data[2:])

    def answered(self, data: bytes) -> None:
        entry = self.waiting.pop(int.from_bytes(data[:2], "big"), None)
        if entry is None or self.transport is None:
            return
        client_id, client, arrived = entry
        wait = max(0.0, arrived + self.delay - time.monotonic())
        asyncio.get_running_loop().call_later(
            wait, self.transport.sendto, client_id + data[2:], client
        )


async def serve(listen: HostPort, upstream: HostPort, delay: float) -> None:
    loop = asyncio.get_running_loop()
    listener = _Listener(delay)
    await loop.create_datagram_endpoint(lambda: listener, local_addr=(listen.host, listen.port))
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Upstream(listener), remote_addr=(upstream.host, upstream.port)
    )
    listener.upstream = transport
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--delay", type=float, default=0.02)
    args = parser.parse_args()
    asyncio.run(serve(parse_host_port(args.listen), parse_host_port(args.upstream), args.delay))


if __name__ == "__main__":
    main()
