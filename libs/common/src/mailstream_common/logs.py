"""Structured JSON logs with a correlation id that follows a mail from SMTP through every queue."""

import contextvars
import logging
import re
import sys
import uuid

from pythonjsonlogger.json import JsonFormatter

from . import tracing

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.correlation_id = correlation_id.get()
        # The active span's ids, so a log line leads to its trace (and back); absent when tracing is off.
        if (ids := tracing.current_ids()) is not None:
            record.trace_id, record.span_id = ids
        return True


# A mail address anywhere in a finished line (message, extra fields, a traceback): only its domain is kept, so that
# logs hold no personal data and never need erasing (issue 17). Also catches addresses in quoted or escaped JSON.
_ADDRESS = re.compile(r"[\w.!#$%'*+^`{|}~-]+@((?:[\w-]+\.)+[\w-]+)")  # not `/?&=`: a URL path stays


def redact_addresses(text: str) -> str:
    """`ann@example.org` -> `***@example.org`, everywhere in `text`."""
    return _ADDRESS.sub(r"***@\1", text)


class RedactingJsonFormatter(JsonFormatter):
    """The JSON line, with every mail address reduced to its domain."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_addresses(super().format(record))


def configure_logging(service: str, level: str = "INFO") -> None:
    """One JSON object per line on stderr: what log shippers in Kubernetes expect."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter(service))
    handler.setFormatter(
        RedactingJsonFormatter(
            "{asctime}{levelname}{name}{message}{service}{correlation_id}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that log every connection or request at INFO drown the mail's own lines.
    for noisy in ("aiormq", "aio_pika", "pymongo", "uvicorn.access", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
