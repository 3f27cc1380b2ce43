"""mergelogs as users run it: a real subprocess."""

import json
from pathlib import Path

from tests.conftest import run_tool
from tests.mergelogs.test_merge import BALANCER, T0, clf


def write_farm(tmp_path: Path) -> list[str]:
    (tmp_path / "pen.log").write_text(
        f"192.0.2.1 {T0} 10.0.0.1 GET /a HTTP/1.1\n2001:db8::9 {T0} 10.0.0.2 GET /b HTTP/1.1\n"
    )
    (tmp_path / "one.log").write_text(clf(BALANCER, 0, "GET /a HTTP/1.1"))
    (tmp_path / "two.log").write_text(clf(BALANCER, 0, "GET /b HTTP/1.1") + "junk line\n")
    return [
        "-p",
        str(tmp_path / "pen.log"),
        f"10.0.0.1:{tmp_path}/one.log",
        f"10.0.0.2:{tmp_path}/two.log",
    ]


def test_merges_to_stdout_with_stats(tmp_path: Path) -> None:
    """--stats is the join's report in the layout of penlogd's counters; --stats-json the same."""
    stats_json = tmp_path / "stats.json"
    result = run_tool(
        "mergelogs", "--stats", "--stats-json", str(stats_json), *write_farm(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert [line.split()[0] for line in lines] == ["192.0.2.1", "2001:db8::9", "junk"]
    assert result.stderr.decode().startswith(
        "mergelogs: lines 3 (attributed 66.67%), exact 0, matched 2, ambiguous 0, unmatched 0, "
        "malformed 1, records 2, records_unused 0, records_expired 0; late 0, records_read 2,"
    )
    report = json.loads(stats_json.read_text())
    assert {k: report[k] for k in ("lines", "matched", "malformed", "attributed")} == {
        "lines": 3,
        "matched": 2,
        "malformed": 1,
        "attributed": 2,
    }
    assert report["clock_offsets"] == {"10.0.0.1": 0.0, "10.0.0.2": 0.0}


def test_a_log_that_does_not_parse_is_passed_through_and_reported(tmp_path: Path) -> None:
    """pen's own log given as a backend's: every line still comes out, but the
    exit status and one line on stderr say the file, the format and a bad line."""
    args = write_farm(tmp_path)
    args[-1] = f"10.0.0.2:{tmp_path}/pen.log"
    result = run_tool("mergelogs", *args)
    assert result.returncode == 1
    assert len(result.stdout.decode().splitlines()) == 3  # nothing lost
    stderr = result.stderr.decode()
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert f"{tmp_path}/pen.log: 0 of 2 lines (0.0%) parse as common or combined" in stderr
    assert "'192.0.2.1 " in stderr  # the sample bad line
    # nothing that parses is an error whatever the threshold; a threshold met is not
    assert run_tool("mergelogs", "--min-parsed", "0", *args).returncode == 1
    junk = run_tool("mergelogs", "--min-parsed", "0.9", *write_farm(tmp_path))  # 1 of 2 parses
    assert junk.returncode == 1 and "two.log: 1 of 2 lines (50.0%)" in junk.stderr.decode()
    assert run_tool("mergelogs", *write_farm(tmp_path)).returncode == 0  # default: half
    assert run_tool("mergelogs", "--min-parsed", "0", *write_farm(tmp_path)).returncode == 0


def test_output_file_and_original_options(tmp_path: Path) -> None:
    out = tmp_path / "access_log"
    result = run_tool(
        "mergelogs", "-c", "-j", "30", "-t", "0", "-o", str(out), *write_farm(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert out.read_text().startswith("192.0.2.1 ")
    assert not list(tmp_path.glob(".*"))  # the temporary file was renamed
    assert out.stat().st_mode & 0o777 == 0o644  # a log to be read, not mkstemp's 0600


def test_server_given_as_a_name(tmp_path: Path) -> None:
    (tmp_path / "pen.log").write_text(f"192.0.2.1 {T0} 127.0.0.1 GET /a HTTP/1.1\n")
    (tmp_path / "a.log").write_text(clf(BALANCER, 0, "GET /a HTTP/1.1"))
    result = run_tool("mergelogs", "-p", str(tmp_path / "pen.log"), f"localhost:{tmp_path}/a.log")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"192.0.2.1 ")


def test_errors_are_one_line_and_non_zero(tmp_path: Path) -> None:
    args = write_farm(tmp_path)
    cases = [
        (["-p", str(tmp_path / "missing.log"), args[2]], "cannot read"),
        ([*args[:2], f"10.0.0.1:{tmp_path}/missing"], "cannot read"),
        ([*args[:2], "no-such-host.invalid:x.log"], "cannot resolve"),
        ([*args, "--log-format", "%t %r"], "no client address field"),
        ([*args, "--log-format", '%h "%r"'], "no time stamp"),
        ([*args, "-j", "-5"], "Invalid value"),
        (args[2:], "Missing option '-p'"),
        ([*args[:2], "just-a-file"], "expected SERVER:REST"),
    ]
    for arguments, message in cases:
        result = run_tool("mergelogs", *arguments)
        stderr = result.stderr.decode()
        assert result.returncode != 0, arguments
        assert message in stderr, (arguments, stderr)
        assert "Traceback" not in stderr
        assert result.stdout == b""


def test_help_explains() -> None:
    result = run_tool("mergelogs", "--help")
    assert result.returncode == 0
    for option in (b"-p PENLOG", b"-j SECONDS", b"--log-format", b"--unmatched", b"SERVER:LOGFILE"):
        assert option in result.stdout
