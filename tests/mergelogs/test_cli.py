"""mergelogs as users run it: a real subprocess."""

import re
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
    result = run_tool("mergelogs", "--stats", *write_farm(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert [line.split()[0] for line in lines] == ["192.0.2.1", "2001:db8::9", "junk"]
    stderr = result.stderr.decode()
    assert re.search(r"^lines read +3$", stderr, re.M)
    assert re.search(r"^ +attributed +2$", stderr, re.M)
    assert re.search(r"^ +malformed \(passed through\) +1$", stderr, re.M)


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
