"""A real MCP client (the Python `mcp` SDK, pinned in .ci/mcp-client.env) for tests/it/mcp.rs.

usage: python mcp_client.py '<json plan>'

The plan: {"transport": "stdio", "command": [...], "env": {...}} or
          {"transport": "http", "url": "...", "token": "..."},
          "mode": "auto" | "legacy", "fast": SKILL, "gated": SKILL, "gate": PATH,
          "node": NODE_ID, "missing": SKILL; or "quick": true (connect, list tools, call
          list_nodes, report a failure to connect).

It runs one fixed scenario against the server and prints one JSON report on stdout: what
the server answered, as observed by a real client. The Rust test asserts on the report and
on the cluster's API; this script only checks what needs the SDK or jsonschema (schemas are
valid JSON Schema 2020-12, structured results validate against the tool's outputSchema).
"""

import asyncio
import json
import pathlib
import sys

from jsonschema import Draft202012Validator
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def transport(plan):
    if plan["transport"] == "stdio":
        cmd = plan["command"]
        return StdioServerParameters(command=cmd[0], args=cmd[1:], env=plan.get("env"))
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {plan['token']}"})
    return streamable_http_client(plan["url"], http_client=http)


def boolean_properties(schema, path, found):
    """Property schemas that are booleans (the TypeScript SDK refuses them)."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                found.extend(f"{path}/{k}" for k, v in value.items() if isinstance(v, bool))
            boolean_properties(value, f"{path}/{key}", found)
    elif isinstance(schema, list):
        for i, item in enumerate(schema):
            boolean_properties(item, f"{path}/{i}", found)


async def call(c, schemas, name, args, **kw):
    """Calls a tool; returns {is_error, text, structured, valid}."""
    r = await c.call_tool(name, args, **kw)
    blocks = [getattr(b, "text", "") for b in r.content]
    text = "\n".join(blocks)
    out = {"is_error": bool(r.is_error), "text": text, "structured": r.structured_content}
    if not r.is_error and schemas.get(name) is not None:
        errors = [e.message for e in Draft202012Validator(schemas[name]).iter_errors(r.structured_content)]
        out["schema_errors"] = errors
        # OpenClaw drops a text block only when it is exactly the pretty JSON: the other
        # blocks (the data label) reach its model besides the structured content.
        pretty = json.dumps(r.structured_content, indent=2, ensure_ascii=False)
        out["json_blocks"] = sum(1 for b in blocks if b == pretty)
        out["other_blocks"] = [b for b in blocks if b != pretty]
    return out


def describe(e):
    """An exception with the ones an exception group wraps."""
    inner = getattr(e, "exceptions", None)
    if inner:
        return "; ".join(describe(x) for x in inner)
    return f"{type(e).__name__}: {e}"


async def quick(plan):
    """Connect, list the tools, call list_nodes; a failure to connect is reported."""
    try:
        async with Client(transport(plan), mode=plan.get("mode", "auto")) as c:
            tools = sorted(t.name for t in (await c.list_tools()).tools)
            return {"tools": tools, "list_nodes": await call(c, {}, "list_nodes", {})}
    except BaseException as e:  # what a client sees when the server refuses it
        return {"error": describe(e)}


async def scenario(plan):
    if plan.get("quick"):
        return await quick(plan)
    report = {}
    async with Client(transport(plan), mode=plan.get("mode", "auto")) as c:
        report["protocol"] = str(c.protocol_version)
        report["server"] = c.server_info.name if c.server_info else None
        tools = (await c.list_tools()).tools
        schemas, problems = {}, []
        for t in tools:
            try:
                Draft202012Validator.check_schema(t.input_schema)
                if t.output_schema is not None:
                    Draft202012Validator.check_schema(t.output_schema)
            except Exception as e:  # SchemaError
                problems.append(f"{t.name}: {e}")
            boolean_properties(t.input_schema, f"{t.name}/input", problems)
            boolean_properties(t.output_schema or {}, f"{t.name}/output", problems)
            schemas[t.name] = t.output_schema
        report["tools"] = sorted(t.name for t in tools)
        report["described"] = sorted(t.name for t in tools if t.description and len(t.description) > 40)
        report["schema_problems"] = problems

        report["list_nodes"] = await call(c, schemas, "list_nodes", {})
        report["list_skills"] = await call(c, schemas, "list_skills", {})
        report["submit_fast"] = await call(
            c, schemas, "submit_task",
            {"skill": plan["fast"], "prompt": "hello from mcp", "parameters": {"n": 7}, "node": plan["node"]},
        )

        # A task that runs until the gate file exists: the client opens the gate when the
        # first progress notification arrives, so progress is proven without timing.
        submitted = await call(c, schemas, "submit_task", {"skill": plan["gated"], "wait_seconds": 0})
        report["submit_gated"] = submitted
        progress = []

        async def on_progress(value, total, message):
            progress.append({"progress": value, "total": total, "message": message})
            pathlib.Path(plan["gate"]).touch()

        task_id = (submitted["structured"] or {}).get("task_id", "missing")
        report["wait_gated"] = await call(
            c, schemas, "wait_task", {"task_id": task_id, "timeout_seconds": 120}, progress_callback=on_progress
        )
        report["progress"] = progress
        report["get_gated"] = await call(c, schemas, "get_task", {"task_id": task_id})

        queued = await call(
            c, schemas, "submit_task", {"skill": plan["missing"], "queue_if_unavailable": True, "wait_seconds": 0}
        )
        report["submit_queued"] = queued
        queued_id = (queued["structured"] or {}).get("task_id", "missing")
        report["cancel_queued"] = await call(c, schemas, "cancel_task", {"task_id": queued_id})
        report["cancel_ended"] = await call(c, schemas, "cancel_task", {"task_id": task_id})
        report["submit_missing"] = await call(c, schemas, "submit_task", {"skill": plan["missing"]})
        report["submit_bad_priority"] = await call(
            c, schemas, "submit_task", {"skill": plan["fast"], "priority": "urgent"}
        )
        report["get_unknown"] = await call(c, schemas, "get_task", {"task_id": "task_nope"})
        if "add_schedule" in schemas:
            report["add_schedule"] = await call(
                c, schemas, "add_schedule",
                {"name": "mcp-daily", "cron": "0 7 * * *", "tz": "Europe/Berlin", "skill": plan["fast"]},
            )
            report["add_schedule_bad"] = await call(
                c, schemas, "add_schedule", {"name": "mcp-bad", "cron": "0 7 * *", "skill": plan["fast"]}
            )
            report["run_schedule"] = await call(c, schemas, "run_schedule", {"schedule": "mcp-daily"})
            report["list_schedules"] = await call(c, schemas, "list_schedules", {})
            report["remove_schedule"] = await call(
                c, schemas, "change_schedule", {"schedule": "mcp-daily", "action": "remove"}
            )
            report["run_unknown_schedule"] = await call(c, schemas, "run_schedule", {"schedule": "mcp-daily"})

        resources = (await c.list_resources()).resources
        report["resources"] = [str(r.uri) for r in resources]
        report["templates"] = [t.uri_template for t in (await c.list_resource_templates()).resource_templates]
        nodes = await c.read_resource("cluster://nodes")
        report["read_nodes"] = json.loads(nodes.contents[0].text)
        task = await c.read_resource(f"cluster://tasks/{task_id}")
        report["read_task"] = json.loads(task.contents[0].text)
        try:
            await c.read_resource("cluster://tasks/task_nope")
            report["read_unknown"] = "no error"
        except Exception as e:  # MCPError: resource not found
            report["read_unknown"] = f"{type(e).__name__}: {e}"
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(scenario(json.loads(sys.argv[1])))))
