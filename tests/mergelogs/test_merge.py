"""mergelogs' library: ordering, attribution, nothing lost."""

import gzip
import io
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pentools.core.accesslog import LogFormat
from pentools.mergelogs.merge import LogSource, MergeConfig, merge_logs

BALANCER = "10.0.0.254"
T0 = 1_700_000_000  # 14/Nov/2023:22:13:20 +0000


def clf(client: str, seconds: int, request: str, zone: str = "+0000", extra: str = "") -> str:
    from datetime import datetime, timedelta, timezone

    sign = 1 if zone[0] == "+" else -1
    tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])))
    moment = datetime.fromtimestamp(T0 + seconds, tz)
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    stamp = f"{moment:%d}/{months[moment.month - 1]}/{moment:%Y:%H:%M:%S} {zone}"
    return f'{client} - - [{stamp}] "{request}" 200 512 "-" "test-agent"{extra}\n'


def merge(tmp_path: Path, records: list[str], logs: dict[str, list[str]], **options: object):
    pen_log = tmp_path / "pen.log"
    pen_log.write_text("".join(records))
    sources = []
    for server, lines in logs.items():
        path = tmp_path / f"access_log.{server}"
        path.write_bytes("".join(lines).encode("latin-1"))
        sources.append(LogSource(server, frozenset([server]), str(path)))
    out = io.StringIO()
    stats = merge_logs(MergeConfig(str(pen_log), tuple(sources), **options), out)  # type: ignore[arg-type]
    # split at \n only: str.splitlines() would also split at \x1c-\x1e, \x85...
    return [line + "\n" for line in out.getvalue().split("\n")[:-1]], stats


def test_first_field_replaced_and_time_stamps_kept(tmp_path: Path) -> None:
    records = [
        f"192.0.2.1 {T0} 10.0.0.1 GET /a HTTP/1.1\n",
        f"2001:db8::2 {T0 + 1} 10.0.0.2 GET /b HTTP/1.1\n",
    ]
    logs = {
        "10.0.0.1": [clf(BALANCER, 0, "GET /a HTTP/1.1", "+0200")],
        "10.0.0.2": [clf(BALANCER, 1, "GET /b HTTP/1.1", "-0500")],
    }
    lines, stats = merge(tmp_path, records, logs)
    assert lines == [
        logs["10.0.0.1"][0].replace(BALANCER, "192.0.2.1"),
        logs["10.0.0.2"][0].replace(BALANCER, "2001:db8::2"),
    ]
    assert stats.join.matched == 2 and stats.join.records_unused == 0


def test_output_in_time_order_stable_for_equal_times(tmp_path: Path) -> None:
    # Backend 1 writes in completion order: a slow request (t=0) after a quick one (t=5).
    logs = {
        "10.0.0.1": [
            clf(BALANCER, 5, "GET /quick HTTP/1.1"),
            clf(BALANCER, 0, "GET /slow HTTP/1.1"),
        ],
        "10.0.0.2": [clf(BALANCER, 0, "GET /x HTTP/1.1"), clf(BALANCER, 5, "GET /y HTTP/1.1")],
    }
    lines, stats = merge(tmp_path, [], logs)
    assert [line.split('"')[1] for line in lines] == [
        "GET /slow HTTP/1.1",
        "GET /x HTTP/1.1",
        "GET /quick HTTP/1.1",
        "GET /y HTTP/1.1",
    ]
    assert stats.join.unmatched == 4 and stats.late == 0


def test_unmatched_keep_or_server(tmp_path: Path) -> None:
    logs = {"10.0.0.1": [clf(BALANCER, 0, "GET /nobody HTTP/1.1")]}
    kept, _ = merge(tmp_path, [], logs)
    assert kept[0].startswith(BALANCER + " ")
    server, _ = merge(tmp_path, [], logs, unmatched="server")
    assert server[0].startswith("10.0.0.1 ")


def test_jitter_window_and_clock_offset(tmp_path: Path) -> None:
    records = [f"192.0.2.1 {T0 + 3600} 10.0.0.1 GET /a HTTP/1.1\n"]
    logs = {"10.0.0.1": [clf(BALANCER, 0, "GET /a HTTP/1.1")]}
    lines, _ = merge(tmp_path, records, logs, jitter=600)
    assert lines[0].startswith(BALANCER)  # an hour apart: no match
    lines, _ = merge(tmp_path, records, logs, jitter=600, clock_offset=3600)
    assert lines[0].startswith("192.0.2.1 ")  # pen's clock ran an hour ahead of UTC


def test_extended_records_join_exactly(tmp_path: Path) -> None:
    # Three clients, same URL, same second, lines logged in another order.
    records = [f"192.0.2.{n} {T0} 10.0.0.1#4000{n} GET / HTTP/1.1\n" for n in (1, 2, 3)]
    logs = {"10.0.0.1": [clf(BALANCER, 0, "GET / HTTP/1.1", extra=f" 4000{n}") for n in (3, 1, 2)]}
    lines, stats = merge(tmp_path, records, logs, log_format="combined_port")
    assert [line.split()[0] for line in lines] == ["192.0.2.3", "192.0.2.1", "192.0.2.2"]
    assert stats.join.exact == 3


def test_malformed_lines_pass_through_near_their_neighbours(tmp_path: Path) -> None:
    garbage = "\x00\x01 not a log line \xff\n"
    logs = {
        "10.0.0.1": [
            clf(BALANCER, 0, "GET /a HTTP/1.1"),
            garbage,
            clf(BALANCER, 9, "GET /b HTTP/1.1"),
        ]
    }
    lines, stats = merge(tmp_path, [], logs)
    assert lines[1] == garbage and stats.join.malformed == 1 and len(lines) == 3


def test_gzip_input_and_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "access_log.gz"
    with gzip.open(path, "wt") as packed:
        packed.write(clf(BALANCER, 0, "GET /a HTTP/1.1").rstrip("\n"))
    (tmp_path / "pen.log").write_text(f"192.0.2.1 {T0} 10.0.0.1 GET /a HTTP/1.1\n")
    out = io.StringIO()
    source = LogSource("10.0.0.1", frozenset(["10.0.0.1"]), str(path))
    merge_logs(MergeConfig(str(tmp_path / "pen.log"), (source,)), out)
    assert out.getvalue().startswith("192.0.2.1 ") and out.getvalue().endswith("\n")


def test_records_of_other_servers_and_malformed_records_are_counted(tmp_path: Path) -> None:
    records = [f"192.0.2.1 {T0} 10.9.9.9 GET /a HTTP/1.1\n", "garbage\n"]
    _, stats = merge(tmp_path, records, {"10.0.0.1": [clf(BALANCER, 0, "GET /a HTTP/1.1")]})
    assert (stats.records_other_server, stats.records_malformed) == (1, 1)


# --- property: whatever the input, the output is the input with only first fields changed

clients = st.sampled_from(["192.0.2.1", "192.0.2.2", "2001:db8::3", "198.51.100.4"])
requests = st.sampled_from(["GET / HTTP/1.1", "GET /a HTTP/1.1", "POST /f HTTP/1.0"])
junk = st.text(
    alphabet=st.characters(min_codepoint=1, max_codepoint=255, exclude_characters="\n"), max_size=40
)
log_line = st.one_of(
    st.builds(lambda s, r: clf(BALANCER, s, r), st.integers(0, 30), requests),
    junk.map(lambda text: text + "\n"),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(
        st.tuples(clients, st.integers(0, 30), st.sampled_from(["10.0.0.1", "10.0.0.2"]), requests),
        max_size=30,
    ),
    log1=st.lists(log_line, max_size=25),
    log2=st.lists(log_line, max_size=25),
    jitter=st.sampled_from([1.0, 5.0, 600.0]),
)
def test_output_is_a_permutation_with_only_first_fields_changed(
    tmp_path: Path, records: list, log1: list[str], log2: list[str], jitter: float
) -> None:
    pen = [f"{c} {T0 + s} {srv} {r}\n" for c, s, srv, r in sorted(records, key=lambda x: x[1])]
    lines, stats = merge(tmp_path, pen, {"10.0.0.1": log1, "10.0.0.2": log2}, jitter=jitter)
    parser = LogFormat()

    def without_client(line: str) -> str:
        parsed = parser.parse(line)
        return line if parsed is None else line[parsed.end :]

    assert Counter(map(without_client, lines)) == Counter(map(without_client, log1 + log2))
    allowed = {BALANCER} | {c for c, *_ in records}
    for line in lines:
        parsed = parser.parse(line)
        if parsed is not None:
            assert parsed.client in allowed
    assert stats.join.lines == len(log1) + len(log2)
    assert stats.join.attributed + stats.join.unmatched + stats.join.malformed == stats.join.lines
    assert stats.join.attributed <= len(records)
    times = []
    for parsed in map(parser.parse, lines):
        if parsed is not None:
            assert parsed.time is not None  # the common log format has %t
            times.append(parsed.time)
    if stats.late == 0:  # lines later than the jitter window are written at once, counted
        assert times == sorted(times)


def test_lines_of_any_length(tmp_path: Path) -> None:
    huge_agent = "A" * 4_000_000  # the C tool reads 1023 bytes of a line
    huge = clf(BALANCER, 0, "GET /a HTTP/1.1").replace("test-agent", huge_agent)
    junk = "x" * 3_000_000 + "\n"
    records = [f"192.0.2.1 {T0} 10.0.0.1 GET /a HTTP/1.1\n"]
    lines, stats = merge(tmp_path, records, {"10.0.0.1": [huge, junk]})
    assert lines == [huge.replace(BALANCER, "192.0.2.1", 1), junk]
    assert stats.join.matched == 1 and stats.join.malformed == 1


def test_a_line_later_than_the_reorder_window_is_kept_and_counted(tmp_path: Path) -> None:
    # A request that ran 180 s is logged after lines stamped up to 170 s later:
    # with a 60 s window /quick has been written by then.
    logs = {
        "10.0.0.1": [
            clf(BALANCER, 100, "GET /quick HTTP/1.1"),
            clf(BALANCER, 170, "GET /middle HTTP/1.1"),
            clf(BALANCER, 0, "GET /slow HTTP/1.1"),
            clf(BALANCER, 200, "GET /later HTTP/1.1"),
        ]
    }
    lines, stats = merge(tmp_path, [], logs, reorder=60.0)
    paths = [line.split('"')[1].split()[1] for line in lines]
    assert paths == ["/quick", "/slow", "/middle", "/later"]
    assert stats.late == 1
    lines, stats = merge(tmp_path, [], logs, reorder=600.0)
    paths = [line.split('"')[1].split()[1] for line in lines]
    assert paths == ["/slow", "/quick", "/middle", "/later"]
    assert stats.late == 0
