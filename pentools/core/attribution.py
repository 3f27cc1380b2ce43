"""The join engine: which client made this request?  Shared by penlogd and mergelogs.

Sans-IO: the caller feeds balancer records (`add_record`) and asks for the
client of each backend log line (`match`), in (roughly) time order, and
expires old records (`expire`).  Times are plain floats: the balancer's and
backend's time stamps for mergelogs, arrival times for penlogd.

The rule, for a line from server S with request key R at time t:

1. Exact: if the line carries the balancer's upstream port and an extended
   record of (S, port, R) exists, take the one nearest in time.
2. Otherwise among the unconsumed records of (S, R) within ``window`` of t,
   first in, first out, the balancer's order: the oldest record goes first,
   unless something learned says otherwise.  What can be learned:
   - S's clock: once enough unambiguous matches (a single record of the key
     in the window) have shown how S's time stamps relate to the balancer's,
     a record newer than the band of that relation belongs to a line still
     to come, and one older than the band by more than ``reach`` to a line
     that was never logged; neither is taken while a record in between is.
     Records a little older than the band stay first: a line that took a
     newer record by mistake left its own there, and taking it ends the shift
     instead of passing it on to every later line of a popular request.  If
     only stale records are left, the nearest of them is taken: no later
     line can claim it.  Until the band is known, the record nearest to the
     expected time is taken, the older of two less than a time resolution
     apart in distance.
   - Each client's *fingerprint* (its User-Agent; see `Fingerprints`):
     a client seen with another one is passed over, and among records of
     the same second (``resolution``), whose order says little, a client
     seen with this one goes first.  Where fingerprints teach nothing (a
     population sharing addresses or one User-Agent), the order alone decides.
3. Each record is consumed by at most one line.  A line matched while other
   candidates with a different client were also plausible is *ambiguous*.
"""

from __future__ import annotations

import enum
import heapq
import json
import math
from bisect import bisect_left, bisect_right, insort
from collections import deque
from dataclasses import dataclass, field

from pentools.core.records import BalancerRecord


class Outcome(enum.Enum):
    """How a line was attributed."""

    EXACT = "exact"  # joined on the upstream port
    MATCHED = "matched"  # one plausible client
    AMBIGUOUS = "ambiguous"  # matched, but another client was plausible too
    UNMATCHED = "unmatched"  # no record within the window


@dataclass(frozen=True, slots=True)
class Attribution:
    """The answer for one line: the client, or None when unmatched."""

    client: str | None
    outcome: Outcome


#: The answer for a line no record fits (one instance: it is immutable).
_UNMATCHED = Attribution(None, Outcome.UNMATCHED)


@dataclass
class JoinReport:
    """The one accounting of a join, whoever runs it.

    penlogd's counters (USR1, exit, metrics) and mergelogs' ``--stats`` are
    this report, rendered by `render` in one layout and by `to_json` as JSON;
    the field names are stable (metrics and scripts read them).
    """

    lines: int = 0  # log lines seen; every one is written
    exact: int = 0  # ... joined on the balancer's upstream port
    matched: int = 0  # ... to the one plausible client
    ambiguous: int = 0  # ... while another client was plausible too
    unmatched: int = 0  # ... parsed, but no record fits: written with their own client
    malformed: int = 0  # ... not in the log format: written unchanged
    records: int = 0  # balancer records received for the known servers
    records_unused: int = 0  # ... no line used: expired, or still waiting at report time
    records_expired: int = 0  # ... dropped unused, older than the window (or over -n)

    @property
    def attributed(self) -> int:
        return self.exact + self.matched + self.ambiguous

    def fields(self) -> dict[str, int]:
        """The counters by name, in the report's order."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def render(self, extra: dict[str, object] | None = None) -> str:
        """One line: ``lines N (attributed P%), exact N, ...`` then `extra`, tool-specific."""
        share = 100 * self.attributed / self.lines if self.lines else 0.0
        parts = [f"lines {self.lines} (attributed {share:.2f}%)"]
        parts += [f"{name} {value}" for name, value in self.fields().items() if name != "lines"]
        text = ", ".join(parts)
        if extra:
            text += "; " + ", ".join(f"{name} {value}" for name, value in extra.items())
        return text

    def to_json(self, extra: dict[str, object] | None = None) -> str:
        """The counters, `attributed` and `extra` as a JSON object (one line)."""
        return json.dumps({**self.fields(), "attributed": self.attributed, **(extra or {})})


class _Pending:
    """A record waiting for its line (compact: the key lives in the queue)."""

    __slots__ = ("client", "consumed", "port", "time")

    def __init__(self, time: float, client: str, port: int | None) -> None:
        self.time = time
        self.client = client
        self.port = port
        self.consumed = False


class _KeyQueue:
    """The records of one (server, request key), in time order."""

    __slots__ = ("head", "last_used", "live", "records", "times")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.records: list[_Pending] = []
        self.head = 0  # records before it are consumed or expired
        self.live = 0  # unconsumed records
        self.last_used = -math.inf  # the time of the newest record a line used

    def insert(self, pending: _Pending) -> None:
        """Add a record older than the newest (records usually come in order: appended)."""
        index = bisect_right(self.times, pending.time, self.head)
        self.times.insert(index, pending.time)
        self.records.insert(index, pending)
        self.live += 1

    def consume(self, pending: _Pending) -> None:
        """Mark `pending` used; once most of the list is used, keep only the rest.

        A record left unused among used ones (a line never logged) would
        otherwise make every later search of the key walk over all the used
        records after it.
        """
        pending.consumed = True
        live = self.live = self.live - 1
        if pending.time > self.last_used:
            self.last_used = pending.time
        records = self.records
        head, count = self.head, len(records)
        while head < count and records[head].consumed:
            head += 1
        self.head = head
        used = count - live
        if used > 64 and used * 2 > count:
            kept = [p for p in records[self.head :] if not p.consumed]
            self.records = kept
            self.times = [p.time for p in kept]
            self.head = 0

    def drop_before(self, time: float) -> int:
        """Drop records older than `time`; return how many of them were never used."""
        end = bisect_left(self.times, time, self.head)
        unused = sum(1 for p in self.records[self.head : end] if not p.consumed)
        for pending in self.records[self.head : end]:
            pending.consumed = True
        self.live -= unused
        del self.records[:end]
        del self.times[:end]
        self.head = 0
        while self.head < len(self.records) and self.records[self.head].consumed:
            self.head += 1
        return unused


class ClockOffset:
    """How one server's line times relate to the balancer's record times.

    Learned from unambiguous matches: the differences ``line - record`` of the
    most recent samples give an expected offset (median) and a band (low and
    high quantiles, widened by `slack` for the one-second resolution).
    """

    MIN_SAMPLES = 16

    def __init__(self, slack: float, max_samples: int = 512) -> None:
        self.slack = slack
        self._samples: deque[float] = deque(maxlen=max_samples)
        self._ordered: list[float] = []  # the same samples, sorted: quantiles at no cost
        self._dirty = 0
        self.median = 0.0
        self.band: tuple[float, float] | None = None

    def add(self, difference: float) -> None:
        samples, ordered = self._samples, self._ordered
        if len(samples) == samples.maxlen:
            del ordered[bisect_left(ordered, samples[0])]
        samples.append(difference)
        insort(ordered, difference)
        self._dirty += 1
        count = len(ordered)
        if count >= self.MIN_SAMPLES and (self.band is None or self._dirty >= 32):
            self.median = ordered[count // 2]
            low = ordered[int(count * 0.01)]
            high = ordered[min(count - 1, int(count * 0.99))]
            self.band = (low - self.slack, high + self.slack)
            self._dirty = 0

    def add_outside_band(self, difference: float) -> None:
        """A sample from outside the band, of a match alone in the whole window.

        The band was too narrow: taken up to the band's own width beyond its
        edges (farther, a slow request rather than the clock).  Samples from
        inside the band alone would widen it by `slack` at most.
        """
        band = self.band
        if band is None:
            self.add(difference)
            return
        width = band[1] - band[0]
        if band[0] - width <= difference <= band[1] + width:
            self.add(difference)


class Fingerprints:
    """What each client's fingerprint (User-Agent) says about a record of it.

    Learned only from unambiguous matches: the fingerprint each client was
    last seen with.  Trusted only as far as it proves itself: when more than
    `tolerance` of the clients seen again come back with another one (users
    behind shared NAT addresses), it says nothing and the order alone
    decides.  A fingerprint held by a large share of the known clients (a
    popular browser, an app that is every client) is evidence against the
    others, never for its holders: among records of the same second the
    balancer's order is kept.
    """

    #: A fingerprint held by at least this share of the known clients is not evidence for one.
    COMMON_SHARE = 0.1
    #: Clients seen again before trusting; counts are halved beyond 64 times it.
    MIN_SEEN_AGAIN = 32

    def __init__(self, capacity: int, tolerance: float) -> None:
        self.capacity = capacity
        self.tolerance = tolerance
        self.known: dict[str, str] = {}  # client -> the fingerprint it was last seen with
        self.holders: dict[str, int] = {}  # fingerprint -> clients last seen with it
        self._kept = 0  # clients seen again with the same fingerprint
        self._changed = 0  # ... with another one
        self.trusted = False

    def remember(self, client: str, fingerprint: str | None) -> None:
        """`client` was seen, unambiguously, with `fingerprint` (None: not logged)."""
        if fingerprint is None:
            return
        known, holders = self.known, self.holders
        old = known.pop(client, None)  # re-inserted last: the most recently seen
        known[client] = fingerprint
        if old is None:
            if len(known) > self.capacity:
                holders[known.pop(next(iter(known)))] -= 1
            holders[fingerprint] = holders.get(fingerprint, 0) + 1
            return
        # seen again (the join's hot path: inline, and no count moves if it kept its own)
        if old == fingerprint:
            kept, changed = self._kept + 1, self._changed
        else:
            kept, changed = self._kept, self._changed + 1
            holders[old] -= 1
            holders[fingerprint] = holders.get(fingerprint, 0) + 1
        total = kept + changed
        if total > 64 * self.MIN_SEEN_AGAIN:  # recent behaviour weighs more
            kept //= 2
            changed //= 2
        self._kept, self._changed = kept, changed
        self.trusted = total >= self.MIN_SEEN_AGAIN and changed <= self.tolerance * total

    def distinctive(self, fingerprint: str) -> bool:
        """True if few of the known clients hold `fingerprint`: it points to them."""
        share = self.holders.get(fingerprint, 0)
        return self.trusted and share < self.COMMON_SHARE * len(self.known)

    def against(self, client: str, fingerprint: str) -> bool:
        """True if `client` was last seen with another fingerprint (and they are trusted)."""
        seen = self.known.get(client)
        return self.trusted and seen is not None and seen != fingerprint

    def confirms(self, client: str, fingerprint: str) -> bool:
        """True if `client` was last seen with this fingerprint."""
        return self.known.get(client) == fingerprint


@dataclass
class AttributionEngine:
    """Attributes backend log lines to the balancer records that caused them.

    `window` bounds how far apart a record and its line may be in time;
    `slack` widens the learned band (1 s for one-second time stamps, less for
    penlogd's arrival times); records less than `resolution` apart count as
    simultaneous.  `max_records` bounds memory for a caller that
    adds records in time order (penlogd's ``-n``): beyond it the oldest
    records are dropped, as if expired.  `prior_band` is the band of
    ``line - record`` assumed for a server until its own is learned: penlogd
    knows a line comes after its record, so (-slack, window) makes an
    unlearned server first in, first out instead of nearest (newest) first.
    `reach`: how much older than the learned band a record may be and still
    go first (see the module's rule).  `fingerprint_tolerance`: the share of
    clients seen again with another fingerprint up to which fingerprints
    are trusted over the order of the records.
    """

    window: float = 600.0
    slack: float = 1.0
    resolution: float = 1.0
    max_records: int | None = None
    prior_band: tuple[float, float] | None = None
    reach: float = 60.0
    fingerprint_tolerance: float = 0.25
    report: JoinReport = field(default_factory=JoinReport)

    #: How many clients' fingerprints to remember (least recently seen forgotten).
    MAX_FINGERPRINTS = 200_000

    def __post_init__(self) -> None:
        self._fingerprints = Fingerprints(self.MAX_FINGERPRINTS, self.fingerprint_tolerance)
        self._queues: dict[tuple[str, str], _KeyQueue] = {}
        # Every queue once, by the time of its oldest record when pushed: a
        # sweep visits only the queues that have something to expire.
        self._expiry: list[tuple[float, tuple[str, str]]] = []
        self._by_port: dict[tuple[str, int, str], list[_Pending]] = {}
        self._offsets: dict[str, ClockOffset] = {}
        self._next_sweep = -math.inf
        self._record_times: deque[float] = deque()  # kept only under max_records
        limit = self.max_records or 0
        self._bound_at = limit + max(limit // 8, 1)

    @property
    def pending_records(self) -> int:
        """Records received and not yet consumed or expired."""
        return sum(queue.live for queue in self._queues.values())

    def count_malformed(self) -> None:
        """A line that is not in the log format: written unchanged, counted here."""
        self.report.lines += 1
        self.report.malformed += 1

    def snapshot(self) -> JoinReport:
        """The report, its unused records counted now (expired or still waiting)."""
        self.report.records_unused = self.report.records_expired + self.pending_records
        return self.report

    def offset(self, server: str) -> ClockOffset:
        """The learned clock relation of `server` (created on first use)."""
        found = self._offsets.get(server)
        if found is None:
            found = self._offsets[server] = ClockOffset(self.slack)
            found.band = self.prior_band
        return found

    def add_record(self, record: BalancerRecord) -> None:
        """Make `record` available to lines of its server."""
        time, port = record.time, record.upstream_port
        pending = _Pending(time, record.client, port)
        key = (record.server, record.request)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _KeyQueue()
            heapq.heappush(self._expiry, (time, key))
        times = queue.times
        if not times or time >= times[-1]:  # the usual case: records come in time order
            times.append(time)
            queue.records.append(pending)
            queue.live += 1
        else:
            queue.insert(pending)
        if port is not None:
            port_key = (record.server, port, record.request)
            self._by_port.setdefault(port_key, []).append(pending)
        self.report.records += 1
        if self.max_records is not None:
            self._bound_records(time)

    def _bound_records(self, time: float) -> None:
        """Drop the oldest records once there are an eighth more than `max_records`.

        The slack of an eighth makes each sweep over the queues pay for many
        records, so the bound costs O(1) per record on average.
        """
        times = self._record_times
        times.append(time)
        if len(times) > self._bound_at:
            limit = self.max_records or 0
            self.expire(times[len(times) - limit])
            while len(times) > limit:  # records sharing one time: left to the window
                times.popleft()

    def has_candidates(self, server: str, request: str) -> bool:
        """True if an unconsumed record of (server, request) is waiting.

        penlogd asks this before `match` to let a line wait briefly for a
        record that has not arrived yet, instead of writing it unmatched.
        """
        queue = self._queues.get((server, request))
        return queue is not None and queue.live > 0

    def match(
        self,
        server: str,
        request: str,
        time: float,
        remote_port: int | None = None,
        fingerprint: str | None = None,
    ) -> Attribution:
        """Attribute one line of `server` with request key `request` logged at `time`.

        `remote_port` is the balancer's upstream port if the backend logged it;
        `fingerprint` what identifies a client across its requests (its
        User-Agent), if the backend logged it.
        """
        self.report.lines += 1
        queue = self._queues.get((server, request))
        if queue is None or queue.live == 0:
            self.report.unmatched += 1
            return _UNMATCHED
        offset = self._offsets.get(server) or self.offset(server)
        if remote_port is not None:
            exact = self._exact(server, remote_port, request, time - offset.median)
            if exact is not None:
                queue.consume(exact)
                offset.add(time - exact.time)
                self._fingerprints.remember(exact.client, fingerprint)
                self.report.exact += 1
                return Attribution(exact.client, Outcome.EXACT)
        return self._match_in_queue(queue, offset, time, fingerprint)

    def _exact(self, server: str, port: int, request: str, expected: float) -> _Pending | None:
        candidates = self._by_port.get((server, port, request))
        if not candidates:
            return None
        if len(candidates) == 1 and not candidates[0].consumed:  # the usual case
            only = candidates[0]
            return only if abs(only.time - expected) <= self.window else None
        live = [p for p in candidates if not p.consumed]
        if len(live) != len(candidates):
            candidates[:] = live
        if not live:
            del self._by_port[(server, port, request)]
            return None
        best = min(live, key=lambda p: abs(p.time - expected))
        return best if abs(best.time - expected) <= self.window else None

    def _match_in_queue(
        self, queue: _KeyQueue, offset: ClockOffset, time: float, fingerprint: str | None
    ) -> Attribution:
        records, window = queue.records, self.window
        band = offset.band
        if band is not None:
            # [low, high]: where the line's record can be (the band, within the window)
            low, high = time - band[1], time - band[0]
            if low < time - window:
                low = time - window
            if high > time + window:
                high = time + window
            oldest = low - self.reach
            if oldest < time - window:
                oldest = time - window
            start = bisect_left(queue.times, oldest, queue.head)
            chosen_index = self._first_in_band(queue, start, high, fingerprint)
            if chosen_index < 0:  # only stale records: one that no later line can claim
                chosen_index = self._nearest(queue, time - offset.median, oldest)
        else:
            low, high = time - window, time + window
            chosen_index = self._nearest(queue, time - offset.median, math.inf)
        if chosen_index < 0:
            self.report.unmatched += 1
            return _UNMATCHED
        chosen = records[chosen_index]
        # Unique: the only record, used or not, the line could have had, in
        # [low, high] (the learned band, or the window until it is learned).
        # Only such matches teach the engine (a clock offset, a client's
        # fingerprint): learning from guesses would let one error breed more.
        # A used record in [low, high] was plausible too (records are used
        # oldest first, so last_used says); inline: the join's hot path.
        chosen_time, times = chosen.time, queue.times
        if (
            low <= chosen_time <= high
            and queue.last_used < low
            and (
                (after := bisect_left(times, low, queue.head) + 1) == len(times)
                or times[after] > high
            )
        ):
            offset.add(time - chosen_time)
            if fingerprint is not None:
                self._fingerprints.remember(chosen.client, fingerprint)
        elif band is not None and self._alone_in_window(queue, chosen_index, time):
            offset.add_outside_band(time - chosen_time)
        if queue.live == 1:  # the chosen one is the only candidate left
            ambiguous = False
        else:
            if band is None:  # plausible: as close to the chosen one as the time resolution
                low, high = chosen_time - self.slack, chosen_time + self.slack
            ambiguous = self._other_client_between(queue, chosen, low, high, fingerprint)
        queue.consume(chosen)
        if ambiguous:
            self.report.ambiguous += 1
            return Attribution(chosen.client, Outcome.AMBIGUOUS)
        self.report.matched += 1
        return Attribution(chosen.client, Outcome.MATCHED)

    def _first_in_band(
        self, queue: _KeyQueue, start: int, high: float, fingerprint: str | None
    ) -> int:
        """The oldest unconsumed record up to `high` whose client's fingerprint fits.

        First in, first out, unless the fingerprint says otherwise: a client
        seen with another one is passed over; among records of the same
        second, whose order says little, a client seen with this very one
        goes first if that fingerprint is distinctive.  If every candidate
        is against, the oldest is taken all the same.
        """
        times, records = queue.times, queue.records
        end = len(times)
        index = start
        prints = self._fingerprints
        if fingerprint is None or not prints.trusted or queue.live == 1:
            # the order alone (a single record left: nothing to choose between)
            while index < end and times[index] <= high:
                if not records[index].consumed:
                    return index
                index += 1
            return -1
        known = prints.known  # the join's hot path: plain lookups, no calls
        distinctive: bool | None = None  # as prints.distinctive(fingerprint), when first needed
        first = fitting = -1
        while index < end and times[index] <= high:
            pending = records[index]
            if not pending.consumed:
                seen = known.get(pending.client)
                if distinctive is None and (fitting >= 0 or seen == fingerprint):
                    share = prints.holders.get(fingerprint, 0)
                    distinctive = share < prints.COMMON_SHARE * len(known)
                if fitting >= 0 and (
                    not distinctive or times[index] >= times[fitting] + self.resolution
                ):
                    return fitting
                if distinctive and seen == fingerprint:
                    return index
                if fitting < 0 and (seen is None or seen == fingerprint):  # not against
                    fitting = index
                if first < 0:
                    first = index
            index += 1
        return fitting if fitting >= 0 else first

    def _nearest(self, queue: _KeyQueue, expected: float, newest: float) -> int:
        """Index of the unconsumed record nearest to `expected` within the window, or -1.

        Only records older than `newest` are considered.
        """
        times, records = queue.times, queue.records
        expected_or_newest = min(expected, newest)
        start = bisect_left(times, expected_or_newest, queue.head)
        best, best_distance = -1, math.inf
        index = start - 1  # backwards: the nearest older record...
        while index >= queue.head and expected - times[index] <= self.window:
            if not records[index].consumed:
                best, best_distance = index, expected - times[index]
                break
            index -= 1
        # ... or the oldest of those less than a resolution older than it (records
        # stamped in the same second): first in, first out, not last in
        index -= 1
        while best >= 0 and index >= queue.head and times[index] > times[best] - self.resolution:
            if not records[index].consumed:
                best = index
            index -= 1
        # a newer record wins only if nearer by more than the time resolution:
        # within it, the two are equally plausible, and first in, first out
        # keeps the order the balancer saw
        index = start
        while index < len(times) and times[index] - expected < best_distance - self.resolution:
            if times[index] - expected > self.window or times[index] >= newest:
                break
            if not records[index].consumed:
                return index
            index += 1
        return best

    def _alone_in_window(self, queue: _KeyQueue, index: int, time: float) -> bool:
        """True if the record at `index` is the key's only one, used or not, in the window."""
        low, high = time - self.window, time + self.window
        if queue.last_used >= low:
            return False
        times = queue.times
        first = bisect_left(times, low, queue.head)
        return first == index and (index + 1 == len(times) or times[index + 1] > high)

    def _other_client_between(
        self,
        queue: _KeyQueue,
        chosen: _Pending,
        low: float,
        high: float,
        fingerprint: str | None,
    ) -> bool:
        """True if another client, not ruled out by its fingerprint, was plausible too."""
        times, records = queue.times, queue.records
        prints = self._fingerprints
        # as prints.against(other.client, fingerprint), in plain lookups (the hot path)
        known = prints.known if fingerprint is not None and prints.trusted else None
        client = chosen.client
        index, end = bisect_left(times, low, queue.head), len(times)
        while index < end and times[index] <= high:
            other = records[index]
            if not other.consumed and other is not chosen and other.client != client:
                if known is None:
                    return True
                seen = known.get(other.client)
                if seen is None or seen == fingerprint:
                    return True
            index += 1
        return False

    def advance(self, now: float) -> None:
        """Tell the engine the time of the lines has reached `now`.

        Records older than ``now - window`` can no longer match; they are
        dropped in sweeps a quarter of a window apart, which keeps memory
        bounded by the window at a small, constant cost per line.
        """
        if now >= self._next_sweep:
            self.expire(now - self.window)
            self._next_sweep = now + max(self.window / 4, 1.0)

    def expire(self, before: float) -> int:
        """Forget records older than `before`; return how many were never used."""
        unused = 0
        queues, expiry = self._queues, self._expiry
        while expiry and expiry[0][0] < before:
            _, key = heapq.heappop(expiry)
            queue = queues[key]
            unused += queue.drop_before(before)
            if queue.times:
                heapq.heappush(expiry, (queue.times[0], key))
            else:
                del queues[key]
        if self._by_port:
            self._by_port = {
                key: live
                for key, pendings in self._by_port.items()
                if (live := [p for p in pendings if not p.consumed and p.time >= before])
            }
        self.report.records_expired += unused
        times = self._record_times
        while times and times[0] < before:
            times.popleft()
        return unused
