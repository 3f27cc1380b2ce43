"""webstats report: parsing rules, escaping of hostile logs, the command's behaviour."""

from __future__ import annotations

import gzip
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pentools.core.accesslog import LogFormat, parse_clf_time, parse_clf_times
from pentools.webstats.aggregate import Report, split_request
from pentools.webstats.parse import ChunkParser, read_line_chunks
from pentools.webstats.render import render_html
from pentools.webstats.sources import count_files
from pentools.webstats.state import State
from tests.conftest import run_tool
from tests.webstats.hostile import hostile_log, quoted

PAYLOADS = [
    "<script>document.title='pwned'</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "'><svg/onload=alert(1)>",
    "</td></tr></table><iframe src=//evil.test/>",
    "<style>body{display:none}</style>",
    "<meta http-equiv=refresh content=0;url=//evil.test/>",
]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_hostile_log_renders_as_text(tmp_path: Path) -> None:
    log = tmp_path / "hostile.log"
    log.write_text(hostile_log(PAYLOADS), encoding="latin-1")
    page = render_html(Report.build(count_files([str(log)], State.empty())), title="<b>title</b>")
    collector = _Collector()
    collector.feed(page)
    assert collector.tags <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "br",
        "div", "b", "span", "table", "tr", "th", "td", "svg", "rect", "text",
    }  # fmt: skip
    assert collector.attributes <= {
        "lang", "charset", "http-equiv", "content", "name", "class", "colspan",
        "viewbox", "role", "aria-label", "x", "y", "width", "height", "text-anchor",
    }  # fmt: skip
    assert page.count("<style>") == 1 and "<script" not in page and "<iframe" not in page
    text = "".join(collector.text)
    for payload in PAYLOADS:
        assert payload in text  # shown, as text, in the URL, referrer and agent tables
    assert "default-src 'none'" in page


def test_report_command_writes_html_and_json_atomically(tmp_path: Path) -> None:
    log = tmp_path / "a.log.gz"
    with gzip.open(log, "wt", encoding="latin-1") as handle:
        handle.write(hostile_log(PAYLOADS))
    plain = tmp_path / "b.log"
    plain.write_text('192.0.2.9 - - [02/Mar/2026:10:00:00 +0100] "GET /x HTTP/1.1" 200 5 "-" "u"\n')
    html_path, json_path = tmp_path / "r.html", tmp_path / "r.json"
    html_path.write_text("old")
    os.chmod(html_path, 0o640)
    result = run_tool(
        "webstats", "report", str(log), str(plain), "-o", str(html_path), "--json", str(json_path)
    )
    assert result.returncode == 0, result.stderr
    general = json.loads(json_path.read_text())["general"]
    assert general["total_requests"] == 2 * len(PAYLOADS) + 1
    assert general["log_path"] == [str(log), str(plain)]
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    assert html_path.stat().st_mode & 0o777 == 0o640
    # atomic_output's temporary files are ".NAME.XXXX" beside the target: none is left.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_date_filters_keep_the_logged_wall_clock(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text(
        "".join(
            f'192.0.2.1 - - [{stamp}] "GET /{n} HTTP/1.1" 200 1 "-" "u"\n'
            for n, stamp in enumerate(
                [
                    "28/Feb/2026:23:59:59 +0100",
                    "01/Mar/2026:00:00:00 -0500",
                    "01/Mar/2026:23:59:59 +1400",
                    "02/Mar/2026:00:00:00 +0000",
                ]
            )
        )
    )
    out = tmp_path / "r.json"
    result = run_tool(
        "webstats", "report", str(log), "--from", "2026-03-01", "--to", "2026-03-01",
        "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    general = json.loads(out.read_text())["general"]
    assert (general["valid_requests"], general["excluded_hits"]) == (2, 2)
    assert general["start_date"] == general["end_date"] == "01/Mar/2026"


def test_errors_are_one_line(tmp_path: Path) -> None:
    for argv in (
        [str(tmp_path / "missing.log"), "-o", str(tmp_path / "r.html")],
        [os.devnull, "-o", str(tmp_path / "no" / "dir" / "r.html")],
        [os.devnull, "-f", "%t %r"],
    ):
        result = run_tool("webstats", "report", *argv)
        assert result.returncode == 1
        message = result.stderr.decode()
        assert message.startswith("webstats: ") and message.count("\n") == 1, message
    bad_date = run_tool("webstats", "report", os.devnull, "--from", "yesterday")
    assert bad_date.returncode == 2 and b"Traceback" not in bad_date.stderr
    assert bad_date.stderr.decode().startswith("webstats: ") and bad_date.stderr.count(b"\n") == 1
    bare = run_tool("webstats")  # no subcommand: the help, as usage
    assert bare.returncode == 2 and bare.stderr.decode().startswith("Usage: webstats ")


def test_any_logformat_and_common_lines(tmp_path: Path) -> None:
    log = tmp_path / "vhost.log"
    log.write_text(
        'www.example.org 192.0.2.5 - - [01/Mar/2026:10:00:00 +0000] "GET /v HTTP/1.1" 200 42\n'
        "garbage\n"
    )
    general = Report.build(count_files([str(log)], State.empty("vhost_common"))).general
    assert (general["valid_requests"], general["failed_requests"], general["bandwidth"]) == (
        1,
        1,
        42,
    )
    common = tmp_path / "common.log"
    common.write_text('192.0.2.5 - - [01/Mar/2026:10:00:00 +0000] "GET /c HTTP/1.1" 304 -\n')
    general = Report.build(count_files([str(common)], State.empty())).general
    assert (general["valid_requests"], general["bandwidth"], general["unique_visitors"]) == (
        1,
        0,
        1,
    )


def test_chunks_split_only_at_newlines(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    text = "".join(f"line {n} \xe9\xff\r\n" for n in range(1000))
    log.write_bytes(text.encode("latin-1"))
    lines = [s for chunk in read_line_chunks(str(log), chunk_chars=777) for s in chunk.to_pylist()]
    assert lines == [f"line {n} \xe9\xff" for n in range(1000)]


def test_request_keys_follow_goaccess() -> None:
    assert split_request("get /a%20b HTTP/2.0") == ("GET", "/a b", "HTTP/2")
    assert split_request("FOO /x HTTP/1.1") == ("---", "FOO /x HTTP/1.1", "---")
    assert split_request("GET /x HTTP/0.9") == ("---", "-", "---")
    assert split_request("-") == ("---", "-", "---")


_fields = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    client=st.from_regex(r"[0-9a-f.:]{1,20}", fullmatch=True),
    when=st.integers(min_value=0, max_value=4_000_000_000),
    zone=st.integers(min_value=-14 * 60, max_value=14 * 60),
    request=_fields,
    status=st.integers(min_value=100, max_value=599),
    size=st.one_of(st.just("-"), st.integers(min_value=0, max_value=10**12).map(str)),
    referer=_fields,
    agent=_fields,
)
def test_bulk_parser_reads_what_was_written(
    client: str, when: int, zone: int, request: str, status: int, size: str,
    referer: str, agent: str,
) -> None:  # fmt: skip
    local = pd.Timestamp(when + zone * 60, unit="s")
    sign = "-" if zone < 0 else "+"
    stamp = (
        local.strftime("%d/")
        + ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][
            local.month - 1
        ]
        + local.strftime("/%Y:%H:%M:%S ")
    )
    stamp += f"{sign}{abs(zone) // 60:02d}{abs(zone) % 60:02d}"  # fmt: skip
    line = (
        f'{client} - - [{stamp}] "{quoted(request)}" {status} {size} '
        f'"{quoted(referer)}" "{quoted(agent)}"'
    )
    import pyarrow as pa

    chunk = ChunkParser().parse(pa.array([line], type=pa.large_string()))
    assert (chunk.lines, chunk.failed) == (1, 0)
    row = chunk.frame.iloc[0]
    assert row["client"] == client and row["status"] == status
    assert row["size"] == (0 if size == "-" else int(size))
    assert (row["request"], row["referer"], row["agent"]) == tuple(
        quoted(v) for v in (request, referer, agent)
    )
    assert row["unix"] == when == parse_clf_time(stamp)
    assert LogFormat(None).parse(line) is not None


@given(st.text(max_size=30))
def test_vectorised_times_reject_what_the_line_parser_rejects(text: str) -> None:
    parsed = parse_clf_times(pd.Series([text], dtype="str"))["unix"].iloc[0]
    try:
        expected = parse_clf_time(text)
    except ValueError:
        expected = None
    if not pd.isna(parsed):
        assert parsed == expected
