"""A closed-loop load generator: N workers, each sending its next request on an answer.

Every phase has a warm-up (connections opened, statements prepared, caches filled)
whose requests are not measured, then a measured window. A request belongs to the
window if it *started* inside it; the window ends when the last of them is answered,
so that throughput is measured requests over measured time with no partial request
counted at either end.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

OK = "ok"
# The public price list (API.md): credits per successful call.
ANALYSE_PRICE = 25
SUMMARISE_PRICE = 10
# An operation answers OK or a short label of what went wrong (an HTTP status, an
# exception class); labels are counted, never raised, so one error cannot end a phase.
Operation = Callable[[], Awaitable[str]]


@dataclass
class Window:
    """What the measured requests of one phase did."""

    started_at: float = 0.0
    ended_at: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def seconds(self) -> float:
        """Length of the window, from its start to the last measured answer."""
        return max(self.ended_at - self.started_at, 1e-9)

    def summary(self) -> dict[str, Any]:
        """Requests per second, latency percentiles in ms, and error counts."""
        return {
            "requests": len(self.latencies) + sum(self.errors.values()),
            "ok": len(self.latencies),
            "errors": dict(self.errors),
            "seconds": round(self.seconds, 3),
            "rps": round(len(self.latencies) / self.seconds, 1),
            **latency_summary(self.latencies),
        }


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    if not ordered:
        return math.nan
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99, max and mean of successful requests, in milliseconds."""
    ordered = sorted(latencies)

    def ms(value: float) -> float:
        return round(value * 1000, 2)

    mean = sum(ordered) / len(ordered) if ordered else math.nan
    return {
        "p50_ms": ms(percentile(ordered, 0.50)),
        "p95_ms": ms(percentile(ordered, 0.95)),
        "p99_ms": ms(percentile(ordered, 0.99)),
        "max_ms": ms(ordered[-1] if ordered else math.nan),
        "mean_ms": ms(mean),
    }


async def closed_loop(
    operation: Operation,
    concurrency: int,
    warmup: float,
    seconds: float,
    at_window_start: Callable[[], Awaitable[None]],
) -> Window:
    """Run ``concurrency`` workers for ``warmup + seconds``; measure the last part.

    ``at_window_start`` runs when measuring begins (to read CPU counters); the caller
    reads them again once this returns, when every measured request has finished.
    """
    now = time.perf_counter()
    window = Window(started_at=now + warmup)
    end = window.started_at + seconds

    async def worker() -> None:
        while (sent := time.perf_counter()) < end:
            outcome = await operation()
            answered = time.perf_counter()
            if sent < window.started_at:
                continue
            window.ended_at = max(window.ended_at, answered)
            if outcome == OK:
                window.latencies.append(answered - sent)
            else:
                window.errors[outcome] += 1

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(max(window.started_at - time.perf_counter(), 0))
    await at_window_start()
    await asyncio.gather(*workers)
    return window


def http_session(base_url: str, concurrency: int) -> aiohttp.ClientSession:
    """An HTTP/1.1 client with a keep-alive connection per worker.

    aiohttp rather than httpx: on this machine httpx spent about 0.8 ms of CPU per
    request (more with a shared pool of 64 connections), aiohttp under 0.1 ms, and on
    two cores every millisecond the client burns is taken from the stack it measures.
    """
    return aiohttp.ClientSession(
        base_url=base_url,
        connector=aiohttp.TCPConnector(
            limit=concurrency, limit_per_host=concurrency, keepalive_timeout=60
        ),
        timeout=aiohttp.ClientTimeout(total=30),
    )


@dataclass
class Paid:
    """Answers that moved money, over every phase (warm-ups included).

    The money check compares these with what left the accounts, so a request whose
    outcome is unknown (no answer at all) is counted apart: it may or may not have
    been charged.
    """

    analyse_ok: int = 0
    summarise_accepted: int = 0
    summarise_completed: int = 0
    summarise_failed: int = 0
    summarise_unfinished: int = 0
    unanswered: int = 0

    @property
    def expected_spend(self) -> int:
        """Credits that must have left the accounts: failed jobs are refunded."""
        return ANALYSE_PRICE * self.analyse_ok + SUMMARISE_PRICE * (
            self.summarise_accepted - self.summarise_failed
        )


CLIENT_ERRORS = (aiohttp.ClientError, TimeoutError)


def _label(error: BaseException) -> str:
    return type(error).__name__


def analyse(
    client: aiohttp.ClientSession, tokens: Sequence[str], text: str, paid: Paid
) -> Operation:
    """POST /api/analyse, round-robin over the tokens' organisations."""
    body = json.dumps({"text": text}).encode()
    headers = itertools.cycle(
        [
            {"authorization": f"Bearer {token}", "content-type": "application/json"}
            for token in tokens
        ]
    )

    async def call() -> str:
        try:
            async with client.post(
                "/api/analyse", data=body, headers=next(headers)
            ) as response:
                answer = await response.read()
        except CLIENT_ERRORS as error:
            paid.unanswered += 1
            return _label(error)
        if response.status != 200:
            return str(response.status)
        paid.analyse_ok += 1
        # A 200 is charged whatever its body says; one without the analysis is
        # still an error of the product.
        return OK if b"Analysis complete." in answer else "200 without a result"

    return call


@dataclass
class SummariseTimes:
    """Submit latencies of summarise calls, with when each was sent."""

    submits: list[tuple[float, float]] = field(default_factory=list)

    def within(self, window: Window) -> dict[str, float]:
        """Latency of the submits that started inside the window."""
        return latency_summary(
            [latency for sent, latency in self.submits if sent >= window.started_at]
        )


def summarise(
    client: aiohttp.ClientSession,
    tokens: Sequence[str],
    text: str,
    paid: Paid,
    times: SummariseTimes,
    job_timeout: float = 60.0,
) -> Operation:
    """POST /api/summarise, then poll GET /api/jobs/{id} until the job has ended.

    The latency recorded for the operation is the user's wait for the result, submit
    to seen completed; polls start at 10 ms and back off to 100 ms, so the figure is
    at most that much late.
    """
    body = json.dumps({"text": text}).encode()
    headers = itertools.cycle(
        [
            {"authorization": f"Bearer {token}", "content-type": "application/json"}
            for token in tokens
        ]
    )

    async def call() -> str:
        auth = next(headers)
        sent = time.perf_counter()
        try:
            async with client.post(
                "/api/summarise", data=body, headers=auth
            ) as response:
                answer = await response.read()
        except CLIENT_ERRORS as error:
            paid.unanswered += 1
            return _label(error)
        times.submits.append((sent, time.perf_counter() - sent))
        if response.status != 200:
            return str(response.status)
        paid.summarise_accepted += 1
        job_id = json.loads(answer)["job_id"]

        delay, deadline = 0.01, sent + job_timeout
        while time.perf_counter() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
            try:
                async with client.get(f"/api/jobs/{job_id}", headers=auth) as poll:
                    job = await poll.json() if poll.status == 200 else {}
            except CLIENT_ERRORS:
                continue
            status = job.get("status")
            if status == "completed":
                paid.summarise_completed += 1
                return OK
            if status == "failed":
                paid.summarise_failed += 1
                return "job failed"
        paid.summarise_unfinished += 1
        return "job unfinished"

    return call
