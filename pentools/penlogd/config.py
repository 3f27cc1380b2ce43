"""penlogd's configuration: one frozen object built by the command line."""

from __future__ import annotations

from dataclasses import dataclass, field

from pentools.core.addresses import HostPort
from pentools.penlogd.join import JoinConfig

#: Receive buffer asked for: 32 MiB holds about a second of datagrams at
#: 50k/s, the bursts that made the original (208 KiB) lose 3-17 %.
DEFAULT_RCVBUF = 32 * 1024 * 1024


@dataclass(frozen=True)
class PenlogdConfig:
    """Everything penlogd needs to run; `join` is the sans-IO part."""

    port: int
    addresses: tuple[str, ...] = ()  # empty: every address, IPv6 and IPv4
    logfile: str | None = None  # None: stdout
    pidfile: str | None = None
    foreground: bool = False
    debug: int = 0
    chroot: str | None = None
    user: str | None = None
    rcvbuf: int = DEFAULT_RCVBUF
    metrics: HostPort | None = None  # --metrics: serve /metrics here
    stats_json: str | None = None  # the counters as JSON, written on USR1 and at exit
    join: JoinConfig = field(default_factory=JoinConfig)
