"""The join engine, driven event by event (no files, no sockets)."""

from collections import deque

from pentools.core.attribution import AttributionEngine, ClockOffset, Fingerprints, Outcome
from pentools.core.records import BalancerRecord

SERVER = "10.0.0.1"
GET = "GET / HTTP/1.1"


def record(client: str, time: float, request: str = GET, port: int | None = None) -> BalancerRecord:
    return BalancerRecord(client, SERVER, request, time, port)


def test_each_record_is_used_once() -> None:
    engine = AttributionEngine(window=60)
    engine.add_record(record("192.0.2.1", 100))
    assert engine.match(SERVER, GET, 100).client == "192.0.2.1"
    second = engine.match(SERVER, GET, 100)
    assert second == second.__class__(None, Outcome.UNMATCHED)
    assert engine.report.matched == 1 and engine.report.unmatched == 1


def test_nearest_in_time_within_the_window() -> None:
    engine = AttributionEngine(window=60)
    for client, time in (("192.0.2.1", 100), ("192.0.2.2", 130), ("192.0.2.3", 300)):
        engine.add_record(record(client, time))
    assert engine.match(SERVER, GET, 128).client == "192.0.2.2"
    assert engine.match(SERVER, GET, 235).client is None  # 300 is 65 away, 100 is 135
    assert engine.match(SERVER, GET, 299).client == "192.0.2.3"


def test_before_the_band_the_older_of_two_within_a_second_goes_first() -> None:
    """Request A stamped 100 is logged at 101; request B of the same URL, stamped
    101, later: with one-second stamps both records fit A's line, and the older
    one is A's (nearest first gave A's line to B, and B's line to A)."""
    engine = AttributionEngine(window=60)
    engine.add_record(record("192.0.2.1", 100))
    engine.add_record(record("192.0.2.2", 101))
    assert engine.match(SERVER, GET, 101).client == "192.0.2.1"
    assert engine.match(SERVER, GET, 101).client == "192.0.2.2"
    # nearer by more than the resolution still wins
    engine.add_record(record("192.0.2.3", 200))
    engine.add_record(record("192.0.2.4", 203))
    assert engine.match(SERVER, GET, 203).client == "192.0.2.4"


def test_keys_are_server_and_request() -> None:
    engine = AttributionEngine(window=60)
    engine.add_record(record("192.0.2.1", 100, "GET /a HTTP/1.1"))
    engine.add_record(BalancerRecord("192.0.2.2", "10.0.0.2", GET, 100))
    assert engine.match(SERVER, GET, 100).client is None
    assert engine.match("10.0.0.2", GET, 100).client == "192.0.2.2"
    assert not engine.has_candidates(SERVER, GET)
    assert engine.has_candidates(SERVER, "GET /a HTTP/1.1")


def test_learned_offset_gives_first_in_first_out_within_the_band() -> None:
    """A backend 2 s ahead: once learned, same-second repeats keep the balancer's order."""
    engine = AttributionEngine(window=600)
    time = 1000.0
    for index in range(ClockOffset.MIN_SAMPLES + 4):  # unique requests teach the offset
        request = f"GET /unique/{index} HTTP/1.1"
        engine.add_record(record("198.51.100.9", time + index * 10, request))
        assert engine.match(SERVER, request, time + index * 10 + 2).outcome is Outcome.MATCHED
    assert engine.offset(SERVER).median == 2.0
    base = time + 500
    clients = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    for client in clients:
        engine.add_record(record(client, base))
    # Nearest-in-time alone would pick any of the three; FIFO keeps the order.
    results = [engine.match(SERVER, GET, base + 2) for _ in clients]
    assert [r.client for r in results] == clients
    assert [r.outcome for r in results] == [Outcome.AMBIGUOUS, Outcome.AMBIGUOUS, Outcome.MATCHED]


def banded_engine() -> AttributionEngine:
    """An engine that has learned SERVER's band: lines logged when their records were made."""
    engine = AttributionEngine(window=600)
    for index in range(ClockOffset.MIN_SAMPLES):
        request = f"GET /u/{index} HTTP/1.1"
        engine.add_record(record("198.51.100.9", index * 10, request))
        engine.match(SERVER, request, index * 10)
    return engine


def test_band_keeps_a_lost_line_from_shifting_the_rest() -> None:
    engine = banded_engine()
    stale = 450 - engine.reach - 10  # older than the band by more than the reach
    engine.add_record(record("192.0.2.1", stale))  # its line was never logged
    engine.add_record(record("192.0.2.2", 450))
    assert engine.match(SERVER, GET, 450).client == "192.0.2.2"


def test_a_record_left_behind_goes_first_and_ends_the_shift() -> None:
    """A line took the next line's record by mistake (a shift): its own record,
    a little older than the band, goes first, and the lines after are right
    again instead of each taking its successor's record."""
    engine = banded_engine()
    # The line of 192.0.2.1 (at 440) took the record of 192.0.2.2 (450) and left its own.
    engine.add_record(record("192.0.2.1", 440))
    engine.add_record(record("192.0.2.3", 451))
    engine.add_record(record("192.0.2.4", 452))
    assert engine.match(SERVER, GET, 450).client == "192.0.2.1"  # 192.0.2.2's line: the error
    assert engine.match(SERVER, GET, 451).client == "192.0.2.3"  # and no more
    assert engine.match(SERVER, GET, 452).client == "192.0.2.4"


def test_outside_the_band_only_a_record_no_later_line_can_claim() -> None:
    """A line whose own record is gone must not take the next line's record."""
    engine = banded_engine()
    engine.add_record(record("192.0.2.1", 300))  # stale: older than any later band
    engine.add_record(record("192.0.2.2", 420))  # belongs to the line at 420
    assert engine.match(SERVER, GET, 400).client == "192.0.2.1"
    assert engine.match(SERVER, GET, 410).client is None  # not 192.0.2.2's record
    assert engine.match(SERVER, GET, 420).client == "192.0.2.2"


def test_the_band_follows_delays_that_grow_but_not_a_slow_request() -> None:
    """Arrival times to the 10 ms (penlogd): a band learned while delays were
    under 0.1 s must widen when they grow, from requests alone in the window
    though outside the band; one that took 30 s is a slow request, not the
    clock, and leaves the band as it was."""
    engine = AttributionEngine(
        window=60, slack=0.05, resolution=0.05, prior_band=(-0.05, 60), reach=0.0
    )
    clock = 1000.0

    def unique_request(delay: float) -> None:
        nonlocal clock
        clock += 1
        request = f"GET /u/{clock} HTTP/1.1"
        engine.add_record(record("198.51.100.9", clock, request))
        assert engine.match(SERVER, request, clock + delay).client == "198.51.100.9"

    for index in range(32):  # the prior band gives way after 32 samples
        unique_request(delay=index / 400)  # 0 to 0.08 s
    band = engine.offset(SERVER).band
    assert band is not None and band[1] < 0.2
    unique_request(delay=30)  # a slow request
    for _ in range(40):
        unique_request(delay=0.3)  # the network got slower
    band = engine.offset(SERVER).band
    assert band is not None and 0.3 <= band[1] < 1


def test_same_client_candidates_are_not_ambiguous() -> None:
    engine = AttributionEngine(window=60)
    engine.add_record(record("192.0.2.1", 100))
    engine.add_record(record("192.0.2.1", 100))
    assert engine.match(SERVER, GET, 100).outcome is Outcome.MATCHED


def test_exact_join_on_the_upstream_port() -> None:
    engine = AttributionEngine(window=60)
    engine.add_record(record("192.0.2.1", 100, port=40001))
    engine.add_record(record("192.0.2.2", 100, port=40002))
    second = engine.match(SERVER, GET, 100, remote_port=40002)
    first = engine.match(SERVER, GET, 100, remote_port=40001)
    assert (second.client, second.outcome) == ("192.0.2.2", Outcome.EXACT)
    assert (first.client, first.outcome) == ("192.0.2.1", Outcome.EXACT)
    assert engine.report.exact == 2


def test_expiry_counts_unused_records_and_frees_them() -> None:
    engine = AttributionEngine(window=10)
    engine.add_record(record("192.0.2.1", 100))
    engine.add_record(record("192.0.2.2", 105, "GET /b HTTP/1.1"))
    engine.match(SERVER, "GET /b HTTP/1.1", 105)
    engine.add_record(record("192.0.2.3", 200))
    engine.advance(150)
    assert engine.report.records_expired == 1
    assert engine.pending_records == 1
    assert engine.match(SERVER, GET, 200).client == "192.0.2.3"


def test_out_of_order_records_are_kept_sorted() -> None:
    engine = AttributionEngine(window=5)
    engine.add_record(record("192.0.2.2", 110))
    engine.add_record(record("192.0.2.1", 100))
    assert engine.match(SERVER, GET, 101).client == "192.0.2.1"
    assert engine.match(SERVER, GET, 111).client == "192.0.2.2"


def teach(engine: AttributionEngine, client: str, agent: str, time: float) -> None:
    """A request no one else makes: an unambiguous match that teaches the engine."""
    request = f"GET /only/{client}/{time} HTTP/1.1"
    engine.add_record(record(client, time, request))
    assert engine.match(SERVER, request, time, fingerprint=agent).client == client


def learned_engine() -> AttributionEngine:
    """Clients seen twice each with their own agent: fingerprints are trusted."""
    engine = AttributionEngine(window=600)
    for index in range(Fingerprints.MIN_SEEN_AGAIN):
        for visit in (0, 1):
            teach(engine, f"198.51.100.{index}", f"agent {index}", index * 8.0 + visit)
    teach(engine, "192.0.2.1", "Firefox", 300)
    teach(engine, "192.0.2.2", "Chrome", 301)
    return engine


def test_a_client_seen_with_another_user_agent_is_passed_over() -> None:
    engine = learned_engine()
    engine.add_record(record("192.0.2.1", 400))  # Firefox, the oldest
    engine.add_record(record("192.0.2.3", 401))  # never seen
    assert engine.match(SERVER, GET, 401, fingerprint="Chrome").client == "192.0.2.3"
    assert engine.match(SERVER, GET, 401, fingerprint="Firefox").client == "192.0.2.1"


def test_the_same_user_agent_wins_among_simultaneous_records_only() -> None:
    engine = learned_engine()
    engine.add_record(record("192.0.2.3", 400))  # never seen
    engine.add_record(record("192.0.2.2", 400))  # Chrome, same second
    assert engine.match(SERVER, GET, 400, fingerprint="Chrome").client == "192.0.2.2"
    engine = learned_engine()
    engine.add_record(record("192.0.2.3", 399))  # a second earlier: order first
    engine.add_record(record("192.0.2.2", 400))
    assert engine.match(SERVER, GET, 400, fingerprint="Chrome").client == "192.0.2.3"


def test_guesses_teach_nothing() -> None:
    engine = AttributionEngine(window=600)
    engine.add_record(record("192.0.2.1", 100))
    engine.add_record(record("192.0.2.2", 100))
    engine.match(SERVER, GET, 100, fingerprint="Chrome")
    assert engine.offset(SERVER).band is None
    assert not engine._fingerprints.confirms("192.0.2.1", "Chrome")
    assert not engine._fingerprints.confirms("192.0.2.2", "Chrome")


def test_a_request_whose_other_record_was_used_teaches_nothing() -> None:
    """Two requests of a key, the second line alone in the queue once the first
    took a record: not unambiguous, the first may have taken the wrong one."""
    engine = AttributionEngine(window=600)
    engine.add_record(record("192.0.2.1", 100))
    engine.add_record(record("192.0.2.2", 104))
    engine.match(SERVER, GET, 103, fingerprint="Chrome")
    engine.match(SERVER, GET, 104, fingerprint="Firefox")
    assert not engine._fingerprints.confirms("192.0.2.2", "Firefox")
    assert engine.offset(SERVER)._samples == deque()


def test_a_client_is_known_by_the_user_agent_it_was_last_seen_with() -> None:
    prints = Fingerprints(capacity=100, tolerance=0.25)
    for index in range(Fingerprints.MIN_SEEN_AGAIN):  # clients that keep their agent
        prints.remember(f"198.51.100.{index}", f"agent {index}")
        prints.remember(f"198.51.100.{index}", f"agent {index}")
    prints.remember("192.0.2.1", "Firefox")
    assert prints.against("192.0.2.1", "Chrome") and prints.confirms("192.0.2.1", "Firefox")
    prints.remember("192.0.2.1", "Chrome")  # a browser update, or another user behind it
    assert prints.against("192.0.2.1", "Firefox") and prints.confirms("192.0.2.1", "Chrome")


def test_user_agents_are_trusted_only_while_clients_keep_theirs() -> None:
    """Half the clients seen again changed agent: beyond mergelogs' tolerance, within
    penlogd's (its lines come in completion order, which says less than an agent)."""
    strict, lenient = Fingerprints(1000, tolerance=0.25), Fingerprints(1000, tolerance=1.0)
    for prints in (strict, lenient):
        for index in range(Fingerprints.MIN_SEEN_AGAIN):
            prints.remember(f"198.51.100.{index}", f"agent {index}")
            prints.remember(f"198.51.100.{index}", f"agent {index}")
        assert prints.trusted and prints.against("198.51.100.1", "agent 2")
        for index in range(Fingerprints.MIN_SEEN_AGAIN):  # a NAT population shows up
            prints.remember(f"203.0.113.{index}", "Firefox")
            prints.remember(f"203.0.113.{index}", "Chrome")
    assert not strict.trusted and not strict.against("198.51.100.1", "agent 2")
    assert lenient.trusted and lenient.against("198.51.100.1", "agent 2")


def test_a_user_agent_everyone_has_keeps_the_balancers_order() -> None:
    """An app whose every client sends the same agent: being seen with it says
    nothing, so a known client does not jump ahead of an unknown one."""
    engine = AttributionEngine(window=600)
    for index in range(Fingerprints.MIN_SEEN_AGAIN):
        for visit in (0, 1):
            teach(engine, f"198.51.100.{index}", "ShopApp/5", index * 8.0 + visit)
    engine.add_record(record("192.0.2.9", 400))  # never seen
    engine.add_record(record("198.51.100.3", 400))  # seen with the app's agent
    assert engine.match(SERVER, GET, 400, fingerprint="ShopApp/5").client == "192.0.2.9"


def test_nearest_takes_the_oldest_of_records_stamped_together() -> None:
    """Records of one second, shifted by the balancer's clock (-t 0.6): the
    nearest older ones are three equals; the first forwarded goes first, not the last."""
    engine = AttributionEngine(window=60)
    for client in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        engine.add_record(record(client, 99.4))
    assert [engine.match(SERVER, GET, 100).client for _ in range(3)] == [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
    ]


def test_a_prior_band_over_the_window_is_first_in_first_out_at_any_offset() -> None:
    """mergelogs' prior: until a clock is learned (a popular page may never teach
    it), the balancer's order, whatever the backend's offset."""
    engine = AttributionEngine(window=60, prior_band=(-60, 60))
    for second in range(5):
        for index in range(2):
            engine.add_record(record(f"192.0.2.{second * 2 + index}", 100 + second))
    lines = [engine.match(SERVER, GET, 101.7 + second).client for second in range(5) for _ in "ab"]
    assert lines == [f"192.0.2.{n}" for n in range(10)]
