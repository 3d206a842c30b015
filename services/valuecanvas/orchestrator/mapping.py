"""How a step's input is made from the workflow's input and earlier steps' outputs.

A step's ``input`` is JSON in which a few objects are expressions; everything else is taken
as written (objects and lists are walked, so expressions may sit anywhere):

- ``{"$ref": SOURCE, "pointer": "/a/0/b", "default": VALUE}``: a value found by a JSON
  Pointer (RFC 6901; "" or absent: the whole document) in SOURCE, which is ``input`` (the
  workflow's input), ``<step>`` (that step's output) or ``<step>.input`` (what that step
  was given). Without ``default``, a missing value is an error naming the step and pointer.
- ``{"$concat": [EXPR, ...]}``: the lists the expressions give, one after another.
- ``{"$pick": [FIELD, ...], "from": EXPR}``: only those fields of an object, or of each
  object of a list (fields it lacks are left out).

An object with any other key starting with ``$`` is refused when the definition is created.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

_MISSING = object()


class MappingError(ValueError):
    """A definition's expression is malformed, or names what is not there."""


def _check_shape(expression: dict[str, Any]) -> str | None:
    """The operator of an expression object, or None for a plain object."""
    operators = [key for key in expression if key.startswith("$")]
    if not operators:
        return None
    if len(operators) > 1:
        raise MappingError(f"one operator per object, not {', '.join(sorted(operators))}")
    operator = operators[0]
    allowed = {"$ref": {"$ref", "pointer", "default"}, "$concat": {"$concat"},
               "$pick": {"$pick", "from"}}.get(operator)  # fmt: skip
    if allowed is None:
        raise MappingError(f"unknown operator {operator} (known: $ref, $concat, $pick)")
    extra = sorted(set(expression) - allowed)
    if extra:
        raise MappingError(f"{operator} does not take {', '.join(extra)}")
    if operator == "$ref":
        if not isinstance(expression["$ref"], str) or not expression["$ref"]:
            raise MappingError("$ref names a source: input, a step, or <step>.input")
        pointer = expression.get("pointer", "")
        if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
            raise MappingError(f"pointer {pointer!r} is not a JSON Pointer (it starts with /)")
    elif operator == "$concat" and not isinstance(expression["$concat"], list):
        raise MappingError("$concat takes a list of expressions")
    elif operator == "$pick":
        fields = expression["$pick"]
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise MappingError("$pick takes a list of field names")
        if "from" not in expression:
            raise MappingError("$pick needs from")
    return operator


def sources(expression: Any) -> Iterator[str]:
    """Every source the expression reads (``input``, a step, or ``<step>.input``), checking
    each expression's shape on the way."""
    if isinstance(expression, list):
        for item in expression:
            yield from sources(item)
    elif isinstance(expression, dict):
        operator = _check_shape(expression)
        if operator == "$ref":
            yield expression["$ref"]
        elif operator == "$concat":
            yield from sources(expression["$concat"])
        elif operator == "$pick":
            yield from sources(expression["from"])
        else:
            for value in expression.values():
                yield from sources(value)


def reject_nul(value: Any, where: str) -> None:
    """Postgres' jsonb cannot hold NUL: refused in any key or string, the place named."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where} contains a NUL character")
    if isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key, where)
            reject_nul(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            reject_nul(item, f"{where}.{index}")


def step_of(source: str) -> str | None:
    """The step a source belongs to (None for the workflow's input)."""
    if source == "input":
        return None
    return source.removesuffix(".input")


def _point(document: Any, pointer: str) -> Any:
    if not pointer:
        return document
    current = document
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            return _MISSING
    return current


def resolve(expression: Any, documents: Mapping[str, Any]) -> Any:
    """The value of ``expression`` given each source's document (by source name)."""
    if isinstance(expression, list):
        return [resolve(item, documents) for item in expression]
    if not isinstance(expression, dict):
        return expression
    operator = _check_shape(expression)
    if operator is None:
        return {key: resolve(value, documents) for key, value in expression.items()}
    if operator == "$ref":
        source, pointer = expression["$ref"], expression.get("pointer", "")
        found = _point(documents[source], pointer) if source in documents else _MISSING
        if found is _MISSING:
            if "default" in expression:
                return expression["default"]
            raise MappingError(f"{source} has nothing at {pointer or 'its root'}")
        return found
    if operator == "$concat":
        joined: list[Any] = []
        for part in expression["$concat"]:
            value = resolve(part, documents)
            if not isinstance(value, list):
                raise MappingError(f"$concat: {part} is not a list")
            joined.extend(value)
        return joined
    fields = expression["$pick"]
    value = resolve(expression["from"], documents)

    def pick(item: Any) -> Any:
        if not isinstance(item, dict):
            raise MappingError("$pick: not an object")
        return {field: item[field] for field in fields if field in item}

    return [pick(item) for item in value] if isinstance(value, list) else pick(value)
