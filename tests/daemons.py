"""Helpers for the tests that start pen and penlogd as daemons, as an init script does."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Processes

USER = "nobody"


def require_root() -> None:
    """-u needs root: skip without it (a skip fails under CI=true, which runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("the -u tests need root")


@contextmanager
def shared_dir() -> Iterator[Path]:
    """A fresh directory under /tmp that every user may enter (pytest's tmp_path is
    root's alone, so a daemon running as nobody could not reach anything in it)."""
    path = Path(tempfile.mkdtemp(prefix="pentools-daemon-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def user_dir(parent: Path, name: str) -> Path:
    """A directory in `parent` that belongs to `USER` (like /var/log/pen in the init script)."""
    account = pwd.getpwnam(USER)
    path = parent / name
    path.mkdir()
    os.chown(path, account.pw_uid, account.pw_gid)
    return path


def owner(path: Path) -> str:
    return pwd.getpwuid(path.stat().st_uid).pw_name


def process_user(pid: int) -> str:
    return pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name


def wait_for(condition: object, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie nobody reaped yet counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def stop(pid: int) -> None:
    """TERM a daemon and wait until it is gone."""
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: gone(pid), f"process {pid} to exit")


def one_line(stderr: bytes, tool: str) -> str:
    """The single line of a failed start's stderr (asserted to be one, named for `tool`)."""
    text = stderr.decode()
    assert text.startswith(f"{tool}: ") and text.count("\n") == 1, text
    return text


@dataclass
class InitScriptSetup:
    """``-u USER -l LOG -p PIDFILE`` with the log and PID directories the user's own."""

    root: Path
    log: Path
    pidfile: Path

    @property
    def options(self) -> dict[str, str]:
        return {"-u": USER, "-l": str(self.log), "-p": str(self.pidfile)}

    def argv(self, **changes: str) -> list[str]:
        """The options, with `changes` (``u="x"``, ``j="/jail"``) applied."""
        options = self.options | {f"-{letter}": value for letter, value in changes.items()}
        return [word for pair in options.items() for word in pair]


@contextmanager
def init_script_setup(log_name: str, pid_name: str) -> Iterator[InitScriptSetup]:
    with shared_dir() as root:
        yield InitScriptSetup(
            root, user_dir(root, "log") / log_name, user_dir(root, "run") / pid_name
        )


#: Start-up mistakes every daemon must report: (case, what the message says).
MISUSES = [
    ("log directory not the user's", "Permission denied"),
    ("PID file directory not the user's", "Permission denied"),
    ("unknown user", "no such user: no-such-user-here"),
    ("chroot that is not there", "cannot chroot to /no/such/jail"),
]


def misuse_argv(setup: InitScriptSetup, case: str) -> list[str]:
    """The options of `setup` spoiled as `case` of `MISUSES` says (paths updated)."""
    if case == "log directory not the user's":
        setup.log = setup.root / setup.log.name  # root's directory, mode 755
    elif case == "PID file directory not the user's":
        setup.pidfile = setup.root / setup.pidfile.name
    elif case == "unknown user":
        return setup.argv(u="no-such-user-here")
    elif case == "chroot that is not there":
        return setup.argv(j="/no/such/jail")
    return setup.argv()


def check_failed_start(
    result: subprocess.CompletedProcess[bytes], tool: str, expected: str, setup: InitScriptSetup
) -> None:
    """Exit status 1, the reason in one line, and nothing left behind but the user's log."""
    assert result.returncode == 1, result
    assert expected in one_line(result.stderr, tool)
    assert not setup.pidfile.exists()
    assert not setup.log.exists() or owner(setup.log) == USER  # never an empty log of root's


def check_pid_file_left_to_its_new_owner(processes: Processes, pidfile: Path) -> None:
    """A second instance writes its PID into the daemon's PID file; TERM the daemon:
    the file, no longer its own, must stay."""
    pid = int(pidfile.read_text())  # written before the starting command returned
    other = processes.start(["sleep", "60"])
    pidfile.write_text(f"{other.pid}\n")
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: gone(pid), f"process {pid} to exit")
    assert pidfile.read_text() == f"{other.pid}\n"
