"""The deployment files of deploy/ (installed under share/pentools), checked by the programs
that read them: systemd-analyze, logrotate, Apache, nginx, and our own commands."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pentools.core.accesslog import NAMED_FORMATS, LogFormat
from pentools.pen import cli as pen_cli
from pentools.penlogd import cli as penlogd_cli
from tests.apache import Apache
from tests.conftest import REPO_ROOT, Processes, free_port, require_program
from tests.packaging.conftest import Installed
from tests.pen.support import http_get, start_backend, start_pen
from tests.penlogd.live import Penlogd, common_line, sender, wait_until

DEPLOY = REPO_ROOT / "deploy"


def test_the_wheel_installs_every_deployment_file(installed: Installed) -> None:
    shipped = {path.relative_to(DEPLOY) for path in DEPLOY.rglob("*") if path.is_file()}
    target = installed.share / "pentools"
    assert {path.relative_to(target) for path in target.rglob("*") if path.is_file()} == shipped
    for path in shipped:
        assert (target / path).read_bytes() == (DEPLOY / path).read_bytes()


# -- systemd -----------------------------------------------------------------------------


def verify_unit(tmp_path: Path, unit: str, instance: str, bin_directory: Path) -> str:
    """`systemd-analyze verify` on the shipped unit, run from `bin_directory`.

    At run time systemd looks the bare command name up in ExecSearchPath= (the
    one line a virtual environment needs) or in /usr/local/bin, /usr/bin...;
    verify ignores ExecSearchPath=, so the copy names the command by the path
    that lookup would find.  Nothing else in the unit is changed.
    """
    analyze = require_program("systemd-analyze")
    text = (DEPLOY / "systemd" / unit).read_text()
    program = unit.split("@")[0].split(".")[0]
    assert f"\nExecStart={program} " in text
    text = text.replace(f"\nExecStart={program} ", f"\nExecStart={bin_directory / program} ")
    units = tmp_path / "units"
    units.mkdir(exist_ok=True)
    (units / unit).write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(units / instance)],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
        timeout=120,
    )
    return f"{result.returncode}\n{result.stdout}{result.stderr}"


@pytest.mark.realpart
@pytest.mark.parametrize(
    ("unit", "instance"),
    [("pen@.service", "pen@web.service"), ("penlogd.service", "penlogd.service")],
)
def test_systemd_accepts_the_unit_with_the_installed_command(
    tmp_path: Path, installed: Installed, unit: str, instance: str
) -> None:
    assert verify_unit(tmp_path, unit, instance, installed.bin) == "0\n"
    # the check is real: without the command the same unit is refused
    refused = verify_unit(tmp_path, unit, instance, tmp_path / "nowhere")
    assert not refused.startswith("0\n")
    assert "is not executable: No such file or directory" in refused, refused


def environment_file(path: Path, *, commented: bool = False) -> list[dict[str, str]]:
    """The settings of an EnvironmentFile; `commented` adds each `# NAME="..."` variant."""
    settings: dict[str, str] = {}
    variants = []
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"(# )?([A-Z_]+)=(.*)", line)
        if match is None:
            continue
        (value,) = shlex.split(match[3]) or [""]
        if match[1]:
            variants.append({match[2]: value})
        else:
            settings[match[2]] = value
    return [settings, *([{**settings, **variant} for variant in variants] if commented else [])]


def exec_start(unit: str, settings: dict[str, str]) -> list[str]:
    """The unit's ExecStart as systemd runs it: its Environment= defaults under
    `settings`, each unbraced $NAME split at whitespace, %i the instance "web"."""
    text = (DEPLOY / "systemd" / unit).read_text()
    defaults = re.findall(r"^Environment=(.*)$", text, re.M)
    values = dict(word.partition("=")[::2] for line in defaults for word in line.split())
    values.update(settings)
    (line,) = re.findall(r"^ExecStart=(.*)$", text, re.M)
    words: list[str] = []
    for word in line.replace("%i", "web").split():
        words += values[word[1:]].split() if word.startswith("$") else [word]
    return words


def test_pen_takes_the_command_line_of_the_unit_and_its_example_settings() -> None:
    for settings in environment_file(DEPLOY / "default" / "pen", commented=True):
        program, *args = exec_start("pen@.service", settings)
        assert program == "pen"
        context = pen_cli.command.make_context("pen", args)
        config = pen_cli.build_config(context.params)
        assert config.foreground and config.pidfile == "/run/pen/web.pid"
        assert len(config.servers) == 2


def test_penlogd_takes_the_command_line_of_the_unit_with_and_without_settings() -> None:
    for settings in ({}, *environment_file(DEPLOY / "default" / "penlogd")):
        program, *args = exec_start("penlogd.service", settings)
        assert program == "penlogd"
        context = penlogd_cli.command.make_context("penlogd", args)
        assert context.params["port"] == "10000" and context.params["foreground"]
        LogFormat(context.params["log_format"]).check_joinable(needs_time=False)


# -- logrotate ---------------------------------------------------------------------------


def test_logrotate_reads_the_snippet(tmp_path: Path) -> None:
    logrotate = require_program("logrotate")
    result = subprocess.run(
        [logrotate, "-d", "-s", str(tmp_path / "state"), str(DEPLOY / "logrotate" / "pentools")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr
    assert "/var/log/pen/*.log" in result.stderr and "/var/log/penlogd/access_log" in result.stderr


@pytest.mark.realpart
def test_logrotate_rotates_pen_and_penlogd_with_hup(tmp_path: Path, processes: Processes) -> None:
    """The snippet, its paths moved under tmp_path, run by logrotate on live daemons:
    the old lines stay in the rotated file, the new ones go to a new file."""
    logrotate = require_program("logrotate")
    logs, run = tmp_path / "log", tmp_path / "run"
    (logs / "pen").mkdir(parents=True)
    (run / "pen").mkdir(parents=True)
    penlogd = Penlogd(processes, tmp_path)
    backend = start_backend(processes, "127.0.0.1", "web")
    pen_port = free_port()
    pen_log = logs / "pen" / "web.log"
    start_pen(
        processes, "127.0.0.1", pen_port, "-l", str(pen_log), "-p", str(run / "pen" / "web.pid"),
        "--", f"127.0.0.1:{backend}",
    )  # fmt: skip
    snippet = (DEPLOY / "logrotate" / "pentools").read_text()
    for shipped, here in (
        ("/var/log/pen/", f"{logs}/pen/"),
        ("/run/pen/", f"{run}/pen/"),
        ("/var/log/penlogd/access_log", str(penlogd.logfile)),
        ("/run/penlogd/penlogd.pid", str(penlogd.pidfile)),
    ):
        assert shipped in snippet
        snippet = snippet.replace(shipped, here)
    config = tmp_path / "logrotate.conf"
    config.write_text(snippet)
    config.chmod(0o644)  # logrotate ignores a configuration others may write

    def traffic(path: str) -> None:
        http_get("127.0.0.1", pen_port, path)
        with sender("127.0.0.1") as web:
            web.sendto(common_line("127.0.0.9", path), ("127.0.0.1", penlogd.port))

    def logged(path: Path, request: str) -> bool:
        return path.exists() and request.encode() in path.read_bytes()

    traffic("/before")
    wait_until(lambda: logged(pen_log, "/before") and logged(penlogd.logfile, "/before"))
    state = tmp_path / "state"
    result = subprocess.run(
        [logrotate, "-f", "-s", str(state), str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    wait_until(lambda: pen_log.exists() and penlogd.logfile.exists(), what="logs reopened")
    traffic("/after")
    for log in (pen_log, penlogd.logfile):
        wait_until(lambda log=log: logged(log, "/after"), what=f"{log} after HUP")  # type: ignore[misc]
        rotated = log.with_name(log.name + ".1")
        assert logged(rotated, "/before") and not logged(rotated, "/after")
        assert not logged(log, "/before")


# -- Apache ------------------------------------------------------------------------------


def apache_snippet() -> str:
    return (DEPLOY / "apache" / "penlog.conf").read_text()


def test_the_apache_formats_are_the_ones_our_tools_name() -> None:
    formats = {}
    for line in apache_snippet().splitlines():
        if line.startswith("LogFormat "):
            _, text, name = shlex.split(line)  # Apache's quoting: \" inside "..."
            formats[name] = text
    assert formats == {name: NAMED_FORMATS[name] for name in ("common_port", "combined_port")}


@pytest.mark.realpart
def test_apache_pipes_its_log_through_penlog_as_the_snippet_says(
    tmp_path: Path, processes: Processes
) -> None:
    """Apache with the snippet's lines (exact-join format, penlog in the pipe) feeds a
    penlogd: the line arrives whole, with the client's port at the end."""
    apache2 = require_program("apache2")
    penlogd = Penlogd(processes, tmp_path, "--log-format", "combined_port")
    penlog = tmp_path / "penlog"  # this checkout's penlog where the snippet has the installed one
    penlog.write_text(
        f'#!/bin/sh\nPYTHONPATH={REPO_ROOT} exec {sys.executable} -m pentools.penlog "$@"\n'
    )
    penlog.chmod(0o755)
    lines = [line for line in apache_snippet().splitlines() if line.startswith("LogFormat ")]
    custom = next(
        line.removeprefix("# ")
        for line in apache_snippet().splitlines()
        if line.endswith("combined_port") and "CustomLog" in line
    )
    custom = custom.replace("/usr/local/bin/penlog", str(penlog))
    custom = custom.replace("loghost 10000 10.0.0.1", f"127.0.0.1 {penlogd.port} 127.0.0.1")
    apache = Apache(apache2, tmp_path / "httpd", "127.0.0.1", custom_log="/dev/null")
    apache.config.write_text(apache.config.read_text() + "\n".join([*lines, custom]) + "\n")
    apache.start()
    try:
        with socket.create_connection(("127.0.0.1", apache.port)) as client:
            client_port = client.getsockname()[1]
            client.sendall(b"GET /exact HTTP/1.0\r\nUser-Agent: probe\r\n\r\n")
            while client.recv(65536):
                pass
        wait_until(lambda: b"/exact" in b"".join(penlogd.lines()), what="the line at penlogd")
    finally:
        apache.stop()
    (line,) = [line for line in penlogd.lines() if b"/exact" in line]
    parsed = LogFormat("combined_port").parse(line.decode())
    assert parsed is not None and parsed.remote_port == client_port
    assert parsed.agent == "probe"


# -- nginx -------------------------------------------------------------------------------


def nginx_snippet(port: int) -> str:
    """The snippet for a log host on 127.0.0.1:`port`, its exact-join line switched on."""
    text = (DEPLOY / "nginx" / "penlogd.conf").read_text()
    assert "syslog:server=loghost:10000,tag=web1 combined;" in text
    text = text.replace("loghost:10000", f"127.0.0.1:{port}")
    return text.replace("# access_log", "access_log")


def nginx_config(directory: Path, snippet: str, port: int) -> Path:
    (directory / "penlogd.conf").write_text(snippet)
    config = directory / "nginx.conf"
    config.write_text(
        f"""
worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{ worker_connections 64; }}
http {{
    include {directory}/penlogd.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "hello\\n"; }}
    }}
}}
"""
    )
    return config


@pytest.mark.realpart
def test_nginx_sends_both_formats_to_the_log_host(tmp_path: Path, processes: Processes) -> None:
    """nginx -t takes the snippet; run, it sends each request twice over UDP syslog, in
    combined and in combined_port, whose last field is the client's port (as %{remote}p)."""
    nginx = require_program("nginx")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as loghost:
        loghost.bind(("127.0.0.1", 0))
        loghost.settimeout(30)
        port = free_port()
        config = nginx_config(tmp_path, nginx_snippet(loghost.getsockname()[1]), port)
        argv = [nginx, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(config)]
        checked = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stderr
        process = processes.start(argv)
        deadline = time.monotonic() + 30
        while True:
            try:
                client = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        with client:
            client_port = client.getsockname()[1]
            client.sendall(b"GET /nginx HTTP/1.0\r\nUser-Agent: probe\r\n\r\n")
            while client.recv(65536):
                pass
        messages = [loghost.recv(65536).decode() for _ in range(2)]
    lines = sorted(message.split(" web1: ", 1)[1] for message in messages)
    combined = LogFormat("combined").parse(lines[0])
    exact = LogFormat("combined_port").parse(lines[1])
    assert combined is not None and combined.request == "GET /nginx HTTP/1.0"
    assert exact is not None and exact.remote_port == client_port and exact.agent == "probe"
