"""20,000 distinct addresses against one dnsmasq: drops under load cost no answer."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tests.conftest import Processes, run_tool
from tests.webresolve.conftest import start_dnsmasq

pytestmark = pytest.mark.realpart

ADDRESSES = 20_000


def test_a_flooded_server_loses_no_answer(processes: Processes, tmp_path: Path) -> None:
    """dnsmasq drops queries when hundreds arrive at once; each must be asked again.

    The window may grow to 5,000 (far more than dnsmasq's socket holds), a
    time-out of 2 s with two retries: every address must still be answered.
    """
    base = int(ipaddress.IPv4Address("10.20.0.0"))
    addresses = [str(ipaddress.IPv4Address(base + number)) for number in range(ADDRESSES)]
    hosts = {a: f"host-{n}.flood.test" for n, a in enumerate(addresses) if n % 10 != 9}
    server = start_dnsmasq(processes, tmp_path, hosts=hosts)
    data = "".join(f'{address} - - [x] "GET / HTTP/1.1" 200 1\n' for address in addresses)
    stats = tmp_path / "stats"
    result = run_tool(
        "webresolve", "--nameserver", server.nameserver, "-n", "5000",
        "-s", str(stats), input=data.encode(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = stats.read_text()
    print(report)
    expected = "".join(
        f'{hosts.get(address, address)} - - [x] "GET / HTTP/1.1" 200 1\n' for address in addresses
    )
    assert result.stdout.decode() == expected
    assert "  timed out                 : 0\n" in report, report
    assert f"  not found                 : {ADDRESSES // 10}\n" in report, report
