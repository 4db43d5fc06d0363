#!/usr/bin/env python3
"""Validates smtpgatectl's JSON output against docs/schema/*.schema.json.

usage: check_json_schema.py SCHEMA_DIR NAME=FILE...

FILE holds one JSON document, or one per line (drops -j). Before validating,
every schema is checked to be closed: each object schema that declares
properties must set additionalProperties to false and require every property
it declares (but those it lists in x-optional), so a field the command adds, renames or drops fails here rather
than in a user's script. Prints one line per problem; exits 1 if any.
"""
import json
import pathlib
import sys

import jsonschema


def closed_problems(node, where):
    out = []
    if isinstance(node, dict):
        if "properties" in node:
            if node.get("additionalProperties") is not False:
                out.append(f"{where}: additionalProperties must be false")
            # x-optional: fields the command leaves out in some states (status
            # when no gate is loaded), still declared so their type is checked.
            missing = set(node["properties"]) - set(node.get("required", [])) - set(node.get("x-optional", []))
            if missing:
                out.append(f"{where}: properties not required: {sorted(missing)}")
        for k, v in node.items():
            out += closed_problems(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += closed_problems(v, f"{where}/{i}")
    return out


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    schema_dir = pathlib.Path(sys.argv[1])
    problems = []
    for path in sorted(schema_dir.glob("*.schema.json")):
        problems += closed_problems(json.loads(path.read_text()), path.name)
    for arg in sys.argv[2:]:
        name, _, file = arg.partition("=")
        schema_path = schema_dir / f"{name}.schema.json"
        if not schema_path.exists():
            problems.append(f"{name}: no schema {schema_path}")
            continue
        schema = json.loads(schema_path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        text = pathlib.Path(file).read_text()
        docs = [json.loads(l) for l in text.splitlines() if l.strip()] if name == "drops" else [json.loads(text)]
        if not docs:
            problems.append(f"{name}: {file} holds no document")
        for i, doc in enumerate(docs):
            for e in validator.iter_errors(doc):
                path = "/".join(str(p) for p in e.absolute_path)
                problems.append(f"{name} (document {i}) at /{path}: {e.message}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
