"""The JSON schemas under src/poetry_snapshot/schemas/, compiled as validators.

Schemas reference each other by `$id` (the interpreter's one shape, the drift report inside
the env manifest); references resolve to the files here, never to the network.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any
from typing import Callable

import fastjsonschema

SCHEMAS = Path(__file__).parents[1] / "src/poetry_snapshot/schemas"


@functools.cache
def _by_id() -> dict[str, Any]:
    found = {}
    for path in SCHEMAS.glob("*.schema.json"):
        schema = json.loads(path.read_text())
        found[schema["$id"]] = schema
    return found


@functools.cache
def validator(name: str) -> Callable[[Any], Any]:
    """A validator for `name` (e.g. "manifest"), raising JsonSchemaException on a mismatch."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return fastjsonschema.compile(schema, handlers={"https": lambda uri: _by_id()[uri]})
