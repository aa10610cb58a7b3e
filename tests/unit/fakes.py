"""In-memory stand-ins for the jobs service's ports, for use-case unit tests."""

from __future__ import annotations

import dataclasses
import uuid

from tollgate_common.errors import DependencyUnavailable
from tollgate_jobs.domain.errors import InsufficientCredits
from tollgate_jobs.domain.model import Job, JobStatus, Outcome
from tollgate_jobs.service_layer.ports import Charge, Claim, Record


class FakeLedger:
    """One balance per organisation; references make charges single-use."""

    def __init__(self, balance: int = 100) -> None:
        self.start = balance
        self.balances: dict[uuid.UUID, int] = {}
        self.charges: dict[str, tuple[uuid.UUID, int, uuid.UUID]] = {}
        self.refunded: set[uuid.UUID] = set()
        self.down = False

    async def charge(self, organisation_id, user_id, amount, reason, reference):
        """Charge once per reference."""
        if self.down:
            raise DependencyUnavailable("ledger down")
        balance = self.balances.setdefault(organisation_id, self.start)
        if reference in self.charges:
            txn, _, _ = self.charges[reference]
            return Charge(txn, balance)
        if balance < amount:
            raise InsufficientCredits("no", balance=balance, required=amount)
        txn = uuid.uuid4()
        self.charges[reference] = (txn, amount, organisation_id)
        self.balances[organisation_id] = balance - amount
        return Charge(txn, balance - amount)

    async def refund(self, organisation_id, charge_id, reason):
        """Refund once per charge."""
        if self.down:
            raise DependencyUnavailable("ledger down")
        if charge_id in self.refunded:
            return
        for txn, amount, org in self.charges.values():
            if txn == charge_id and org == organisation_id:
                self.refunded.add(charge_id)
                self.balances[org] += amount
                return
        raise AssertionError("refund of an unknown charge")


class FakeQueue:
    """Remembers what was queued; can be made unreachable."""

    def __init__(self) -> None:
        self.queued: list[uuid.UUID] = []
        self.down = False

    async def enqueue(self, job: Job) -> None:
        """Queue or fail."""
        if self.down:
            raise DependencyUnavailable("queue down")
        self.queued.append(job.id)


class FakeRecords:
    """Idempotency records in a dict keyed like the real primary key."""

    def __init__(self) -> None:
        self.rows: dict[tuple[uuid.UUID, str], dict] = {}

    async def claim(self, organisation_id, key, endpoint, fingerprint, lock_seconds):
        """Claim if free."""
        row = self.rows.get((organisation_id, key))
        if row is None:
            attempt = uuid.uuid4().hex
            self.rows[(organisation_id, key)] = {
                "endpoint": endpoint,
                "fingerprint": fingerprint,
                "attempt": attempt,
                "outcome": None,
            }
            return Claim(True, attempt)
        return Claim(
            False,
            row["attempt"],
            Record(
                row["endpoint"],
                row["fingerprint"],
                row["outcome"] is not None,
                row["attempt"],
                row["outcome"],
            ),
        )

    async def complete(self, organisation_id, key, outcome: Outcome) -> None:
        """Store the outcome (through JSON, as the database does)."""
        self.rows[(organisation_id, key)]["outcome"] = Outcome.from_json(
            outcome.to_json()
        )

    async def release(self, organisation_id, key) -> None:
        """Forget an in-progress record."""
        row = self.rows.get((organisation_id, key))
        if row is not None and row["outcome"] is None:
            del self.rows[(organisation_id, key)]


class FakeJobs:
    """Job records with compare-and-set transitions."""

    def __init__(self) -> None:
        self.jobs: dict[uuid.UUID, Job] = {}
        self.refunded: set[uuid.UUID] = set()

    async def create(self, job: Job) -> Job:
        """Insert, or return the job of the same charge."""
        for existing in self.jobs.values():
            if existing.charge_id == job.charge_id:
                return existing
        self.jobs[job.id] = job
        return job

    async def get(self, organisation_id, job_id):
        """A job of an organisation."""
        job = self.jobs.get(job_id)
        return job if job and job.organisation_id == organisation_id else None

    async def transition(self, job, from_status, to_status, result=None, error=None):
        """Compare-and-set."""
        job_id = job.id
        job = self.jobs.get(job_id)
        if job is None or job.status is not from_status:
            return None
        job = dataclasses.replace(
            job, status=to_status, result=result or job.result, error=error or job.error
        )
        self.jobs[job_id] = job
        return job

    async def start(self, organisation_id, job_id, lease_seconds):
        """Begin an attempt (leases never lapse in the fake)."""
        job = self.jobs.get(job_id)
        if job is None or job.organisation_id != organisation_id:
            return None
        if job.status is not JobStatus.PENDING:
            return None
        job = dataclasses.replace(
            job, status=JobStatus.RUNNING, attempts=job.attempts + 1
        )
        self.jobs[job_id] = job
        return job

    async def finish(self, job, attempt, to_status, result=None, error=None):
        """End an attempt if it still holds the job."""
        job_id = job.id
        job = self.jobs.get(job_id)
        if (
            job is None
            or job.status is not JobStatus.RUNNING
            or job.attempts != attempt
        ):
            return None
        job = dataclasses.replace(job, status=to_status, result=result, error=error)
        self.jobs[job_id] = job
        return job

    async def stalled(self, pending_seconds, retry_base_seconds, limit):
        """Nothing stalls in the fake."""
        return []

    async def requeue(self, job, attempt):
        """Back to pending."""
        self.jobs[job.id] = dataclasses.replace(job, status=JobStatus.PENDING)
        return self.jobs[job.id]

    async def awaiting_refund(self, limit):
        """Failed jobs not refunded yet."""
        return [
            job
            for job in self.jobs.values()
            if job.status is JobStatus.FAILED and job.id not in self.refunded
        ]

    async def mark_refunded(self, job) -> None:
        """Record a refund."""
        self.refunded.add(job.id)


def statuses(jobs: FakeJobs) -> list[JobStatus]:
    """The status of every job, in creation order."""
    return [job.status for job in jobs.jobs.values()]
