#!/usr/bin/env python3
"""Follow an openclaw cluster's events on NATS with nothing but Python's standard library.

    python3 examples/nats-events.py [NATS_URL] [SUBJECT]

NATS_URL defaults to nats://127.0.0.1:4222 (credentials as nats://user:password@host:port
or nats://token@host:port; plain connections only: use the nats CLI for tls://). SUBJECT
defaults to cluster.events.> (cluster.events.tasks.completed, cluster.events.nodes.*, ...).
Prints each event as one line of JSON, the same JSON as the HTTP event stream:

    python3 examples/nats-events.py nats://10.0.0.1:4222 'cluster.events.tasks.*' | jq .

It speaks NATS's text protocol: CONNECT, SUB, then MSG lines, answering the server's PINGs.
"""
import json
import socket
import sys
from urllib.parse import unquote, urlsplit


def main() -> None:
    url = urlsplit(sys.argv[1] if len(sys.argv) > 1 else "nats://127.0.0.1:4222")
    subject = sys.argv[2] if len(sys.argv) > 2 else "cluster.events.>"
    if url.scheme != "nats":
        sys.exit(f"{url.scheme}:// is not supported here: give a nats:// URL (or use the nats CLI for TLS)")
    options = {"verbose": False, "pedantic": False, "headers": False, "protocol": 1,
               "name": "openclaw nats-events.py", "lang": "python", "version": "1"}
    if url.password is not None:
        options.update({"user": unquote(url.username or ""), "pass": unquote(url.password)})
    elif url.username:
        options["auth_token"] = unquote(url.username)
    sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 4222))
    stream = sock.makefile("rb")
    if not stream.readline().startswith(b"INFO "):
        sys.exit(f"{url.hostname}:{url.port or 4222} is not a NATS server")
    sock.sendall(f"CONNECT {json.dumps(options)}\r\nSUB {subject} 1\r\nPING\r\n".encode())
    while True:
        line = stream.readline()
        if not line:
            sys.exit("the NATS server closed the connection")
        if line.startswith(b"MSG "):
            size = int(line.split()[-1])
            print(stream.read(size + 2)[:size].decode(), flush=True)
        elif line.startswith(b"PING"):
            sock.sendall(b"PONG\r\n")
        elif line.startswith(b"PONG"):
            print(f"following {subject}", file=sys.stderr, flush=True)
        elif line.startswith(b"-ERR"):
            sys.exit(f"the NATS server refused: {line.decode().strip()}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
