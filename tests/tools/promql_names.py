"""Prints the metric names each PromQL expression selects, one JSON object per input line.

usage: promql_names.py < exprs.txt   (one expression per line; Grafana's variables already
replaced). Parses with promql-parser (the Rust parser of GreptimeDB, from PyPI): a syntax
error exits 1 naming the expression. Used by tests/it/grafana.rs.
"""
import json
import sys

import promql_parser


# The attributes of promql-parser's nodes that hold sub-expressions.
CHILDREN = ("lhs", "rhs", "expr", "args", "param", "vector_selector")


def names(node, out):
    if type(node).__name__ == "VectorSelector":
        if node.name:
            out.add(node.name)
        return
    for attr in CHILDREN:
        value = getattr(node, attr, None)
        for v in value if isinstance(value, list) else [value]:
            if v is not None and not isinstance(v, (int, float, str)):
                names(v, out)


ok = True
for line in sys.stdin:
    expr = line.rstrip("\n")
    if not expr:
        continue
    try:
        tree = promql_parser.parse(expr)
    except Exception as e:  # the parser's own error names the position
        print(json.dumps({"expr": expr, "error": str(e)}))
        ok = False
        continue
    found = set()
    names(tree, found)
    print(json.dumps({"expr": expr, "names": sorted(found)}))
sys.exit(0 if ok else 1)
