"""Slow-client benchmark: how long a simple request waits while idle and half-sent connections are open.

Runs gunicorn with a one-line WSGI app (the worker is what is measured, not the model) under the stock
gthread worker and under superlinear's worker, each with 8 threads, and for each load (none; 8
half-sent requests; 1,000 idle connections; both) times 20 sequential GETs. A GET
that gets no answer in `--timeout` seconds counts as a timeout; three timeouts end a load.

    python benchmarks/slow_clients.py [--timeout 5]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import sys
import textwrap
import time

SERVE = textwrap.dedent("""
    import sys
    from gunicorn.app.base import BaseApplication
    from superlinear.frontends.http.worker import worker_class

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    class Serve(BaseApplication):
        def load_config(self):
            worker = "gthread" if sys.argv[2] == "stock" else worker_class(1 << 20)
            for key, value in {"bind": "127.0.0.1:" + sys.argv[1], "workers": 1, "threads": 8,
                               "worker_class": worker, "worker_connections": 10_000}.items():
                self.cfg.set(key, value)
        def load(self):
            return app

    Serve().run()
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, timeout: float) -> float | None:
    """Seconds for one GET, or None on timeout."""
    start = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while sock.recv(4096):
                pass
    except OSError:
        return None
    return time.perf_counter() - start


@contextlib.contextmanager
def server(kind: str):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(port), kind],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while get(port, 1.0) is None:
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure(port: int, idle: int, half: int, timeout: float) -> str:
    socks = []
    try:
        for i in range(idle + half):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i >= idle:
                sock.sendall(b"GET / HTTP/1.1\r\n")
            socks.append(sock)
        time.sleep(0.5)
        times: list[float | None] = []
        while len(times) < 20 and times.count(None) < 3:  # three timeouts say enough
            times.append(get(port, timeout))
    finally:
        for sock in socks:
            sock.close()
    done = [t for t in times if t is not None]
    p50 = f"{statistics.median(done) * 1000:.1f} ms" if done else "-"
    return f"{len(done)}/{len(times)} answered, p50 {p50}, {len(times) - len(done)} timeouts"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    loads = [(0, 0), (0, 8), (1000, 0), (1000, 8)]
    print("| worker | idle | half-sent | GET / |")
    print("| --- | --- | --- | --- |")
    for kind in ("stock", "superlinear"):
        for idle, half in loads:
            with server(kind) as port:
                print(f"| {kind} gthread | {idle} | {half} | {measure(port, idle, half, args.timeout)} |", flush=True)


if __name__ == "__main__":
    main()
