"""The job queue: Taskiq on a Redis stream, acknowledged after the job's outcome."""

from __future__ import annotations

from redis.asyncio import Redis
from taskiq.kicker import AsyncKicker
from taskiq_redis import RedisStreamBroker

from tollgate_common.errors import DependencyUnavailable
from tollgate_jobs.domain.model import Job

SUMMARISE_TASK = "tollgate.summarise"


def make_broker(
    url: str, stream: str, reclaim_after_seconds: float
) -> RedisStreamBroker:
    """The broker both the jobs service (to send) and the worker (to run) use.

    Messages a worker took but did not acknowledge (it died) are claimed by another
    worker once idle for ``reclaim_after_seconds``. The group starts at the stream's
    beginning so that jobs queued before the first worker started are not skipped.
    """
    return RedisStreamBroker(
        url=url,
        queue_name=stream,
        consumer_group_name=f"{stream}-workers",
        consumer_id="0",
        idle_timeout=int(reclaim_after_seconds * 1000),
        unacknowledged_lock_timeout=reclaim_after_seconds,
        # The blocking read must end well within the socket timeout, or every idle
        # read fails and taskiq restarts the worker process.
        xread_block=1000,
        socket_connect_timeout=2,
        socket_timeout=5,
    )


class TaskiqQueue:
    """``QueuePort`` on a Taskiq broker."""

    def __init__(self, broker: RedisStreamBroker) -> None:
        self._broker = broker
        self._kicker: AsyncKicker[[str, str], None] = AsyncKicker(
            SUMMARISE_TASK, broker, {}
        )

    async def depth(self) -> tuple[int, int]:
        """Messages in the stream, and those delivered but not yet acknowledged."""
        async with Redis(connection_pool=self._broker.connection_pool) as redis:
            length = await redis.xlen(self._broker.queue_name)
            pending = await redis.xpending(
                self._broker.queue_name, self._broker.consumer_group_name
            )
        return int(length), int(pending["pending"])

    async def enqueue(self, job: Job) -> None:
        """Send the job, by id and organisation, to the workers."""
        try:
            await self._kicker.kiq(str(job.id), str(job.organisation_id))
        except Exception as error:
            raise DependencyUnavailable("The job queue is unavailable.") from error
