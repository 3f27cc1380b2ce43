"""A tiny HTTP backend for pen's end-to-end tests (run as a subprocess).

    python -m tests.pen.backend HOST PORT NAME

Answers every request head with ``200`` and a body of NAME, a newline and
the head exactly as received (so tests see what pen forwarded, e.g.
X-Forwarded-For or a PROXY protocol line); keeps connections alive.
Prints ``ready`` on stdout once it listens.
"""

from __future__ import annotations

import asyncio
import sys


async def handle(name: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    prefix = b""
    try:
        # a PROXY protocol v2 header holds CRLFCRLF itself: take it whole, by its length
        signature = b"\r\n\r\n\x00\r\nQUIT\n"
        start = await reader.read(1)
        if start == signature[:1]:
            start += await reader.readexactly(15)
            if start[:12] == signature:
                start += await reader.readexactly(int.from_bytes(start[14:16], "big"))
                prefix, start = start, b""
        while True:
            try:
                head = start + await reader.readuntil(b"\r\n\r\n")
                head, prefix, start = prefix + head, b"", b""
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                break
            body = name + b"\n" + head
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(host: str, port: int, name: str) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(name.encode(), r, w), host, port, reuse_address=True, backlog=1024
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
