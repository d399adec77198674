#!/usr/bin/env python3
"""The `echo` exec skill: read the task from stdin, print the result as JSON.

The openclaw worker starts this in the skill's folder with the task on stdin:
    {"task_id": "...", "attempt": 1, "name": "...", "parameters": {...}}
and these environment variables: OPENCLAW_TASK_ID, OPENCLAW_NODE_ID, OPENCLAW_SKILL,
OPENCLAW_ATTEMPT. Whatever JSON goes to stdout is the task's result; a non-zero exit
code fails the attempt, and the end of stderr is kept for the error message.
"""

import json
import os
import sys


def main() -> int:
    task = json.load(sys.stdin)
    parameters = task.get("parameters") or {}
    if isinstance(parameters, dict) and parameters.get("fail"):
        print(f"echo: asked to fail (parameters.fail = {parameters['fail']!r})", file=sys.stderr)
        return 1
    result = {
        "echo": parameters,
        "node": os.environ.get("OPENCLAW_NODE_ID"),
        "attempt": task.get("attempt", int(os.environ.get("OPENCLAW_ATTEMPT", "0"))),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
