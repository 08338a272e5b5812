"""`spl-server`: the OpenAI-compatible server under gunicorn (one worker, gthread, no preload)."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import os
import re
import signal
import socket
import sys
import threading

import attrs
import bitmath
from gunicorn.app.base import BaseApplication

from superlinear.adapters.cpu_threads import DEFAULT_TORCH_THREADS, resolve_torch_threads
from superlinear.adapters.placement import PlacementError, resolve_placement

from .body import DEFAULT_MAX_BODY_BYTES
from .compose import Settings, build_app
from .origin import ALLOWED_HOSTS_ENV, parse_allowed_hosts
from .worker import MAX_CONNECTIONS, worker_class

__all__ = ["main", "parse_settings", "parse_size"]

log = logging.getLogger(__name__)

_DECIMAL_UNIT = re.compile(r"[kmgtpe]b", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Parse a byte size: "8GiB", "8G" and "8gb" style; K/M/G/T and KiB... are binary, KB/MB/GB/TB decimal.

    bitmath parses; the unit is read as bytes whatever its case (bitmath's "Gb" would be gigabits), binary
    when it is a bare prefix or has an "i" (8G = 8Gi = 8GiB), decimal when it is a prefix and B (8GB, 8gb).
    """
    number = text.strip()
    unit = number.lstrip("0123456789.").strip()
    if unit[-1:] == "b":
        number = number[:-1] + "B"
    system = bitmath.SI if _DECIMAL_UNIT.fullmatch(unit) else bitmath.NIST
    try:
        size = bitmath.parse_string(number, strict=False, system=system)
    except ValueError:
        size = None
    if size is None or not size.bytes >= 0 or size.bytes == float("inf"):
        raise ValueError(f"not a size: {text!r} (try 8GiB, 512MiB or a number of bytes)")
    return int(size.bytes)


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _device(text: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu, cuda or cuda:N")
    return text


def _threads(text: str) -> int:
    try:
        return resolve_torch_threads(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError("must be 0 (all cores) or a positive integer") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spl-server", description="Serve a model over the OpenAI chat API.")
    p.add_argument("--model", default=None, help="model directory (default: the embedded default model)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=8787)
    p.add_argument("--chunk-size", type=_positive, default=8192, help="prefill chunk size in tokens")
    p.add_argument("--prefill-budget", type=_positive, default=128,
                   help="prompt tokens per engine step, shared by prefilling requests; other streams wait at "
                        "most one such step (default 128)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="default: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--device", default=None, type=_device, help="cpu, cuda or cuda:N (default: cuda if present, else cpu)")
    p.add_argument("--kv-budget", type=_size_arg, default=None,
                   help="device memory for session state, e.g. 8GiB (default: what fits after the weights)")
    p.add_argument("--max-seq-len", type=_positive, default=None, help="default and largest session length")
    p.add_argument("--max-prompt-tokens", type=_positive, default=None,
                   help="refuse prompts longer than this (400 context_length_exceeded)")
    p.add_argument("--max-tokens", type=_positive, default=512, help="default completion length")
    p.add_argument("--max-body-bytes", type=_size_arg, default=DEFAULT_MAX_BODY_BYTES,
                   help="largest request body (413 above)")
    p.add_argument("--threads", type=_positive, default=8, help="HTTP request threads of the worker")
    p.add_argument("--torch-threads", type=_threads, default=None,
                   help="CPU threads of the model's operators; 0 means all cores (default: $SPL_TORCH_THREADS "
                   f"or {DEFAULT_TORCH_THREADS}, measured fastest for the small default model)")
    p.add_argument("--prefix-cache", type=int, default=8, metavar="N",
                   help="model states kept for stateless requests that resend a conversation (0: off)")
    p.add_argument("--api-key", default=os.environ.get("SPL_API_KEY"),
                   help="require this bearer key on every route but /health (default: $SPL_API_KEY)")
    p.add_argument("--no-keep-sessions", action="store_true",
                   default=os.environ.get("SPL_KEEP_SESSIONS", "1") in ("0", "false", "no", "off"),
                   help="don't save live sessions at a graceful stop (default: they are saved as snapshots and "
                   "loaded back at the next start; or SPL_KEEP_SESSIONS=0)")
    p.add_argument("--allow-host", action="append", default=None, metavar="NAME",
                   help="also accept this host name in Host and Origin headers (repeatable, comma-separated; '*' for "
                        f"any); loopback names always pass (default: ${ALLOWED_HOSTS_ENV})")
    p.add_argument("--tensor-parallel", type=_positive, default=1, metavar="N",
                   help="shard the model over N ranks: one per GPU on CUDA, gloo processes on CPU (default: 1)")
    p.add_argument("--no-plugins", action="store_true", help="don't load third-party plugins (built-ins stay)")
    return p


def parse_settings(argv: list[str] | None = None) -> Settings:
    """Parse command-line flags into settings."""
    p = _parser()
    a = p.parse_args(argv)
    try:
        torch_threads = resolve_torch_threads(a.torch_threads)
    except ValueError:
        p.error("SPL_TORCH_THREADS must be 0 (all cores) or a positive integer")
    return Settings(
        model=a.model, host=a.host, port=a.port, chunk_size=a.chunk_size, prefill_budget=a.prefill_budget,
        dtype=a.dtype, device=a.device,
        max_seq_len=a.max_seq_len, max_tokens=a.max_tokens, threads=a.threads, api_key=a.api_key or None,
        load_plugins=not a.no_plugins, kv_budget=a.kv_budget, max_prompt_tokens=a.max_prompt_tokens,
        max_body_bytes=a.max_body_bytes, prefix_cache=max(0, a.prefix_cache), torch_threads=torch_threads,
        keep_sessions=not a.no_keep_sessions, tensor_parallel=a.tensor_parallel,
        allowed_hosts=parse_allowed_hosts(",".join(a.allow_host or ()) or os.environ.get(ALLOWED_HOSTS_ENV)),
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _port_taken(host: str, port: int) -> bool:
    """Whether binding fails with "address in use", checked before gunicorn's minute of retries."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


class _Gunicorn(BaseApplication):
    """Gunicorn configured in code; the app (and the model) is built inside the worker."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.holder = None
        super().__init__()

    def load_config(self):
        s = self.settings
        for key, value in {
            "bind": f"{s.host}:{s.port}",
            "workers": 1,
            # gthread whose main loop reads each request whole: idle and slow clients hold no thread.
            "worker_class": worker_class(s.max_body_bytes),
            "worker_connections": MAX_CONNECTIONS,
            "threads": s.threads,
            "preload_app": False,
            # Generations may stream for minutes; the gthread worker heartbeats from its main loop anyway.
            "timeout": 0,
            "graceful_timeout": 10,
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": "info",
            "control_socket_disable": True,
            "post_worker_init": self._post_worker_init,
            "worker_exit": self._worker_exit,
        }.items():
            self.cfg.set(key, value)

    def load(self):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if not _is_loopback(self.settings.host) and not self.settings.api_key:
            log.warning("listening on %s without --api-key: anyone who can reach it can read every session",
                        self.settings.host)
        app, self.holder = build_app(self.settings)
        return app

    def _shutdown(self) -> None:
        if self.holder is not None:
            self.holder.close()

    def _post_worker_init(self, worker) -> None:
        """On SIGTERM, also cancel running turns at once, so streams end cleanly inside the graceful timeout."""
        graceful = worker.handle_exit

        def handle_exit(sig, frame):
            graceful(sig, frame)
            # The engine joins its thread; never block the signal handler (the worker's main loop) on that.
            threading.Thread(target=self._shutdown, name="superlinear-shutdown", daemon=True).start()

        signal.signal(signal.SIGTERM, handle_exit)

    def _worker_exit(self, arbiter, worker) -> None:
        self._shutdown()


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground until it is stopped."""
    settings = parse_settings(argv)
    # The worker is forked from this process: ask NVML, not the CUDA runtime, whether a GPU exists here, so
    # that CUDA is first initialised in the worker (CUDA initialised before a fork fails in the child).
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    try:
        device, dtype = resolve_placement(settings.device, settings.dtype)
    except PlacementError as exc:
        print(f"spl-server: error: {exc}", file=sys.stderr)
        return 2
    if _port_taken(settings.host, settings.port):
        print(f"spl-server: error: {settings.host}:{settings.port} is already in use (another server?); "
              f"pick another --port", file=sys.stderr)
        return 1
    _Gunicorn(attrs.evolve(settings, device=device, dtype=dtype)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
