"""Process plumbing: detaching, the PID file, chroot and dropping privileges."""

from __future__ import annotations

import os
import pwd
import sys

from pentools.core.errors import PentoolsError
from pentools.core.output import atomic_output


class PrivilegeError(PentoolsError):
    """A user or chroot directory that cannot be switched to."""


def detach(keep_stdout: bool) -> None:
    """Become a daemon: fork twice, new session, stdin (and stderr) to /dev/null.

    stdout is kept when it carries the joined log (no -l), so that
    ``penlogd 10000 > access_log`` still writes where it was told.
    """
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    targets = [0, 2] if keep_stdout else [0, 1, 2]
    sys.stdout.flush()
    for target in targets:
        os.dup2(null, target)
    os.close(null)


def write_pidfile(path: str) -> None:
    """Write our PID whole or not at all: a reader never sees an empty PID file."""
    with atomic_output(path) as stream:
        stream.write(f"{os.getpid()}\n".encode("ascii"))


def remove_pidfile(path: str) -> str | None:
    """Remove the PID file if it is still ours; the reason if it could not be."""
    try:
        with open(path) as stream:
            if stream.read().strip() != str(os.getpid()):
                return "it belongs to another process"
        os.unlink(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def lookup_user(user: str | None) -> pwd.struct_passwd | None:
    """The account to run as, looked up while errors still reach the terminal."""
    if user is None:
        return None
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"no such user: {user}") from None


def confine(chroot: str | None, account: pwd.struct_passwd | None) -> None:
    """Chroot into `chroot`, then run as `account` (both optional, in that order)."""
    if chroot is not None:
        try:
            os.chroot(chroot)
            os.chdir("/")
        except OSError as exc:
            raise PrivilegeError(f"cannot chroot to {chroot}: {exc.strerror}") from None
    if account is not None:
        try:
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
        except OSError as exc:
            raise PrivilegeError(f"cannot become {account.pw_name}: {exc.strerror}") from None
