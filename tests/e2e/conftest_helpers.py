"""Helpers for end-to-end tests."""

from __future__ import annotations

import time
from typing import Any

import httpx


def poll_job(
    client: httpx.Client, job_id: str, timeout: float = 20.0
) -> dict[str, Any]:
    """Poll a job until it is completed or failed, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = dict(response.json())
        if job["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)
