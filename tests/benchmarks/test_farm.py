"""The farm generator: deterministic, parseable by our core, consistent with its truth."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from benchmarks.farm import (
    APP_AGENT,
    SHAPES,
    FarmConfig,
    generate_farm,
    load_truth,
    read_events,
    shape_config,
)
from pentools.core.accesslog import LogFormat
from pentools.core.records import REQUEST_MAX, parse_datagram, parse_local, request_key
from tests.conftest import REPO_ROOT, SAMPLE_LOGS, tool_env

FILES = ("pen.log", "access_log.127.0.0.11", "access_log.127.0.0.12", "truth.tsv", "farm.json")


def _farm(tmp_path_factory: pytest.TempPathFactory, name: str, **options: object) -> Path:
    out = tmp_path_factory.mktemp(name)
    generate_farm(FarmConfig(out=out, requests=2500, rate=40.0, seed=7, **options))  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def classic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _farm(tmp_path_factory, "classic")


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _farm(tmp_path_factory, "extended", extended=True)


def _summary(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((out / "farm.json").read_text())  # type: ignore[no-any-return]


def _records(out: Path):  # type: ignore[no-untyped-def]
    return [parse_local(line) for line in (out / "pen.log").read_bytes().splitlines()]


def _lines(out: Path, server: str, log_format: str | None = None):  # type: ignore[no-untyped-def]
    reader = LogFormat(log_format)
    texts = (out / f"access_log.{server}").read_text(encoding="latin-1").splitlines()
    parsed = [reader.parse(text) for text in texts]
    assert all(line is not None for line in parsed), "a backend line does not parse"
    return parsed


def _truth(out: Path) -> list[tuple[str, int, str]]:
    rows = (out / "truth.tsv").read_text().splitlines()
    assert rows[0] == "server\tline\tclient"
    return [(s, int(n), c) for s, n, c in (row.split("\t") for row in rows[1:])]


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    outputs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_farm(FarmConfig(out=tmp_path / name, requests=600, rate=30.0, seed=seed))
        outputs.append({f: (tmp_path / name / f).read_bytes() for f in (*FILES, "events.tsv")})
    assert outputs[0] == outputs[1]
    assert outputs[0]["pen.log"] != outputs[2]["pen.log"]


def test_every_line_and_record_parses(classic: Path) -> None:
    summary = _summary(classic)
    records = _records(classic)
    assert len(records) == summary["records"] == summary["requests"] + summary["body_records"]
    for server in summary["servers"]:
        lines = _lines(classic, server["address"])
        assert len(lines) == server["lines"]
        # The backend logs the balancer's address, as a real backend would.
        assert {line.client for line in lines} == {"127.0.0.1"}
    assert {r.server for r in records} == {"127.0.0.11", "127.0.0.12"}
    assert any(":" in r.client for r in records) and any("." in r.client for r in records)


def test_backends_log_in_their_own_zone(classic: Path) -> None:
    for server, zone in (("127.0.0.11", "+0000"), ("127.0.0.12", "+0100")):
        text = (classic / f"access_log.{server}").read_text(encoding="latin-1")
        zones = set(re.findall(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d ([+-]\d{4})\]", text))
        assert zones == {zone}


def test_truth_rows_cover_every_line_once(classic: Path) -> None:
    summary = _summary(classic)
    truth = _truth(classic)
    by_server = defaultdict(list)
    for server, number, _client in truth:
        by_server[server].append(number)
    for server in summary["servers"]:
        assert sorted(by_server[server["address"]]) == list(range(1, server["lines"] + 1))
    assert len(truth) == summary["requests"]


def _assert_truth_agrees(out: Path, max_delay: float) -> None:
    """Each line has a record of its true client, same server and request, at the
    time the backend's clock offset and the delay allow; body chunks match nothing."""
    summary = _summary(out)
    by_key = defaultdict(list)
    for record in _records(out):
        by_key[(record.server, record.client, record.request)].append(record.time)
    truth = {(s, n): c for s, n, c in _truth(out)}
    used: Counter[tuple[str, str, str]] = Counter()
    for server in summary["servers"]:
        address, offset = server["address"], server["clock_offset"]
        assert abs(offset) <= summary["parameters"]["offset_max"]
        for number, line in enumerate(_lines(out, address), start=1):
            key = (address, truth[(address, number)], line.request_key())
            times = by_key.get(key, [])
            # %t and the record are whole seconds; a POST body may add 0.6 s.
            assert any(-1.0 < line.time - offset - t < max_delay + 1.7 for t in times), key
            used[key] += 1
    # Records without a line: exactly the body chunks.
    leftover = sum(len(times) - used[key] for key, times in by_key.items())
    assert leftover == summary["body_records"] > 0


def test_truth_agrees_with_records(classic: Path) -> None:
    _assert_truth_agrees(classic, max_delay=0.02)


def test_wide_delay_three_servers_one_zone(tmp_path_factory: pytest.TempPathFactory) -> None:
    out = _farm(tmp_path_factory, "wide", delay="wide", servers=3, backend_tz=("-0530",))
    summary = _summary(out)
    assert [s["address"] for s in summary["servers"]] == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    assert all(s["zone"] == "-0530" and s["lines"] > 500 for s in summary["servers"])
    text = (out / "access_log.127.0.0.13").read_text(encoding="latin-1")
    assert " -0530] " in text and " +0000] " not in text
    _assert_truth_agrees(out, max_delay=2.0)
    # Every client stays on the backend it was first sent to.
    servers_of = defaultdict(set)
    for record in _records(out):
        servers_of[record.client].add(record.server)
    assert all(len(servers) == 1 for servers in servers_of.values())


def test_requests_keep_pens_100_byte_limit(classic: Path) -> None:
    records = _records(classic)
    assert max(len(r.request) for r in records) == REQUEST_MAX
    long_lines = [
        line
        for server in ("127.0.0.11", "127.0.0.12")
        for line in _lines(classic, server)
        if len(line.request) > REQUEST_MAX
    ]
    summary = _summary(classic)
    assert 0.01 * summary["requests"] < len(long_lines) < 0.08 * summary["requests"]
    requests = {r.request for r in records}
    assert all(line.request_key() in requests for line in long_lines)


def test_lines_in_completion_order_records_in_forwarding_order(classic: Path) -> None:
    times = [r.time for r in _records(classic)]
    assert times == sorted(times)
    for server in ("127.0.0.11", "127.0.0.12"):
        stamps = [line.time for line in _lines(classic, server)]
        assert stamps != sorted(stamps)


def test_realistic_mix(classic: Path) -> None:
    summary = _summary(classic)
    requests = summary["requests"]
    assert 0.4 < summary["keepalive_requests"] / requests < 0.6
    assert 0.18 < summary["query_requests"] / requests < 0.32
    assert summary["posts"] > summary["body_records"] / 3 > 0
    assert summary["clients_seen"] > 500 and summary["ipv6_clients_seen"] > 20
    assert summary["same_second_collisions"] > 0  # popular URLs, many clients, one second
    statuses: Counter[str] = Counter()
    for server in ("127.0.0.11", "127.0.0.12"):
        text = (classic / f"access_log.{server}").read_text(encoding="latin-1")
        statuses.update(re.findall(r'" (\d{3}) [-\d]', text))
        assert re.search(r'" 304 - "', text)
        assert "Googlebot" in text or "bingbot" in text or "AhrefsBot" in text
    assert statuses["200"] > requests / 2 and statuses["404"] > 0


def test_extended_ports_join_exactly(extended: Path, classic: Path) -> None:
    records = _records(extended)
    assert all(r.upstream_port is not None for r in records)
    by_port = defaultdict(set)
    for r in records:
        by_port[(r.server, r.upstream_port, r.request)].add(r.client)
    truth = {(s, n): c for s, n, c in _truth(extended)}
    for server in ("127.0.0.11", "127.0.0.12"):
        lines = _lines(extended, server, "combined_port")
        for number, line in enumerate(lines, start=1):
            assert line.remote_port is not None and 32768 <= line.remote_port <= 60999
            clients = by_port[(server, line.remote_port, line.request_key())]
            assert truth[(server, number)] in clients
    # Keep-alive requests share their connection's port: fewer ports than requests.
    ports = Counter((r.server, r.upstream_port) for r in records)
    assert len(ports) < 0.8 * len(records)
    # The same farm otherwise: only the port fields differ from the classic one.
    classic_lines = (classic / "access_log.127.0.0.11").read_text(encoding="latin-1").splitlines()
    extended_lines = (extended / "access_log.127.0.0.11").read_text(encoding="latin-1")
    assert [line.rsplit(" ", 1)[0] for line in extended_lines.splitlines()] == classic_lines


def test_events_are_the_farm_in_global_time_order(classic: Path) -> None:
    summary = _summary(classic)
    rows = (classic / "events.tsv").read_text(encoding="latin-1").splitlines()
    assert rows[0] == "time\tsource\tpayload\tclient"
    events = [row.split("\t") for row in rows[1:]]
    assert len(events) == summary["records"] + summary["requests"]
    times = [float(e[0]) for e in events]
    assert times == sorted(times)
    truth = _truth(classic)
    line_events = [e for e in events if e[1] != "127.0.0.1"]
    assert [(e[1], e[3]) for e in line_events] == [(s, c) for s, _n, c in truth]
    logs = {
        server: (classic / f"access_log.{server}").read_text(encoding="latin-1").splitlines()
        for server in ("127.0.0.11", "127.0.0.12")
    }
    for (source, number, _client), event in zip(truth, line_events, strict=True):
        assert event[2] == logs[source][number - 1]
    record_events = [
        parse_datagram(e[2].encode(), float(e[0])) for e in events if e[1] == "127.0.0.1"
    ]
    assert [(r.client, r.request) for r in record_events] == [
        (r.client, r.request) for r in _records(classic)
    ]


def test_readers_for_benchmarks(classic: Path) -> None:
    truth = _truth(classic)
    assert load_truth(classic) == {(s, n): c for s, n, c in truth}
    events = list(read_events(classic))
    lines = [e for e in events if e.client is not None]
    assert [(e.source, e.client) for e in lines] == [(s, c) for s, _n, c in truth]
    assert all(e.payload.startswith(b"+ ") for e in events if e.client is None)


def test_body_chunk_records_are_what_pen_writes(classic: Path) -> None:
    requests = {r.request for r in _records(classic)}
    assert any(r.startswith(("product_id=", "username=", '{"')) for r in requests)
    assert request_key(b"GET / HTTP/1.1\r\nHost: x\r\n") in requests


def _documented_command() -> list[str]:
    readme = (SAMPLE_LOGS / "README.md").read_text()
    found = re.search(r"^(python -m benchmarks\.farm .*)$", readme, re.MULTILINE)
    assert found, "sample_logs/README.md must show the command that generated it"
    return shlex.split(found.group(1))


def test_sample_logs_are_a_fresh_generation(tmp_path: Path) -> None:
    argv = _documented_command()
    out_index = argv.index("--out") + 1
    assert argv[out_index] == "sample_logs"
    argv[out_index] = str(tmp_path / "fresh")
    # Another local zone and locale must not change a byte.
    env = tool_env(TZ="America/New_York", LC_ALL="C.UTF-8", LANG="de_DE.UTF-8")
    result = subprocess.run(
        [sys.executable, *argv[1:]], cwd=REPO_ROOT, env=env, capture_output=True
    )
    assert result.returncode == 0, result.stderr
    for name in FILES:
        assert (tmp_path / "fresh" / name).read_bytes() == (SAMPLE_LOGS / name).read_bytes(), name
    assert _summary(SAMPLE_LOGS)["requests"] == 3000


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backend-tz", "CET"], "bad time zone"),
        (["--requests", "0"], "--requests"),
        (["--rate", "-1"], "--rate"),
        (["--delay", "far"], "--delay"),
    ],
)
def test_bad_options_give_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.farm", *args, "--out", str(tmp_path / "x")],
        cwd=REPO_ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_generates_a_consistent_farm(tmp_path: Path, shape: str) -> None:
    out = tmp_path / shape
    generate_farm(shape_config(shape, out, seed=5, requests=400))
    summary = _summary(out)
    settings = SHAPES[shape].settings
    assert len(summary["servers"]) == settings.get("servers", 2)
    low, high = settings.get("offset_min", -1.5), settings.get("offset_max", 1.5)
    assert all(low <= s["clock_offset"] <= high for s in summary["servers"])  # type: ignore[operator]
    lines = sum(s["lines"] for s in summary["servers"])
    assert lines == summary["requests"] - summary["lost_lines"] == len(_truth(out))
    for server in summary["servers"]:
        _lines(out, server["address"])  # every line parses


def _agents_by_client(out: Path) -> dict[str, set[str]]:
    agents: dict[str, set[str]] = defaultdict(set)
    summary = _summary(out)
    truth = {(s, n): c for s, n, c in _truth(out)}
    for server in summary["servers"]:
        for number, line in enumerate(_lines(out, server["address"]), start=1):
            agents[truth[(server["address"], number)]].add(line.agent)
    return agents


def test_populations_nat_shares_addresses_monoculture_shares_one_agent(tmp_path: Path) -> None:
    nat = _agents_by_client(_shape(tmp_path, "nat-300"))
    assert sum(len(agents) > 1 for agents in nat.values()) > 10  # users behind one address
    app = _agents_by_client(_shape(tmp_path, "app-300"))
    assert set().union(*app.values()) == {APP_AGENT}
    mixed = _agents_by_client(_shape(tmp_path, "lan-100"))
    assert all(len(agents) == 1 for agents in mixed.values())  # a client keeps its browser


def test_completion_stamps_come_after_arrival_stamps(tmp_path: Path) -> None:
    """The same farm stamped by Apache (arrival) and nginx (completion): later or equal."""
    arrival = _shape(tmp_path, "tails-100")
    completion = tmp_path / "completion"
    generate_farm(shape_config("tails-100", completion, 5, 2000, stamp="completion"))
    delays = []
    for server in _summary(arrival)["servers"]:
        address = server["address"]  # the same requests, in the same (completion) order
        pairs = zip(_lines(arrival, address), _lines(completion, address), strict=True)
        for received, completed in pairs:
            assert received.request == completed.request
            delays.append(completed.time - received.time)
    assert min(delays) >= 0 and max(delays) >= 5  # the heavy tail: seconds late


def test_lost_lines_leave_records_without_a_line(tmp_path: Path) -> None:
    out = _shape(tmp_path, "lossy-300")
    summary = _summary(out)
    assert summary["lost_lines"] > 0
    assert len(_truth(out)) == summary["requests"] - summary["lost_lines"]
    assert summary["records"] - len(_truth(out)) == summary["body_records"] + summary["lost_lines"]


def _shape(tmp_path: Path, shape: str) -> Path:
    out = tmp_path / shape
    generate_farm(shape_config(shape, out, seed=5, requests=2000))
    return out
