"""How many look-ups to keep in flight, and how long to wait before asking again.

A name server that gets more queries at once than its socket buffer holds
drops the rest silently (dnsmasq does with a few hundred), and every drop
used to cost a whole time-out. `InFlightControl` treats the server like TCP
treats a path (RFC 5681, RFC 6298):

* the window of look-ups in flight starts moderate, doubles per round trip
  while answers come back (slow start), then grows by one per window of
  answers; a burst of time-outs halves it, once: the queries lost in one
  burst are one congestion event, not many. A few scattered time-outs do
  not count, since real logs hold addresses whose reverse zone never
  answers (lame delegations), and halving for each would starve the rest;
* the retry time-out follows the measured round-trip times: smoothed RTT plus
  four deviations, at least four smoothed RTTs and a small floor, at most
  the user's ``--timeout``; until the first answer it is the user's time-out.

It is sans-IO: the resolver reports sends, answers and time-outs with the
clock reading it took, so tests can drive it event by event.
"""

from __future__ import annotations

from collections import deque

#: Below this the retry time-out never goes: scheduling noise on a busy machine.
MIN_RETRY_TIMEOUT = 0.05
#: The window never shrinks below this, however many answers go missing.
MIN_WINDOW = 4
#: Where the window starts (the user's maximum if that is lower).
INITIAL_WINDOW = 64
#: A burst: this many time-outs (or one in 16 of the window, if more) noticed
#: within one retry time-out of each other. Fewer may as well be addresses
#: nobody answers for.
BURST_LOSSES = 3


class InFlightControl:
    """AIMD window of look-ups in flight and an RTT-derived retry time-out."""

    def __init__(self, maximum: int, timeout: float, initial: int = INITIAL_WINDOW) -> None:
        self.maximum = maximum
        self.minimum = min(MIN_WINDOW, maximum)
        self.timeout = timeout  # the user's time-out: the ceiling
        self._window = float(max(self.minimum, min(initial, maximum)))
        self.slow_start_limit = float(maximum)
        self.smoothed_rtt: float | None = None
        self.rtt_deviation = 0.0
        self._last_cut = float("-inf")  # when the window was last halved
        self._recent_losses: deque[float] = deque()  # when time-outs were noticed
        self.cuts = 0  # congestion events (window halvings)
        self.largest = int(self._window)

    @property
    def window(self) -> int:
        """Look-ups that may be in flight now."""
        return int(self._window)

    @property
    def retry_timeout(self) -> float:
        """How long to wait for an answer before asking again (seconds)."""
        if self.smoothed_rtt is None:
            return self.timeout
        estimate = max(
            self.smoothed_rtt + 4 * self.rtt_deviation,
            4 * self.smoothed_rtt,
            MIN_RETRY_TIMEOUT,
        )
        return min(estimate, self.timeout)

    def answered(self, rtt: float, in_flight: int) -> None:
        """An answer came back `rtt` seconds after the query that it answers was sent.

        The window grows only while it is used (`in_flight` look-ups, this one
        included): a window grown while the input was slow to come would
        later release a burst the server never showed it could take.
        """
        if self.smoothed_rtt is None:
            self.smoothed_rtt, self.rtt_deviation = rtt, rtt / 2
        else:
            self.rtt_deviation = 0.75 * self.rtt_deviation + 0.25 * abs(self.smoothed_rtt - rtt)
            self.smoothed_rtt = 0.875 * self.smoothed_rtt + 0.125 * rtt
        if 2 * in_flight < self._window:
            return
        if self._window < self.slow_start_limit:
            self._window += 1.0
        else:
            self._window += 1.0 / self._window
        self._window = min(self._window, float(self.maximum))
        self.largest = max(self.largest, int(self._window))

    @property
    def burst(self) -> int:
        """How many time-outs close together make a burst."""
        return max(BURST_LOSSES, int(self._window) // 16)

    def timed_out(self, sent_at: float, now: float) -> bool:
        """No answer to a query sent at `sent_at`; True if blamed on congestion.

        The loss that completes a burst halves the window; a query sent
        before that belongs to the burst that caused it. Either is blamed on
        congestion, not on the address.
        """
        if sent_at < self._last_cut:
            return True
        recent = self._recent_losses
        recent.append(now)
        horizon = now - self.retry_timeout
        while recent[0] < horizon:
            recent.popleft()
        if len(recent) < self.burst:
            return False
        recent.clear()
        self._last_cut = now
        self.cuts += 1
        self._window = max(float(self.minimum), self._window / 2)
        self.slow_start_limit = self._window
        return True
