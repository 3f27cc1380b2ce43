"""The in-flight controller, event by event (no sockets, no clock)."""

from __future__ import annotations

import pytest

from pentools.webresolve.flow import MIN_RETRY_TIMEOUT, InFlightControl


def test_window_starts_moderate_and_doubles_per_round_trip_while_answers_come() -> None:
    control = InFlightControl(maximum=1000, timeout=2.0, initial=64)
    assert control.window == 64
    for _ in range(64):  # one window's worth of answers: one round trip
        control.answered(0.001, in_flight=10_000)
    assert control.window == 128
    for _ in range(2000):
        control.answered(0.001, in_flight=10_000)
    assert control.window == 1000  # never beyond the user's maximum


def test_a_small_maximum_is_the_start() -> None:
    assert InFlightControl(maximum=10, timeout=2.0).window == 10
    assert InFlightControl(maximum=1, timeout=2.0).window == 1


def lose(control: InFlightControl, count: int, sent_at: float, now: float) -> list[bool]:
    """`count` queries sent at `sent_at` found missing one after another from `now`."""
    return [control.timed_out(sent_at, now + number / 1000) for number in range(count)]


def test_a_burst_of_losses_halves_the_window_once() -> None:
    control = InFlightControl(maximum=1000, timeout=2.0, initial=512)
    assert control.burst == 32  # one in 16 of the window
    blamed = lose(control, 40, sent_at=1.0, now=3.0)
    assert control.window == 256
    assert control.cuts == 1
    # Until the 32nd they might be addresses nobody answers for; then a burst,
    # and the rest of it (sent before the cut) is part of the same event.
    assert blamed == [False] * 31 + [True] * 9
    assert not any(lose(control, 15, sent_at=3.5, now=5.6))  # sent after: counted anew
    assert lose(control, 1, sent_at=3.5, now=5.7) == [True]  # 16th: the burst of a window of 256
    assert control.window == 128
    assert control.cuts == 2


def test_scattered_losses_are_not_congestion() -> None:
    control = InFlightControl(maximum=1000, timeout=2.0, initial=64)
    for step in range(100):  # one silent address every second
        assert not control.timed_out(float(step), now=step + 2.0)
    assert control.window == 64
    assert control.cuts == 0


def test_after_a_loss_the_window_grows_by_one_per_window_of_answers() -> None:
    control = InFlightControl(maximum=1000, timeout=2.0, initial=200)
    lose(control, 12, sent_at=0.0, now=0.1)
    assert control.window == 100
    for _ in range(102):  # a little more than one window: 1/100 each, then 1/101
        control.answered(0.001, in_flight=10_000)
    assert control.window == 101  # additive increase, no longer doubling


def test_losses_never_shrink_the_window_to_nothing() -> None:
    control = InFlightControl(maximum=1000, timeout=2.0)
    for step in range(50):
        lose(control, 4, sent_at=float(step), now=step + 0.5)
    assert control.window >= 1
    assert control.window == 4


def test_retry_timeout_is_the_users_until_an_answer_is_measured() -> None:
    control = InFlightControl(maximum=100, timeout=2.0)
    assert control.retry_timeout == 2.0
    control.answered(0.020, in_flight=10_000)
    # 20 ms plus four deviations of 10 ms: 60 ms, and at least 4 x 20 ms.
    assert control.retry_timeout == pytest.approx(0.080)


def test_retry_timeout_follows_round_trips_between_a_floor_and_the_users_timeout() -> None:
    control = InFlightControl(maximum=100, timeout=0.5)
    for _ in range(100):
        control.answered(0.0002, in_flight=10_000)  # a fast local server
    assert control.retry_timeout == MIN_RETRY_TIMEOUT
    for _ in range(100):
        control.answered(0.3, in_flight=10_000)  # a slow one
    assert control.retry_timeout == 0.5  # capped by the user's time-out


def test_varying_round_trips_widen_the_retry_timeout() -> None:
    steady, jittery = InFlightControl(100, 5.0), InFlightControl(100, 5.0)
    for number in range(200):
        steady.answered(0.1, in_flight=1)
        jittery.answered(0.02 if number % 2 else 0.18, in_flight=1)
    assert steady.smoothed_rtt == pytest.approx(0.1)
    assert jittery.retry_timeout > steady.retry_timeout


def test_an_unused_window_does_not_grow() -> None:
    control = InFlightControl(maximum=1000, timeout=2.0, initial=64)
    for _ in range(500):
        control.answered(0.001, in_flight=10)  # the input comes slowly: 10 at a time
    assert control.window == 64
    control.answered(0.001, in_flight=40)
    assert control.window == 65
