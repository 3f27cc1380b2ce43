"""webresolve and splitwr as real processes against dnsmasq on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Processes, run_tool, tool_argv, tool_env
from tests.webresolve.conftest import HOSTS, NO_RECORD, PTR_ONLY, DnsServer, start_dnsmasq

pytestmark = pytest.mark.realpart

REST = ' - frank [21/Nov/2026:14:55:00 +0100] "GET /a?b=\\"c\\" HTTP/1.1" 200 5 "-" "UA \xe9\xff"'


def log_bytes(fields: list[str], rest: str = REST) -> bytes:
    return "".join(f"{field}{rest}\n" for field in fields).encode("latin-1")


def expected_bytes(fields: list[str], names: dict[str, str], rest: str = REST) -> bytes:
    return "".join(f"{names.get(field, field)}{rest}\n" for field in fields).encode("latin-1")


def webresolve(server: DnsServer, data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run_tool("webresolve", "--nameserver", server.nameserver, "-t", "0.5", *args, input=data)


def test_addresses_become_names_and_every_other_byte_is_kept(dnsmasq: DnsServer) -> None:
    fields = [*HOSTS, *NO_RECORD, "127.0.90.1", "2001:db8::1", "192.0.2.66"]
    result = webresolve(dnsmasq, log_bytes(fields))
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected_bytes(fields, {**HOSTS, **PTR_ONLY})


def test_odd_lines_pass_through_unchanged(dnsmasq: DnsServer, tmp_path: Path) -> None:
    long_rest = " " + "x" * 200_000
    data = (
        b"\n"  # empty
        b"already.example.test - - rest\n"  # a name
        b"\x00\x01\xfe binary junk\r\n"
        b"127.0.90.1\n"  # the address alone
        b"127.0.90.1\r\n"  # CRLF
        b"::ffff:127.0.90.2 mapped\n"  # IPv4-mapped IPv6: named by its IPv4 PTR
        b"[2001:db8::1] bracketed\n"
        b"127.0.90.99" + long_rest.encode() + b"\n"
        b"127.0.90.2 no newline at the end"
    )
    stats = tmp_path / "stats"
    result = webresolve(dnsmasq, data, "-s", str(stats))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        b"\n"
        b"already.example.test - - rest\n"
        b"\x00\x01\xfe binary junk\r\n"
        b"alpha.example.test\n"
        b"alpha.example.test\r\n"
        b"beta.example.test mapped\n"
        b"six.example.test bracketed\n"
        b"127.0.90.99" + long_rest.encode() + b"\n"
        b"beta.example.test no newline at the end"
    )
    report = stats.read_text()
    assert "Lines                       : 9" in report
    assert "  empty                     : 1" in report
    assert "  already a host name       : 1" in report
    assert "  no address in first field : 1" in report
    assert "Unique addresses            : 4" in report
    assert "  not found                 : 1" in report


def test_splitwr_gives_the_same_output_from_a_file(dnsmasq: DnsServer, tmp_path: Path) -> None:
    fields = [*HOSTS, *NO_RECORD] * 50
    log = tmp_path / "access_log"
    log.write_bytes(log_bytes(fields))
    split = run_tool("webresolve.splitwr", "--nameserver", dnsmasq.nameserver, str(log))
    piped = webresolve(dnsmasq, log.read_bytes())
    with open(log, "rb") as stdin:  # a file on stdin: read ahead too
        redirected = run_tool("webresolve", "--nameserver", dnsmasq.nameserver, stdin=stdin)
    no_read_ahead = run_tool(
        "webresolve.splitwr", "--nameserver", dnsmasq.nameserver, "--no-read-ahead", str(log)
    )
    assert split.returncode == 0, split.stderr
    assert split.stdout == piped.stdout == expected_bytes(fields, HOSTS)
    assert redirected.stdout == no_read_ahead.stdout == split.stdout


def test_confirm_keeps_only_names_that_lead_back(dnsmasq: DnsServer, tmp_path: Path) -> None:
    fields = ["127.0.90.1", "192.0.2.66", "2001:db8::1", "198.51.100.7"]
    stats = tmp_path / "stats"
    result = webresolve(dnsmasq, log_bytes(fields), "--confirm", "-s", str(stats))
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected_bytes(fields, HOSTS)  # liar.example.test not written
    assert "  not confirmed forward     : 1" in stats.read_text()


def test_cache_file_answers_the_next_run_without_a_server(
    processes: Processes, tmp_path: Path
) -> None:
    server = start_dnsmasq(processes, tmp_path)
    fields = [*HOSTS, *NO_RECORD]
    cache = tmp_path / "cache"
    first = webresolve(server, log_bytes(fields), "--cache", str(cache))
    assert first.returncode == 0, first.stderr
    processes.stop_all()  # the server is gone: only the cache can answer now

    stats = tmp_path / "stats"
    second = webresolve(server, log_bytes(fields), "--cache", str(cache), "-s", str(stats))
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout == expected_bytes(fields, HOSTS)
    report = stats.read_text()
    assert f"Cache file hits             : {len(fields)}" in report
    assert "DNS queries sent            : 0" in report


def test_output_starts_before_the_input_ends(dnsmasq: DnsServer, processes: Processes) -> None:
    process = processes.start(
        tool_argv("webresolve", "--nameserver", dnsmasq.nameserver),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=tool_env(),
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"127.0.90.1 first\n")
    process.stdin.flush()
    assert process.stdout.readline() == b"alpha.example.test first\n"  # stdin still open
    process.stdin.write(b"127.0.90.2 second\n")
    process.stdin.close()
    assert process.stdout.read() == b"beta.example.test second\n"
    assert process.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nameserver", "not-an-address"], "must be given as an IP address"),
        (["--nameserver", "127.0.0.1:99999"], "port must be a number"),
        (["/nonexistent/access_log"], "cannot read /nonexistent/access_log"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_1(args: list[str], message: str) -> None:
    result = run_tool("webresolve", *args, input=b"")
    assert result.returncode == 1
    assert message in result.stderr.decode()
    assert b"Traceback" not in result.stderr
    assert result.stderr.decode().startswith("webresolve: ") and result.stderr.count(b"\n") == 1


@pytest.mark.parametrize(
    ("tool", "name"), [("webresolve", "webresolve"), ("webresolve.splitwr", "splitwr")]
)
def test_usage_errors_are_one_line_and_exit_2(tool: str, name: str) -> None:
    result = run_tool(tool, "--no-such-option", input=b"")
    assert result.returncode == 2
    assert result.stderr.decode().startswith(f"{name}: No such option '--no-such-option'")
    assert result.stderr.count(b"\n") == 1


def test_a_log_given_as_cache_file_is_refused_and_kept(dnsmasq: DnsServer, tmp_path: Path) -> None:
    log = tmp_path / "access_log"
    log.write_bytes(log_bytes(["127.0.90.1"]))
    result = webresolve(dnsmasq, log.read_bytes(), "--cache", str(log))
    assert result.returncode == 1
    assert b"not a webresolve cache file" in result.stderr
    assert log.read_bytes() == log_bytes(["127.0.90.1"])
