"""A hostile access log for webstats' escaping tests: payloads in every field a page shows."""

from __future__ import annotations


def quoted(text: str) -> str:
    """`text` as a quoted field of the combined format (backslash and quote escaped)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def hostile_log(payloads: list[str]) -> str:
    """A combined log: each payload in the URL, referrer and agent, and every second one
    (spaces taken out) as the client host; each request twice, with 200 and with 404."""
    lines = []
    for index, payload in enumerate(payloads):
        host = payload.replace(" ", "") if index % 2 else f"192.0.2.{index + 1}"
        for status in (200, 404):
            lines.append(
                f"{host} - - [01/Mar/2026:10:{index:02d}:00 +0100] "
                f'"GET /{quoted(payload)} HTTP/1.1" {status} 10 '
                f'"{quoted(payload)}" "{quoted(payload)}"\n'
            )
    return "".join(lines)
