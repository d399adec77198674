"""The peer of `cargo bench --bench load -- tasks`: Celery + Redis on the same machine, in the
same run, with the same shape of load.

Durable as ours is: Redis with `appendonly yes` and `appendfsync always` (every write on disk
before Redis answers), late acknowledgement (a task leaves the queue only once it ran), and
results in Redis. `workers` Celery worker processes, each with `slots` threads, run a no-op
task; `total` tasks are sent at once and the time from the first send to the last result
is the rate. Prints one line: `celery <version> tasks/s <rate> elapsed <seconds>`.

Usage: python celery_tasks.py TOTAL WORKERS SLOTS (redis-server on PATH, celery[redis]
importable). Everything it starts lives in a temporary directory and ends with it.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time

APP = '''
import os
from celery import Celery

app = Celery("peer", broker=os.environ["PEER_BROKER"], backend=os.environ["PEER_BACKEND"])
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=False,
    result_expires=None,
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop")
def noop(i):
    return {"ok": True, "i": i}
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_redis(port, deadline):
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("redis-server did not answer PING within 10 s")


def main():
    total, workers, slots = (int(a) for a in sys.argv[1:4])
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        redis = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )
        procs = [redis]
        try:
            wait_for_redis(port, time.time() + 10)
            with open(os.path.join(d, "peerapp.py"), "w") as f:
                f.write(APP)
            env = dict(os.environ, PYTHONPATH=d,
                       PEER_BROKER=f"redis://127.0.0.1:{port}/0", PEER_BACKEND=f"redis://127.0.0.1:{port}/1")
            os.environ.update(env)
            sys.path.insert(0, d)
            for i in range(workers):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "peerapp", "worker", "--pool", "threads",
                     "-c", str(slots), "-n", f"w{i}@peer", "--without-gossip", "--without-mingle",
                     "--without-heartbeat", "-l", "warning"],
                    env=env, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))
            import celery
            import celery.result
            import peerapp

            # Every worker answers before the clock starts.
            deadline = time.time() + 60
            while len(peerapp.app.control.ping(timeout=1.0) or []) < workers:
                if time.time() > deadline:
                    sys.exit(f"not all {workers} Celery workers came up within 60 s")
            # A warm-up task through the whole path.
            peerapp.noop.delay(-1).get(timeout=30)
            started = time.time()
            results = celery.result.ResultSet([peerapp.noop.delay(i) for i in range(total)])
            # join_native: the Redis backend's own way to collect many results at once.
            assert all(r["ok"] for r in results.join_native(timeout=600))
            elapsed = time.time() - started
            print(f"celery {celery.__version__} tasks/s {total / elapsed:.1f} elapsed {elapsed:.2f}")
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
