"""structlog JSON logging, one line per event, with the request id bound per request.

The standard library's loggers (uvicorn, asyncpg, httpx) are routed through the same
processors so that every line a service writes is JSON.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from typing import Any

import structlog

# What never reaches a log line: e-mail addresses, phone numbers, bearer tokens, JWTs,
# provider-style keys, long hex or base64 secrets, and every configured secret value.
_REDACTIONS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "[email]"),
    (re.compile(r"(?i)bearer\s+[\w.~+/=-]+"), "Bearer [redacted]"),
    (re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*"), "[jwt]"),
    (re.compile(r"\b(?:sk|pk|rk|key|tok|api)[-_][\w-]{12,}"), "[key]"),
    (re.compile(r"\b[0-9a-fA-F]{32,}\b"), "[hex]"),
    (re.compile(r"(?<![\w.-])\+?\(?\d[\d ().-]{7,}\d(?![\w.-])"), lambda m: _phone(m.group(0))),
]
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DECIMAL = re.compile(r"\d+\.\d+")


def _phone(candidate: str) -> str:
    """A run of 9 to 15 digits (with separators) that is neither a date nor a plain decimal
    number (a cost such as 0.0000123400) reads as a phone number."""
    digits = sum(char.isdigit() for char in candidate)
    if 9 <= digits <= 15 and not _ISO_DATE.search(candidate) and not _DECIMAL.fullmatch(candidate):
        return "[phone]"
    return candidate


_secret_values: set[str] = set()


def register_secrets(*values: str) -> None:
    """Values that are replaced wherever they appear in a log line (set once at start)."""
    _secret_values.update(value for value in values if len(value) >= 8)


def redact(text: str) -> str:
    for secret in _secret_values:
        if secret in text:
            text = text.replace(secret, "[secret]")
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value


def _redact_event(_: Any, __: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
    return {
        key: value if key in _NOT_REDACTED else _redact_value(value) for key, value in event.items()
    }


# Fields the platform itself sets, which carry no user data (ids would look like hex).
_NOT_REDACTED = frozenset({"request_id", "timestamp", "level", "logger", "service", "duration_ms"})

_SHARED_PROCESSORS: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
]


def configure_logging(service: str, level: str = "INFO") -> None:
    """Make structlog and stdlib logging write JSON lines to stdout."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redact_event,
            _add_service(service),
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log is replaced by our own request line, which carries the request id.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

    structlog.configure(
        processors=[
            *_SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _add_service(service: str) -> structlog.types.Processor:
    def processor(_: Any, __: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        event.setdefault("service", service)
        return event

    return processor


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
