"""Fault injection and the request log, both driven from test threads.

A rule matches requests by path prefix and method; it fires for the next
``count`` matches, or for a ``rate`` fraction drawn from a seeded RNG, so a
run with the same request order fails the same requests.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Literal

Action = Literal["status", "drop", "drop_after", "throttle", "stall"]


@dataclass(slots=True)
class Rule:
    action: Action
    prefix: str
    methods: frozenset[str] | None
    count: int | None
    rate: float
    status: int = 503
    retry_after: int = 1
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        if not path.startswith(self.prefix):
            return False
        return self.methods is None or method in self.methods


@dataclass(frozen=True, slots=True)
class Decision:
    """What the server does to one request before (or after) handling it."""

    latency: float = 0.0
    action: Action | None = None
    status: int = 0
    retry_after: int = 0
    seconds: float = 0.0
    bandwidth: float = 0.0
    """Bytes per second the response body is sent at (0: as fast as it goes)."""


class Faults:
    """Thread-safe fault plan of one server."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rules: list[Rule] = []
        self._latency: list[tuple[str, float, float]] = []
        self._bandwidth: list[tuple[str, float]] = []
        self.injected = 0

    def seed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._latency.clear()
            self._bandwidth.clear()

    def add_latency(self, seconds: float, *, jitter: float = 0.0, prefix: str = "/") -> None:
        """Delay every matching request by ``seconds`` (+ up to ``jitter``)."""
        with self._lock:
            self._latency.append((prefix, seconds, jitter))

    def slow_body(self, bytes_per_second: float, *, prefix: str = "/") -> None:
        """Send the bodies of matching responses at ``bytes_per_second`` (a slow link,
        so a test can stop a client in the middle of a download)."""
        with self._lock:
            self._bandwidth.append((prefix, bytes_per_second))

    def _add(
        self,
        action: Action,
        count: int | None,
        rate: float,
        prefix: str,
        methods: tuple[str, ...] | None,
        *,
        status: int = 503,
        retry_after: int = 1,
        seconds: float = 0.0,
    ) -> None:
        if count is None and not 0.0 < rate <= 1.0:
            raise ValueError("give a count or a rate in (0, 1]")
        allowed = frozenset(m.upper() for m in methods) if methods else None
        rule = Rule(action, prefix, allowed, count, rate, status, retry_after, seconds)
        with self._lock:
            self._rules.append(rule)

    def fail(
        self,
        count: int | None = None,
        *,
        rate: float = 0.0,
        status: int = 503,
        prefix: str = "/",
        methods: tuple[str, ...] | None = None,
    ) -> None:
        """Answer matching requests with ``status`` (5xx) without handling them."""
        self._add("status", count, rate, prefix, methods, status=status)

    def drop(
        self,
        count: int | None = None,
        *,
        rate: float = 0.0,
        after_handling: bool = False,
        prefix: str = "/",
        methods: tuple[str, ...] | None = None,
    ) -> None:
        """Close the connection without an answer.

        With ``after_handling`` the request takes effect first (the upload is
        stored) and only the response is lost, the nastiest case for a client.
        """
        action: Action = "drop_after" if after_handling else "drop"
        self._add(action, count, rate, prefix, methods)

    def throttle(
        self,
        count: int | None = None,
        *,
        rate: float = 0.0,
        retry_after: int = 1,
        prefix: str = "/",
        methods: tuple[str, ...] | None = None,
    ) -> None:
        """Answer 429 Too Many Requests with a ``Retry-After`` header."""
        self._add("throttle", count, rate, prefix, methods, retry_after=retry_after)

    def stall(
        self,
        count: int | None = None,
        *,
        rate: float = 0.0,
        seconds: float = 30.0,
        prefix: str = "/",
        methods: tuple[str, ...] | None = None,
    ) -> None:
        """Hold matching requests ``seconds`` without answering, then drop them.

        Makes a client's read timeout fire for a chosen share of requests.
        """
        self._add("stall", count, rate, prefix, methods, seconds=seconds)

    def decide(self, method: str, path: str) -> Decision:
        with self._lock:
            latency = 0.0
            for prefix, seconds, jitter in self._latency:
                if path.startswith(prefix):
                    latency += seconds + (self._rng.uniform(0, jitter) if jitter else 0.0)
            rates = [bps for prefix, bps in self._bandwidth if path.startswith(prefix)]
            bandwidth = min(rates) if rates else 0.0
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.count is not None:
                    if rule.count <= 0:
                        continue
                    rule.count -= 1
                elif self._rng.random() >= rule.rate:
                    continue
                self.injected += 1
                return Decision(
                    latency, rule.action, rule.status, rule.retry_after, rule.seconds, bandwidth
                )
            return Decision(latency, bandwidth=bandwidth)


@dataclass(frozen=True, slots=True)
class LogEntry:
    method: str
    path: str
    query: str
    status: int
    """HTTP status sent; 0 when the connection was dropped or broke."""
    bytes_in: int
    bytes_out: int
    role: str
    sub: str | None
    fault: str | None
    started: float
    duration: float


class RequestLog:
    """Every request the server saw, in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LogEntry] = []

    def add(self, entry: LogEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def entries(
        self,
        method: str | None = None,
        prefix: str = "",
        *,
        status: int | None = None,
    ) -> list[LogEntry]:
        """Entries whose path starts with ``prefix`` (decoded path, no query)."""
        with self._lock:
            return [
                e
                for e in self._entries
                if e.path.startswith(prefix)
                and (method is None or e.method == method.upper())
                and (status is None or e.status == status)
            ]

    def uploads(self, bucket: str, key: str) -> list[LogEntry]:
        """Successful standard uploads (POST/PUT) of one object."""
        path = f"/storage/v1/object/{bucket}/{key}"
        return [
            e
            for e in self.entries()
            if e.path == path and e.method in ("POST", "PUT") and e.status == 200
        ]

    def bytes_in(self, prefix: str = "") -> int:
        return sum(e.bytes_in for e in self.entries(prefix=prefix))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
