"""`spl server start|status|stop|connect`: run spl-server in the background and look after it."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..infra.client import ApiError, Client
from ..infra.config import normalize_url, save_client_config, server_dir, server_url
from ..infra.output import print_json
from .ports import describe_holder, listening_pid, port_in_use

__all__ = ["add_server_parser"]


def add_server_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("server", help="start, check, stop or connect to a server")
    ss = p.add_subparsers(dest="server_cmd", required=True)
    start = ss.add_parser("start", help="start spl-server in the background")
    start.add_argument("--model", default=None,
                       help="model directory or Hugging Face repo id (default: the embedded model)")
    start.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1, this machine only)")
    start.add_argument("--port", type=int, default=8787, help="TCP port (default: 8787)")
    start.add_argument("--chunk-size", type=int, default=None, help="prefill chunk size in tokens (default: 8192)")
    start.add_argument("--dtype", default=None, choices=DTYPES, help="weights and activations (default: float32)")
    start.add_argument("--device", default=None, type=device_arg, help="cpu, cuda or cuda:N (default: cpu)")
    start.add_argument("--api-key", default=None,
                       help="require this bearer key from clients (default: $SPL_API_KEY, else none)")
    start.add_argument("--kv-budget", default=None,
                       help="bytes of session state to keep in memory, e.g. 8GiB (default: what fits after the "
                       "weights, less headroom)")
    start.add_argument("--max-seq-len", type=int, default=None,
                       help="cap on a session's length in tokens (default: the model's limit)")
    start.add_argument("--torch-threads", type=int, default=None,
                       help="CPU threads of the model's operators, 0 for all cores (default: $SPL_TORCH_THREADS or 1)")
    start.add_argument("--no-keep-sessions", action="store_true",
                       help="don't keep live sessions across a stop (default: kept as snapshots and loaded back "
                       "at the next start)")
    start.add_argument("--gpus", "--tensor-parallel", dest="gpus", type=int, default=None, metavar="N",
                       help="shard the model over N ranks: one per GPU (cuda:0..N-1), or N gloo processes on CPU "
                       "(default: 1, no sharding)")
    start.add_argument("--foreground", action="store_true", help="run in this terminal (default: in the background)")
    start.add_argument("--wait", type=float, default=300.0, help="seconds to wait for readiness (default: 300)")
    start.set_defaults(func=cmd_start)
    status = ss.add_parser("status", help="is the server running?")
    status.add_argument("--url", default=None, help="server URL (default: the saved one)")
    status.add_argument("--json", action="store_true", help="print JSON: /health's answer, url, pid, reachable")
    status.set_defaults(func=cmd_status)
    ss.add_parser("stop", help="stop the background server").set_defaults(func=cmd_stop)
    conn = ss.add_parser("connect", help="use a server at another URL")
    conn.add_argument("url")
    conn.set_defaults(func=cmd_connect)


DTYPES = ("float32", "bfloat16", "float16")


def device_arg(text: str) -> str:
    """Accept cpu, cuda or cuda:N; refuse cuda when this torch has no CUDA (before any server starts)."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu, cuda or cuda:N")
    if text.startswith("cuda"):
        import torch  # only here: most commands never need it

        if not torch.cuda.is_available():
            why = ("this torch is a CPU-only build" if torch.version.cuda is None
                   else "torch sees no CUDA GPU on this machine")
            raise argparse.ArgumentTypeError(f"{text}: {why} (see README: install, GPU)")
    return text


def _server_args(a: argparse.Namespace) -> list[str]:
    args = ["--host", a.host, "--port", str(a.port)]
    for flag, value in (("--model", a.model), ("--chunk-size", a.chunk_size), ("--dtype", a.dtype),
                        ("--device", a.device), ("--api-key", a.api_key),
                        ("--kv-budget", a.kv_budget), ("--max-seq-len", a.max_seq_len),
                        ("--torch-threads", a.torch_threads), ("--tensor-parallel", getattr(a, "gpus", None))):
        if value is not None:
            args += [flag, str(value)]
    return args + (["--no-keep-sessions"] if getattr(a, "no_keep_sessions", False) else [])


def _pid_file() -> Path:
    return server_dir() / "server.pid"


def _log_file() -> Path:
    return server_dir() / "server.log"


def _read_pid() -> int | None:
    try:
        return int(_pid_file().read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _is_ours(pid: int) -> bool:
    """True if `pid` is alive and is an spl-server (guards against a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"spl-server" in cmdline or b"superlinear.frontends.http.server" in cmdline


def _command() -> list[str]:
    return [sys.executable, "-m", "superlinear.frontends.http.server"]


def cmd_start(a: argparse.Namespace) -> int:
    if a.foreground:
        os.execv(sys.executable, _command() + _server_args(a))
    pid = _read_pid()
    if pid and _is_ours(pid):
        print(f"a server is already running (pid {pid}); `spl server stop` first")
        return 1
    url = f"http://{a.host}:{a.port}"
    if port_in_use(a.host, a.port):
        print(_port_taken(a.host, a.port, url), file=sys.stderr)
        return 1
    folder = server_dir()
    folder.mkdir(parents=True, exist_ok=True)
    log = open(_log_file(), "ab")
    since = log.tell()
    proc = subprocess.Popen(_command() + _server_args(a), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    _pid_file().write_text(f"{proc.pid}\n")
    code = _wait_ready(proc, url, a.wait, since)
    if code == 0:
        save_client_config({"url": url})  # only a server that answered becomes the default
    if code == 0 and a.api_key:
        print("clients need the key: export SPL_API_KEY=... (or pass --api-key to each command)")
    return code


def _port_taken(host: str, port: int, url: str) -> str:
    """Say who holds the port: another spl-server (with its URL and model) or another program."""
    holder = listening_pid(port)
    try:
        health = Client(url, timeout=3.0).health()
    except ApiError:
        health = {}
    if "model" in health or health.get("status") in ("loading", "error", "stopping") or (
            holder.command and _is_ours(holder.pid)):
        who = f"another spl-server ({describe_holder(holder) if holder.pid else 'pid unknown'}), " \
              f"serving {health.get('model') or 'no model yet'} at {url}"
        return (f"error: port {port} on {host} is taken by {who}.\nUse it (`spl server connect {url}`), stop it, "
                f"or pick another port with --port.")
    return (f"error: port {port} on {host} is taken by another program ({describe_holder(holder)}).\n"
            f"Pick another port with --port, or stop that program.")


def _progress(start: float, status: dict, since: int) -> None:
    """On a terminal, redraw one line: the phase, the elapsed time and the log's last line (download, load)."""
    if not sys.stdout.isatty():
        return
    phase = status.get("status") or "starting"
    last = _tail(_log_file(), 1, since).strip().replace("\r", " ")
    width = max(20, shutil.get_terminal_size().columns - 1)
    line = f"{phase}... {time.monotonic() - start:.0f}s  {last}"
    sys.stdout.write("\r\x1b[K" + line[:width])
    sys.stdout.flush()


def _end_progress() -> None:
    if sys.stdout.isatty():
        sys.stdout.write("\r\x1b[K")
        sys.stdout.flush()


def _abandon(proc: subprocess.Popen) -> None:
    """Stop a server that cannot serve (its model failed to load) and forget its pid."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _pid_file().unlink(missing_ok=True)


def _poll(client: Client) -> dict:
    try:
        return client.health()
    except ApiError:
        return {}


def _wait_ready(proc: subprocess.Popen, url: str, wait: float, since: int = 0) -> int:
    """Wait for /health to say ok, showing progress; on failure print the new log lines and return 1."""
    client = Client(url, timeout=2.0)
    start = time.monotonic()
    print(f"starting spl-server (pid {proc.pid}), log: {_log_file()}", flush=True)
    while time.monotonic() < start + wait:
        status = {} if proc.poll() is not None else _poll(client)
        if proc.poll() is not None or status.get("status") == "error":
            _end_progress()
            why = (f"spl-server exited with code {proc.returncode}" if proc.poll() is not None
                   else f"the server could not load the model: {status.get('error')}")
            tail = _tail(_log_file(), 20, since)
            _abandon(proc)
            print(f"{why}\nlast log lines:\n{tail}")
            return 1
        if status.get("status") == "ok":
            _end_progress()
            print(f"ready: {url}/v1 (model {status.get('model')}, {time.monotonic() - start:.1f}s)")
            for line in _persist_lines(since, "restored"):
                print(line)
            return 0
        _progress(start, status, since)
        time.sleep(0.5)
    _end_progress()
    print(f"the server did not become ready in {wait:.0f}s; last log lines:\n{_tail(_log_file(), 20, since)}\n"
          f"(it is still starting in the background: `spl server status`, or `spl server stop`)")
    return 1


def _tail(path: Path, lines: int = 20, since: int = 0) -> str:
    """Return the last `lines` lines of the log written after byte offset `since`."""
    try:
        with open(path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(the log is empty)"


def cmd_status(a: argparse.Namespace) -> int:
    pid = _read_pid()
    pid = pid if pid and _is_ours(pid) else None
    url = server_url(getattr(a, "url", None))
    try:
        status = Client(url, timeout=3.0).health()
    except ApiError as exc:
        if getattr(a, "json", False):
            print_json({"url": url, "reachable": False, "error": str(exc), "pid": pid})
        else:
            print(f"not reachable at {url}: {exc}" + (f" (pid file says {pid})" if pid else ""))
        return 1
    if getattr(a, "json", False):
        print_json({**status, "url": url, "reachable": True, "pid": pid})
    else:
        print(f"{status.get('status')}: {url} model={status.get('model')} sessions={status.get('sessions')}"
              f" torch_threads={status.get('torch_threads')}" + (f" pid={pid}" if pid else ""))
    return 0 if status.get("status") == "ok" else 1


def cmd_stop(a: argparse.Namespace) -> int:
    pid = _read_pid()
    if not pid:
        print("no background server recorded")
        return 1
    if not _is_ours(pid):
        print(f"pid {pid} is not a running spl-server; removing the stale pid file")
        _pid_file().unlink(missing_ok=True)
        return 1
    since = _log_size()
    os.kill(pid, signal.SIGTERM)
    killed = False
    for _ in range(300):
        if not _is_ours(pid):
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        killed = True
    _pid_file().unlink(missing_ok=True)
    print(f"stopped spl-server (pid {pid})" + ("; it did not stop in 30s and was killed" if killed else ""))
    kept = _persist_lines(since, "kept")
    print(kept[-1] if kept else "no sessions were kept (started with --no-keep-sessions, or none survived)")
    return 0


def _log_size() -> int:
    try:
        return _log_file().stat().st_size
    except FileNotFoundError:
        return 0


def _persist_lines(since: int, what: str) -> list[str]:
    """The server's `spl-persist:` log lines about `what` (kept, restored) written after offset `since`."""
    marker = f"spl-persist: {what} "
    lines = _tail(_log_file(), 10_000, since).splitlines()
    return [line[line.index(marker) + len("spl-persist: "):] for line in lines if marker in line]


def cmd_connect(a: argparse.Namespace) -> int:
    url = normalize_url(a.url)
    if not url.startswith(("http://", "https://")):
        print(f"error: {a.url!r} is not an http(s) URL", file=sys.stderr)
        return 2
    save_client_config({"url": url})
    try:
        status = Client(url, timeout=5.0).health()
        print(f"connected to {url} ({status.get('status')}, model {status.get('model')})")
    except ApiError as exc:
        print(f"saved {url}, but it does not answer yet: {exc}")
    return 0
