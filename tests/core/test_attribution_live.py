"""Engine options for the live join (penlogd): the record bound (-n) and the prior band."""

from __future__ import annotations

from pentools.core.attribution import AttributionEngine, Outcome
from pentools.core.records import BalancerRecord


def add(engine: AttributionEngine, count: int, start: float = 0.0) -> None:
    for index in range(count):
        engine.add_record(
            BalancerRecord(f"10.0.0.{index % 250}", "192.0.2.1", "GET /", start + index)
        )


def test_without_a_bound_nothing_is_dropped() -> None:
    engine = AttributionEngine(window=1e9)
    add(engine, 5000)
    assert engine.pending_records == 5000


def test_the_bound_keeps_the_newest_and_counts_the_dropped_as_expired() -> None:
    engine = AttributionEngine(window=1e9, max_records=1000)
    add(engine, 5000)
    assert 1000 <= engine.pending_records <= 1000 + 1000 // 8
    assert engine.report.records_expired == 5000 - engine.pending_records
    # a line from long ago finds the oldest record kept, not a dropped one
    oldest_kept = 5000 - engine.pending_records
    answer = engine.match("192.0.2.1", "GET /", 0.0)
    assert answer.outcome is not Outcome.UNMATCHED
    assert answer.client == f"10.0.0.{oldest_kept % 250}"


def test_consumed_records_still_count_toward_the_bound_until_swept() -> None:
    engine = AttributionEngine(window=1e9, max_records=10)
    add(engine, 10)
    for index in range(10):
        assert engine.match("192.0.2.1", "GET /", float(index)).client == f"10.0.0.{index}"
    add(engine, 100, start=100.0)
    assert engine.pending_records <= 10 + 1


def test_a_prior_band_makes_an_unlearned_server_first_in_first_out() -> None:
    def engine_with(prior: tuple[float, float] | None) -> list[str | None]:
        engine = AttributionEngine(window=60, slack=0.05, resolution=0.05, prior_band=prior)
        for index in range(3):
            engine.add_record(BalancerRecord(f"10.0.0.{index}", "192.0.2.1", "GET /", index * 0.1))
        return [engine.match("192.0.2.1", "GET /", 0.5 + n * 0.01).client for n in range(3)]

    assert engine_with(None) == ["10.0.0.2", "10.0.0.1", "10.0.0.0"]  # nearest: newest first
    assert engine_with((-0.05, 60)) == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]
