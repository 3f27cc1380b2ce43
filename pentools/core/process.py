"""What every daemon does with its process: detach, drop privileges, a PID file, signals.

A daemon that dies after its starting command has exited 0 fails silently:
an init script, a systemd ``Type=forking`` unit or an operator at a shell
is told "started" and finds nothing running.  So, as ``nginx`` and
``haproxy -D`` do, the starting command waits on a pipe until the daemon is
ready (sockets bound, privileges dropped, log and PID file open) or has
failed, and exits with its status and its one-line reason.

The daemon opens its log and PID file after `confine`, as the user it runs
as and inside its chroot (the C pen and penlogd do the same): what it must
reopen on HUP or remove at exit, it then can.
"""

from __future__ import annotations

import asyncio
import contextlib
import encodings.idna  # noqa: F401  (loaded lazily by every address look-up: out of reach in -j)
import os
import pwd
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType

from pentools.core.errors import PentoolsError, PrivilegeError, StartupError
from pentools.core.output import atomic_output

#: What the daemon writes on the readiness pipe: this word, or ``error`` and its reason.
_READY = b"ready"
_ERROR = b"error "


def error_text(exc: BaseException) -> str:
    """The one line a user is told about `exc` (as `pentools.core.cli.run_command` says it)."""
    if isinstance(exc, PentoolsError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "stopped during start-up"
    return f"{type(exc).__name__}: {exc}"


class Startup:
    """The daemon's end of the readiness pipe: say `ready`, or fail on the way.

    Used as a context manager around the start-up: an exception before
    `ready` becomes the starting command's error message, then propagates.
    In the foreground there is no pipe and both are no-ops.
    """

    def __init__(self, fd: int | None = None) -> None:
        self._fd = fd

    @property
    def detached(self) -> bool:
        """True in a daemon whose starting command still waits for its word."""
        return self._fd is not None

    def ready(self) -> None:
        """Everything is open: the starting command may exit 0."""
        self._say(_READY)

    def close_in_child(self) -> None:
        """In a process forked from the daemon: let go of the pipe, saying nothing.

        The starting command reads until every copy of the pipe is closed.
        """
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def failed(self, exc: BaseException) -> None:
        """Start-up failed: the starting command prints this and exits 1."""
        self._say(_ERROR + error_text(exc).encode("utf-8", "replace"))

    def _say(self, message: bytes) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):  # the starting command was killed: nobody to tell
            os.write(fd, message.replace(b"\n", b" ") + b"\n")
        os.close(fd)

    def __enter__(self) -> Startup:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.failed(exc)


def start(*, foreground: bool, keep_stdout: bool = False) -> Startup:
    """In the foreground, a `Startup` with nothing to tell; else `detach`."""
    return Startup() if foreground else detach(keep_stdout=keep_stdout)


def detach(*, keep_stdout: bool = False) -> Startup:
    """Go to the background; returns only in the daemon.

    The calling process waits for the daemon's word on the readiness pipe:
    it exits 0 once the daemon is ready, or raises `StartupError` with the
    daemon's reason.  The daemon is a grandchild in a session of its own
    (the classic double fork), its stdin and stderr on /dev/null; stdout
    too unless `keep_stdout` (penlogd writes its log there without -l).  It
    stays in the directory it was started in, so that a relative -l or -p
    means what it meant on the command line (`confine` leaves it for -j).
    """
    read_end, write_end = os.pipe()  # not inherited by programs a daemon runs
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:
        os.close(write_end)
        os.waitpid(child, 0)  # the middle process exits at once
        message = _read_all(read_end)
        if message.rstrip(b"\n") == _READY:
            os._exit(0)  # the daemon runs on; nothing of ours must run here
        if message.startswith(_ERROR):
            raise StartupError(message[len(_ERROR) :].decode("utf-8", "replace").strip())
        raise StartupError("the daemon died during start-up without saying why")
    os.close(read_end)
    os.setsid()
    if os.fork():
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 2) if keep_stdout else (0, 1, 2):
        os.dup2(null, target)
    os.close(null)
    return Startup(write_end)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


@dataclass(frozen=True)
class Account:
    """The user to run as, looked up before a chroot hides /etc/passwd and /etc/group."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def lookup_user(name: str | None) -> Account | None:
    """The account of -u USER (a name or a number), or None without -u."""
    if name is None:
        return None
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError):
        raise PrivilegeError(f"no such user: {name}") from None
    try:
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except OSError:
        groups = (entry.pw_gid,)
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)


def confine(chroot: str | None, account: Account | None) -> None:
    """Chroot into `chroot`, then become `account` with its groups (both optional).

    Running as that account already (``-u root`` as root, ``-u me`` as me)
    changes nothing, so it works unprivileged too.
    """
    if chroot is not None:
        try:
            os.chroot(chroot)
            os.chdir("/")
        except OSError as exc:
            raise PrivilegeError(f"cannot chroot to {chroot}: {exc.strerror}") from None
    if account is None or (account.uid, account.gid) == (os.geteuid(), os.getegid()):
        return
    try:
        os.setgroups(list(account.groups))
        os.setgid(account.gid)
        os.setuid(account.uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot become {account.name}: {exc.strerror}") from None


class PidFile:
    """``-p FILE``: our process id, written whole, removed at exit only while it is ours.

    A second instance started by mistake (or a restart that overlapped)
    may have written its own PID there since: removing the file then would
    leave that daemon without one, so `remove` checks the PID in it first.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._pid: int | None = None

    def write(self) -> None:
        """Write our PID (raises OutputFileError)."""
        pid = os.getpid()
        with atomic_output(self.path) as stream:
            stream.write(f"{pid}\n".encode("ascii"))
        self._pid = pid

    def remove(self) -> str | None:
        """Remove the file if it still holds our PID; the reason it was left, if it was."""
        if self._pid is None or self._pid != os.getpid():
            return None  # never written, or a forked child: not ours to remove
        try:
            with open(self.path, "rb") as stream:  # bytes: no codec to import in a chroot
                if stream.read().strip() != str(self._pid).encode():
                    return "it holds another process id now"
            os.unlink(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return exc.strerror or str(exc)
        return None


@contextlib.contextmanager
def pid_file(path: str | None, warn: Callable[[str], None]) -> Iterator[PidFile | None]:
    """`PidFile` written for the block, removed after it; `warn` hears why it was left."""
    if path is None:
        yield None
        return
    pidfile = PidFile(path)
    pidfile.write()
    try:
        yield pidfile
    finally:
        problem = pidfile.remove()
        if problem:
            warn(f"left {path} in place: {problem}")


def handle_signals(
    loop: asyncio.AbstractEventLoop, handlers: Mapping[int, Callable[[], None]]
) -> Callable[[], None]:
    """Run `handlers` (signal number -> callback) in `loop`; returns what removes them.

    The callbacks run as ordinary loop callbacks, never inside a signal
    handler, so they may write files and touch any state.
    """
    for signum, handler in handlers.items():
        loop.add_signal_handler(signum, handler)

    def remove() -> None:
        for signum in handlers:
            loop.remove_signal_handler(signum)

    return remove
