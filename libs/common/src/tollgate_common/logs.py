"""JSON logs, one object a line, each carrying the request id and the caller."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from tollgate_common.context import (
    current_principal,
    current_request_id,
    current_trace_id,
)


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON with the call context of the task that logged it."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": current_request_id(),
        }
        if current_trace_id():
            entry["trace_id"] = current_trace_id()
        principal = current_principal()
        if principal is not None:
            entry["organisation_id"] = str(principal.organisation_id)
            entry["user_id"] = str(principal.user_id)
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stdout as JSON; call once, at the entrypoint."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
