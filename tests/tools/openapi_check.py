"""Checks the coordinator's OpenAPI document against what the coordinator does.

usage: openapi_check.py openapi.json samples.json

1. The document is valid OpenAPI 3.1 (openapi-spec-validator, which checks 3.1 itself).
2. Each sample (a real request and answer: method, path template, status, headers, body) is
   documented: its operation exists, its status is listed for that operation, its content
   type is one the answer documents, the headers the answer documents are sent, and a JSON
   body validates against the documented schema, strictly: every object of the document is
   closed (`unevaluatedProperties: false`), so a field the server sends but the document
   lacks fails, as do a wrong type, an unknown enum value and a bad date-time.

Prints one line per problem and exits 1 if there is any; 0 and a summary otherwise.
Used by tests/it/openapi.rs; the tools come from .ci/requirements.txt.
"""
import copy
import json
import sys

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def close(node, flattened):
    """Closes every object schema with properties, except the members of an allOf (their
    parent is closed instead: unevaluatedProperties sees through allOf and $ref)."""
    if isinstance(node, dict):
        if "allOf" in node:
            node.setdefault("unevaluatedProperties", False)
            for member in node["allOf"]:
                open_member(member, flattened)
        elif node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
            node["unevaluatedProperties"] = False
        for key, value in node.items():
            if key != "allOf":
                close(value, flattened)
    elif isinstance(node, list):
        for value in node:
            close(value, flattened)


def open_member(member, flattened):
    if "$ref" in member:
        flattened.add(member["$ref"].rsplit("/", 1)[-1])
    else:
        for key, value in member.items():
            if key == "properties":
                for prop in value.values():
                    close(prop, flattened)


def check_stream(where, content, text, registry):
    """Each event of a captured stream is one the answer's schema names (a `oneOf` of one
    object per event name), and its data (one line of JSON) validates against that event's
    `contentSchema`."""
    events = {}
    for branch in content.get("schema", {}).get("oneOf", []):
        props = branch.get("properties", {})
        for name in props.get("event", {}).get("enum", []):
            events[name] = props.get("data", {}).get("contentSchema", {})
    problems = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [l for l in block.split("\n") if l and not l.startswith(":")]
        if not lines:
            continue
        fields = {}
        for line in lines:
            key, _, value = line.partition(":")
            fields.setdefault(key, []).append(value[1:] if value.startswith(" ") else value)
        name = fields.get("event", ["message"])[0]
        if name not in events:
            problems.append(f"{where}: event {name!r} is not one the answer names ({', '.join(events)})")
            continue
        data = "\n".join(fields.get("data", []))
        try:
            value = json.loads(data)
        except ValueError:
            problems.append(f"{where}: the data of event {name!r} is not JSON: {data[:80]!r}")
            continue
        schema = dict(events[name])
        if "$ref" in schema:
            schema["$ref"] = "urn:doc" + schema["$ref"]
        validator = Draft202012Validator(schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)
        for e in validator.iter_errors(value):
            at = "/".join(map(str, e.absolute_path)) or "(the data)"
            problems.append(f"{where}: event {name!r}: {at}: {e.message}")
    return problems


def main():
    doc = json.load(open(sys.argv[1]))
    samples = json.load(open(sys.argv[2]))
    validate(doc)
    print(f"openapi-spec-validator: the document is valid OpenAPI {doc['openapi']}")

    strict = copy.deepcopy(doc)
    flattened = set()
    close(strict["components"]["schemas"], flattened)
    for path in strict["paths"].values():
        close(path, flattened)
    # A schema flattened into another stays open (its parent's allOf closes the whole).
    for name in flattened:
        strict["components"]["schemas"][name].pop("unevaluatedProperties", None)
    registry = Registry().with_resource("urn:doc", Resource(contents=strict, specification=DRAFT202012))

    problems = []
    seen = set()
    for s in samples:
        where = f"{s['method']} {s['path']} ({s['template']}) -> {s['status']}"
        op = strict["paths"].get(s["template"], {}).get(s["method"].lower())
        if op is None:
            problems.append(f"{where}: the operation is not in the document")
            continue
        response = op["responses"].get(str(s["status"]))
        if response is None:
            listed = ", ".join(op["responses"])
            problems.append(f"{where}: status {s['status']} is not documented (listed: {listed})")
            continue
        seen.add((s["template"], s["method"], s["status"]))
        for header in response.get("headers", {}):
            if header.lower() not in s["headers"]:
                problems.append(f"{where}: the documented header {header} was not sent")
        content = response.get("content", {})
        media = s["headers"].get("content-type", "").split(";")[0].strip()
        if not content:
            continue
        if media not in content:
            problems.append(f"{where}: content type {media!r} is not documented (listed: {', '.join(content)})")
            continue
        if media == "text/event-stream":
            problems.extend(check_stream(where, content[media], s.get("text", ""), registry))
            continue
        if media != "application/json":
            continue
        schema = content[media]["schema"]
        pointer = "/".join(
            p.replace("~", "~0").replace("/", "~1")
            for p in ["paths", s["template"], s["method"].lower(), "responses", str(s["status"]), "content", media, "schema"]
        )
        validator = Draft202012Validator(
            {"$ref": f"urn:doc#/{pointer}"}, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        for e in validator.iter_errors(s["body"]):
            at = "/".join(map(str, e.absolute_path)) or "(the body)"
            problems.append(f"{where}: {at}: {e.message}")
    for p in problems:
        print(p)
    print(f"{len(samples)} answers checked, {len(seen)} distinct (operation, status) pairs, {len(problems)} problems")
    sys.exit(1 if problems else 0)


main()
