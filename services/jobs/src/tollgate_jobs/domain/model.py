"""Paid products, their prices, and a job's life."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class Product:
    """A paid endpoint: its price and the reason its charges carry."""

    endpoint: str
    price: int

    @property
    def reason(self) -> str:
        """The ledger reason of a charge for this product."""
        return f"API call: {self.endpoint}"


ANALYSE = Product("/api/analyse", 25)
SUMMARISE = Product("/api/summarise", 10)


class JobStatus(StrEnum):
    """Where a job is in its life: pending → running → completed | failed."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


# The only moves a job may make; storage applies them as compare-and-set.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Job:
    """An asynchronous summarisation paid for by one charge."""

    id: uuid.UUID
    organisation_id: uuid.UUID
    user_id: uuid.UUID
    status: JobStatus
    text: str
    charge_id: uuid.UUID
    created_at: datetime
    result: str | None = None
    error: str | None = None
    # How many times a worker has started the job; each start is one attempt.
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a paid call answered, in a form that can be stored and replayed."""

    body: dict[str, Any] | None = None
    error_type: str | None = None
    error_message: str = ""
    error_context: dict[str, Any] | None = None

    def to_json(self) -> str:
        """Serialise for the idempotency record."""
        return json.dumps(
            {
                "body": self.body,
                "error_type": self.error_type,
                "error_message": self.error_message,
                "error_context": self.error_context,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> Outcome:
        """Read back what ``to_json`` wrote."""
        return cls(**json.loads(raw))


def fingerprint(endpoint: str, body: dict[str, Any]) -> str:
    """What makes two requests with one Idempotency-Key the same request."""
    canonical = json.dumps([endpoint, body], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
