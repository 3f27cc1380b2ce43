"""DNS servers for the webresolve tests: dnsmasq and a hostile responder, on loopback."""

from __future__ import annotations

import heapq
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest

from tests.conftest import Processes, free_port, require_program

DNSMASQ_ADDRESS = "127.0.83.53"
HOSTILE_ADDRESS = "127.0.83.54"

#: What the dnsmasq instance knows: addresses with PTR and matching A/AAAA records.
HOSTS = {
    "127.0.90.1": "alpha.example.test",
    "127.0.90.2": "beta.example.test",
    "2001:db8::1": "six.example.test",
    "192.0.2.10": "www-10.example.test",
}
#: PTR records whose name does not lead back (for --confirm).
PTR_ONLY = {"192.0.2.66": "liar.example.test"}
#: Addresses dnsmasq answers NXDOMAIN for.
NO_RECORD = ["127.0.90.99", "2001:db8::99", "198.51.100.7"]


@dataclass
class DnsServer:
    host: str
    port: int

    @property
    def nameserver(self) -> str:
        return f"{self.host}:{self.port}"


def wait_for_dns(host: str, port: int, address: str) -> None:
    """Return once the server answers a PTR query (readiness, not a sleep)."""
    query = dns.message.make_query(dns.reversename.from_address(address), "PTR")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            dns.query.udp(query, host, port=port, timeout=0.2)
            return
        except (dns.exception.Timeout, OSError):
            continue
    raise RuntimeError(f"DNS server on {host}:{port} never answered")


def start_dnsmasq(
    processes: Processes,
    directory: Path,
    host: str = DNSMASQ_ADDRESS,
    hosts: dict[str, str] | None = None,
) -> DnsServer:
    """dnsmasq in the foreground on its own loopback address and port."""
    program = require_program("dnsmasq")
    port = free_port(host, socket.SOCK_DGRAM)
    hosts = HOSTS if hosts is None else hosts
    hosts_file = directory / "hosts"
    hosts_file.write_text("".join(f"{addr} {name}\n" for addr, name in hosts.items()))
    argv = [
        program,
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--user=root",
        f"--port={port}",
        f"--listen-address={host}",
        "--bind-interfaces",
        f"--addn-hosts={hosts_file}",
        f"--pid-file={directory / 'dnsmasq.pid'}",
        "--local=/arpa/",
        "--local=/test/",
        "--local-ttl=600",
        "--log-facility=/dev/null",
    ]
    argv += [
        f"--ptr-record={dns.reversename.from_address(addr).to_text()},{name}"
        for addr, name in PTR_ONLY.items()
    ]
    processes.start(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_dns(host, port, next(iter(hosts)))
    return DnsServer(host, port)


@pytest.fixture
def dnsmasq(processes: Processes, tmp_path: Path) -> DnsServer:
    return start_dnsmasq(processes, tmp_path)


Behaviour = Callable[[dns.message.Message], "list[tuple[float, bytes]] | None"]


class HostileResponder(threading.Thread):
    """A UDP DNS responder that gives the answers a normal server will not.

    `behaviours` maps an address to a function of the query that returns the
    datagrams to send back as (delay in seconds, wire); None or [] is silence.
    Addresses not listed get NXDOMAIN.
    """

    def __init__(self, host: str, behaviours: dict[str, Behaviour]) -> None:
        super().__init__(daemon=True)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind((host, 0))
        self.socket.settimeout(0.1)
        self.host, self.port = host, self.socket.getsockname()[1]
        self.behaviours = {dns.reversename.from_address(a): b for a, b in behaviours.items()}
        self.queries: list[str] = []
        self.stopping = threading.Event()
        self._due: list[tuple[float, int, bytes, tuple[str, int]]] = []  # a heap of delayed replies

    @property
    def nameserver(self) -> str:
        return f"{self.host}:{self.port}"

    def run(self) -> None:
        while not self.stopping.is_set():
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                _, _, wire, peer = heapq.heappop(self._due)
                self.socket.sendto(wire, peer)
            wait = min(0.1, self._due[0][0] - now) if self._due else 0.1
            self.socket.settimeout(max(wait, 0.001))
            try:
                data, peer = self.socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(data)
            name = query.question[0].name
            self.queries.append(name.to_text())
            behaviour = self.behaviours.get(name)
            replies = behaviour(query) if behaviour else [(0.0, nxdomain(query))]
            for delay, wire in replies or []:
                if delay:
                    due = (time.monotonic() + delay, len(self.queries), wire, peer)
                    heapq.heappush(self._due, due)
                else:
                    self.socket.sendto(wire, peer)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        self.socket.close()


def ptr_answer(query: dns.message.Message, target: dns.name.Name, ttl: int = 300) -> bytes:
    response = dns.message.make_response(query)
    question = query.question[0]
    response.answer.append(dns.rrset.from_rdata_list(question.name, ttl, [_ptr(target)]))
    return response.to_wire()


def _ptr(target: dns.name.Name) -> dns.rdata.Rdata:
    from dns.rdtypes.ANY.PTR import PTR

    return PTR(dns.rdataclass.IN, dns.rdatatype.PTR, target)


def nxdomain(query: dns.message.Message, soa_minimum: int | None = None) -> bytes:
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.NXDOMAIN)
    if soa_minimum is not None:
        soa = dns.rrset.from_text(
            "in-addr.arpa.",
            3600,
            "IN",
            "SOA",
            f"ns.test. admin.test. 1 3600 600 86400 {soa_minimum}",
        )
        response.authority.append(soa)
    return response.to_wire()


def rcode_only(query: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return response.to_wire()


@pytest.fixture
def hostile() -> Iterator[Callable[[dict[str, Behaviour]], HostileResponder]]:
    started: list[HostileResponder] = []

    def start(behaviours: dict[str, Behaviour]) -> HostileResponder:
        responder = HostileResponder(HOSTILE_ADDRESS, behaviours)
        responder.start()
        started.append(responder)
        return responder

    yield start
    for responder in started:
        responder.stop()
