"""The offline provider: deterministic answers with no network and no cost.

It is what answers when no provider key is configured, so the local platform and the
tests run with no account. Everything it returns says it is offline.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any


def estimate_tokens(text: str) -> int:
    """About four characters a token: used only where a provider reports no usage."""
    return max(1, (len(text) + 3) // 4)


def prompt_text(messages: list[Any]) -> str:
    parts = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "\n".join(parts)


def offline_text(logical_model: str, messages: list[Any]) -> str:
    prompt = prompt_text(messages)
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:12]
    last = prompt.strip().splitlines()[-1][:120] if prompt.strip() else ""
    return (
        f"[offline {logical_model} {digest}] No language model is configured, so this is a "
        f"deterministic placeholder answer to: {last}"
    )


def offline_completion(
    completion_id: str, logical_model: str, messages: list[Any]
) -> dict[str, Any]:
    text = offline_text(logical_model, messages)
    prompt_tokens, completion_tokens = estimate_tokens(prompt_text(messages)), estimate_tokens(text)
    return {
        "id": f"chatcmpl-offline-{completion_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": f"offline-{logical_model}",
        "system_fingerprint": "offline",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def offline_chunks(
    completion_id: str, logical_model: str, messages: list[Any]
) -> Iterator[dict[str, Any]]:
    """The same answer as a stream of chunks, the last with the finish reason and usage."""
    completion = offline_completion(completion_id, logical_model, messages)
    text = completion["choices"][0]["message"]["content"]
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
        "system_fingerprint": "offline",
    }
    words = text.split(" ")
    for index, word in enumerate(words):
        piece = word if index == 0 else " " + word
        delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
        yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    yield {
        **base,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": completion["usage"],
    }
