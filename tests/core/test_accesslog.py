import gzip
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pentools.core.accesslog import LogFormat, parse_clf_time, read_lines, unescape
from pentools.core.errors import InputFileError, LogFormatError

COMBINED_LINE = (
    '10.0.0.254 - frank [10/Oct/2000:13:55:36 -0700] "GET /a\\"b.gif?x=1 HTTP/1.0" 200 2326 '
    '"http://example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"\n'
)


def test_combined_without_naming_it() -> None:
    line = LogFormat().parse(COMBINED_LINE)
    assert line is not None
    assert line.client == "10.0.0.254"
    assert line.time == 971211336.0  # 20:55:36 UTC
    assert line.request_key() == 'GET /a"b.gif?x=1 HTTP/1.0'
    assert line.with_client("2001:db8::1") == COMBINED_LINE.replace("10.0.0.254", "2001:db8::1", 1)


def test_common_and_user_with_spaces() -> None:
    line = LogFormat().parse('::1 - John Smith [01/Jan/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 -')
    assert line is not None and line.client == "::1" and line.time == 1704067200.0


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "\x00\x01\x02 binary",
        'x - - [32/Foo/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 1',
        '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1',
    ],
)
def test_junk_is_not_parsed(junk: str) -> None:
    assert LogFormat().parse(junk) is None


def test_any_logformat_through_apachelogs() -> None:
    log_format = LogFormat('%a %{%Y-%m-%d %H:%M:%S %z}t "%r" %>s %{remote}p')
    line = log_format.parse('2001:db8::5 2024-01-01 01:00:00 +0100 "GET /x HTTP/1.1" 200 51234')
    assert line is not None
    assert (line.client, line.time, line.remote_port) == ("2001:db8::5", 1704067200.0, 51234)
    with_port = LogFormat("combined_port").parse(COMBINED_LINE.rstrip("\n") + " 4000")
    assert with_port is not None
    assert with_port.remote_port == 4000


def test_unusable_formats() -> None:
    with pytest.raises(LogFormatError):
        LogFormat("%Z nonsense %{")
    with pytest.raises(LogFormatError):
        LogFormat("%t %r")  # no client field


def test_time_is_locale_and_zone_independent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    assert parse_clf_time("[01/Mar/2024:12:00:00 +0530]") == 1709274600.0
    for bad in (
        "01/Mrz/2024:12:00:00 +0000",  # a locale's month name
        "01/Mar/2024:25:00:00 +0000",
        "00/Mar/2024:12:00:00 +0000",
        "01/Mar/2024:12:61:00 +0000",
        "01/Mar/2024:12:00:00 +0099",
        "01/Mar/2024:12:00:00 +00000",
    ):
        with pytest.raises(ValueError):
            parse_clf_time(bad)


def test_unescape() -> None:
    assert unescape(r"a\"b\\c\x41\n") == 'a"b\\cA\n'


def test_read_lines_keeps_every_byte(tmp_path: Path) -> None:
    data = b"caf\xc3\xa9 \xff\r\nlone\rcarriage\nlast-without-newline"
    (tmp_path / "log").write_bytes(data)
    with gzip.open(tmp_path / "log.gz", "wb") as packed:
        packed.write(data)
    for name in ("log", "log.gz"):
        lines = list(read_lines(str(tmp_path / name)))
        assert len(lines) == 3
        assert "".join(lines).encode("latin-1") == data
    with pytest.raises(InputFileError):
        list(read_lines(str(tmp_path / "missing")))


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=300))
def test_parse_never_raises_and_replacement_keeps_the_rest(text: str) -> None:
    line = LogFormat().parse(text)
    if line is not None:
        replaced = line.with_client("192.0.2.1")
        assert replaced[len("192.0.2.1") :] == text[line.end :]


PORT_LINES = [
    '192.0.2.7 - - [21/Nov/2026:14:00:00 +0100] "GET /a?b=1 HTTP/1.1" 200 512 "-" "curl/8" 40001',
    '2001:db8::7 - alice [21/Nov/2026:14:00:00 -0500] "POST /f HTTP/1.1" 302 - '
    '"https://x/\\"q\\"" "Mozilla/5.0 (X11) \\\\ \\x01" 65535',
    '192.0.2.7 - - [21/Nov/2026:14:00:00 +0000] "GET / HTTP/1.0" 404 0 40002',
    '192.0.2.7 - - [21/Nov/2026:14:00:00 +0000] "-" 408 - "-" "-" 1',
    '192.0.2.7 - - [21/Nov/2026:14:00:00 +0000] "GET / HTTP/1.0" 200 5 "-" "ua"',  # no port
    '192.0.2.7 - - [21/Nov/2026:14:00:00 +0000] "GET / HTTP/1.0" 2x0 5 "-" "ua" 40003',
    '192.0.2.7 - - [21/Nov/2026:14:00:00 +0000] "GET / HTTP/1.0" 200 5 "-" "ua" 40004 extra',
    "junk 40005",
]


@pytest.mark.parametrize("name", ["common_port", "combined_port"])
@pytest.mark.parametrize("text", PORT_LINES)
def test_port_formats_read_fast_as_apachelogs_reads_them(name: str, text: str) -> None:
    # The same formats spelled differently are compiled by apachelogs.
    spelled = {
        "common_port": '%h %l %u %t "%r" %>s %b %{remote}p',
        "combined_port": '%h %l %u %t "%r" %>s %b "%{referer}i" "%{user-agent}i" %{remote}p',
    }[name]
    fast, general = LogFormat(name).parse(text), LogFormat(spelled).parse(text)
    if general is None:
        assert fast is None
        return
    assert fast == general
    assert fast.remote_port is not None
