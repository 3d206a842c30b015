"""Reading a JSON request body by hand (where a service skips FastAPI's own parsing):
within a size cap, and with every way a hostile body can break the parser answered as a
client error, never as a 500."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request


class BodyError(Exception):
    """A body the service refuses: ``status`` (400 or 413), a stable code and a message."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


def parse_json(raw: bytes | str) -> Any:
    """The parsed document, or :class:`BodyError` naming what is wrong with it.

    Besides malformed JSON, Python's parser raises ``RecursionError`` on deep nesting and
    ``ValueError`` on an integer past its digit limit (4300 digits): both are the client's.
    """
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BodyError(400, "invalid_json", "request body is not valid JSON") from None
    except RecursionError:
        raise BodyError(400, "invalid_json", "request body is nested too deeply") from None
    except ValueError:  # int('9' * 5000): "Exceeds the limit (4300 digits)"
        raise BodyError(400, "invalid_json", "request body has a number too large") from None


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, read no further than ``max_bytes``."""
    too_large = BodyError(
        413, "request_too_large", f"request body is over the {max_bytes}-byte limit"
    )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > max_bytes:
            raise too_large
    body = parse_json(bytes(received))
    if not isinstance(body, dict):
        raise BodyError(400, "invalid_body", "request body must be a JSON object")
    return body
