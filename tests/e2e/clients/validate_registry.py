"""Validate a registry API answer against the vendored official server.json schema.

usage: validate_registry.py SCHEMA ANSWER_FILE list|one
  list  ANSWER_FILE holds a `GET /v0.1/servers` answer: every `servers[].server` is checked
  one   ANSWER_FILE holds one `ServerResponse` (`{"server": …, "_meta": …}`)
Prints {"ok": true, "checked": N} or {"ok": false, "errors": [...]}.
"""

import json
import sys

import jsonschema


def main():
    schema_file, answer_file, shape = sys.argv[1:]
    with open(schema_file) as f:
        schema = json.load(f)
    with open(answer_file) as f:
        answer = json.load(f)
    entries = answer["servers"] if shape == "list" else [answer]
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = [
        f"{entry.get('server', {}).get('name')}: {error.message}"
        for entry in entries
        for error in validator.iter_errors(entry.get("server"))
    ]
    print(json.dumps({"ok": not errors, "checked": len(entries), "errors": errors}))
    sys.exit(0 if not errors else 1)


if __name__ == "__main__":
    main()
