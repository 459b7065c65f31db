"""JSON Schemas of the agent protocol, generated from the pydantic models.

`python -m dialer.bus.schemas docs/schemas` rewrites the committed files; a test fails when
they differ from what the models generate, so the docs cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from dialer.bus.messages import (
    AGENT_COMMAND_TYPES,
    DIALER_MESSAGE_TYPES,
    SUPERVISOR_EVENT_TYPES,
)

SCHEMA_BASE_URI = "urn:dialer:agent-protocol:v1:"


def generate() -> dict[str, dict[str, Any]]:
    """File name -> schema, one per message: agent-*.json, dialer-*.json, supervisor-*.json."""
    out: dict[str, dict[str, Any]] = {}
    groups = (("agent", AGENT_COMMAND_TYPES), ("dialer", DIALER_MESSAGE_TYPES),
              ("supervisor", SUPERVISOR_EVENT_TYPES))
    for direction, models in groups:
        for model in models:
            msg_type = model.model_fields["type"].default
            name = f"{direction}-{msg_type}.json"
            schema = {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": SCHEMA_BASE_URI + name.removesuffix(".json"),
                **model.model_json_schema(mode="validation"),
            }
            out[name] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in generate().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dialer.bus.schemas DIRECTORY", file=sys.stderr)
        return 2
    for path in write(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
