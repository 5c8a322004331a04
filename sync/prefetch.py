"""Predictive caching: which hub files are likely to be read next, and when to fetch them.

:class:`Predictor` learns online from the access log (the ``download`` rows every
device writes to the hub, see sync.reads) and estimates, for every file it has
seen read, the probability that it is read again within the next ``horizon``:

- *frequency and recency*: an exponentially weighted read rate (half-life
  ``half_life``), turned into P(at least one read in the horizon) of a Poisson
  process with that rate;
- *regular re-reads*: the share of recent days on which the file was read at the
  hours the horizon covers (in local time);
- *read together*: while a session of this device is open (reads less than
  ``session_gap`` apart), P(file | its folder was touched in a session) and
  P(file | another file of the session was read), from past sessions.

The three are combined as independent chances. :func:`plan` turns the estimates into
the few guesses that fit the budget (bytes per day, share of the cache) and are not
cached already (or would expire before the read); fetching them is :meth:`sync.cache.BlobCache.prefetch`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sync.cache import BlobCache

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Access:
    """One read of one file, by any device."""

    item: str
    """The file, stable across versions: ``device/root_path/rel_path`` of its owner."""
    sha256: str
    key: str
    size: int
    at: float
    device: str = ""
    """The device that read it (not the owner)."""

    @property
    def folder(self) -> str:
        return self.item.rsplit("/", 1)[0]


@dataclass(frozen=True, slots=True)
class Guess:
    item: str
    sha256: str
    key: str
    size: int
    chance: float


class _Decayed:
    """A count that halves every ``half_life`` seconds."""

    __slots__ = ("at", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.at = 0.0

    def get(self, now: float, half_life: float) -> float:
        if self.value == 0.0:
            return 0.0
        return float(self.value * 0.5 ** (max(0.0, now - self.at) / half_life))

    def add(self, now: float, half_life: float, amount: float = 1.0) -> None:
        self.value = self.get(now, half_life) + amount
        self.at = max(self.at, now)


@dataclass(slots=True)
class _Item:
    sha256: str
    key: str
    size: int
    reads: _Decayed = field(default_factory=_Decayed)
    sessions: _Decayed = field(default_factory=_Decayed)
    days: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=64))
    """(day, hour) of the first read in each hour, recent days only."""
    together: dict[str, _Decayed] = field(default_factory=dict)
    """Other files (of other folders) read in the same sessions as this one."""
    last: float = 0.0


@dataclass(slots=True)
class _Session:
    last: float
    items: dict[str, None] = field(default_factory=dict)


@dataclass(frozen=True)
class PredictorSettings:
    half_life: float = 2 * DAY
    """Of the read rate: how fast the working set is allowed to drift."""
    pattern_half_life: float = 10 * DAY
    """Of what sessions taught (folders and files read together)."""
    session_gap: float = 20 * 60.0
    horizon: float = 2 * 3600.0
    days_kept: int = 14
    together_kept: int = 24
    """Companions kept per file (the strongest)."""


class Predictor:
    def __init__(
        self,
        here: str = "",
        settings: PredictorSettings | None = None,
        *,
        utc_offset: float = 0.0,
    ) -> None:
        """``here``: this device (its open session gives the context; empty: any
        device's). ``utc_offset``: seconds east of UTC, for hours of the day."""
        self.here = here
        self.s = settings or PredictorSettings()
        self.utc_offset = utc_offset
        self.items: dict[str, _Item] = {}
        self._folders: dict[str, _Decayed] = {}
        self._sessions: dict[str, _Session] = {}
        self._active_days: deque[int] = deque(maxlen=self.s.days_kept)
        self.newest = 0.0
        """Time of the newest access learnt (where to continue reading the log)."""

    def _day_hour(self, at: float) -> tuple[int, int]:
        local = at + self.utc_offset
        return int(local // DAY), int(local % DAY // 3600)

    def learn(self, accesses: Iterable[Access]) -> None:
        """Feed accesses in time order (older ones than already learnt are skipped)."""
        for a in accesses:
            if a.at < self.newest:
                continue
            self._learn(a)

    def _learn(self, a: Access) -> None:
        s = self.s
        self.newest = a.at
        item = self.items.get(a.item)
        if item is None:
            item = self.items[a.item] = _Item(a.sha256, a.key, a.size)
        item.sha256, item.key, item.size, item.last = a.sha256, a.key, a.size, a.at
        item.reads.add(a.at, s.half_life)
        day, hour = self._day_hour(a.at)
        if not item.days or item.days[-1] != (day, hour):
            item.days.append((day, hour))
        if not self._active_days or self._active_days[-1] != day:
            self._active_days.append(day)
        session = self._sessions.get(a.device)
        if session is not None and a.at - session.last > s.session_gap:
            self._close(session)
            session = None
        if session is None:
            session = self._sessions[a.device] = _Session(a.at)
        session.last = a.at
        session.items[a.item] = None

    def _close(self, session: _Session) -> None:
        """What a finished session teaches: which folders and files went together."""
        s = self.s
        at = session.last
        names = list(session.items)[-40:]
        for folder in {n.rsplit("/", 1)[0] for n in names}:
            self._folders.setdefault(folder, _Decayed()).add(at, s.pattern_half_life)
        for name in names:
            item = self.items[name]
            item.sessions.add(at, s.pattern_half_life)
            folder = name.rsplit("/", 1)[0]
            for other in names:
                if other != name and other.rsplit("/", 1)[0] != folder:
                    item.together.setdefault(other, _Decayed()).add(at, s.pattern_half_life)
            if len(item.together) > s.together_kept * 2:
                strongest = sorted(
                    item.together.items(), key=lambda kv: -kv[1].get(at, s.pattern_half_life)
                )
                item.together = dict(strongest[: s.together_kept])

    def chances(self, now: float) -> dict[str, float]:
        """P(read within the horizon) of every file seen read, above a small floor."""
        s = self.s
        tau = s.half_life / math.log(2)
        hours = self._horizon_hours(now)
        days = [d for d in self._active_days if d < self._day_hour(now)[0]][-s.days_kept :]
        first_day = days[0] if days else 0
        context = self._context(now)
        out: dict[str, float] = {}
        for name, item in self.items.items():
            rate = item.reads.get(now, s.half_life) / tau
            p_recent = 1.0 - math.exp(-rate * s.horizon)
            p_daily = 0.0
            if len(days) >= 2:
                seen = {d for d, h in item.days if h in hours and d >= first_day}
                seen.discard(self._day_hour(now)[0])
                if len(seen) >= 2:
                    usual = len([d for d in days if d >= min(seen)])
                    p_daily = len(seen) / max(usual, 1)
            p_context = context.get(name, 0.0)
            p = 1.0 - (1.0 - p_recent) * (1.0 - p_daily) * (1.0 - p_context)
            if p >= 0.01:
                out[name] = p
        return out

    def _horizon_hours(self, now: float) -> set[int]:
        hours = set()
        t = now
        while t <= now + self.s.horizon:
            hours.add(self._day_hour(t)[1])
            t += 1800.0
        return hours

    def _context(self, now: float) -> dict[str, float]:
        """Chances from the open session of this device: folders and files read together."""
        s = self.s
        open_sessions = [
            sess
            for dev, sess in self._sessions.items()
            if (not self.here or dev == self.here) and now - sess.last <= s.session_gap
        ]
        out: dict[str, float] = {}
        for sess in open_sessions:
            read = set(sess.items)
            folders = {n.rsplit("/", 1)[0] for n in read}
            for name, item in self.items.items():
                if name in read:
                    continue
                folder = name.rsplit("/", 1)[0]
                p = 0.0
                if folder in folders:
                    touched = self._folders.get(folder)
                    total = touched.get(now, s.pattern_half_life) if touched else 0.0
                    if total >= 1.0:
                        p = min(1.0, item.sessions.get(now, s.pattern_half_life) / total)
                out[name] = max(out.get(name, 0.0), p)
            for name in read:
                item = self.items[name]
                base = item.sessions.get(now, s.pattern_half_life)
                if base < 1.0:
                    continue
                for other, count in item.together.items():
                    if other not in read:
                        p = min(1.0, count.get(now, s.pattern_half_life) / base)
                        out[other] = max(out.get(other, 0.0), p)
        return out


@dataclass(frozen=True)
class Budget:
    bytes_per_day: int = 512 * 1024**2
    cache_share: float = 0.25
    """Of the cache's size limit that unread guesses may fill."""
    min_chance: float = 0.3
    protect: float = 6 * 3600.0
    """A guess never evicts an entry read more recently than this."""


Resolve = Callable[[str], tuple[str, str, int] | None]
"""(sha256, key, size) of a file's current version; None when it is gone."""


def plan(
    predictor: Predictor,
    cache: BlobCache,
    now: float,
    budget: Budget,
    current: Resolve | None = None,
) -> list[Guess]:
    """The guesses to fetch now: likeliest first, within both budgets, not cached yet.

    ``current`` gives a file's current version (the log knows the version read last);
    without it that version is fetched."""
    unread, today = cache.guessed_bytes(now - DAY)
    share_left = int(budget.cache_share * cache.size_limit) - unread
    day_left = budget.bytes_per_day - today
    ranked = sorted(
        ((p, name) for name, p in predictor.chances(now).items() if p >= budget.min_chance),
        reverse=True,
    )
    out: list[Guess] = []
    for p, name in ranked:
        item = predictor.items[name]
        version = (item.sha256, item.key, item.size) if current is None else current(name)
        if version is None:
            continue
        sha256, key, size = version
        if size > min(share_left, day_left):
            continue
        fresh = cache.fresh_until(sha256)
        if fresh is not None and fresh > now + predictor.s.horizon:
            continue  # cached, and still there when it is likely to be read
        if not cache.room_for_guess(size, budget.protect):
            continue
        out.append(Guess(name, sha256, key, size, p))
        share_left -= size
        day_left -= size
    return out


__all__ = ["Access", "Budget", "Guess", "Predictor", "PredictorSettings", "Resolve", "plan"]
