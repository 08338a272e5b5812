"""`spl-server`: the OpenAI-compatible server under gunicorn (one worker, gthread, no preload)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from gunicorn.app.base import BaseApplication

from .app import ServiceHolder, create_app
from .compose import Settings, build_services

__all__ = ["main", "parse_settings"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spl-server", description="Serve a model over the OpenAI chat API.")
    p.add_argument("--model", default=None, help="model directory (default: the embedded default model)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=8787)
    p.add_argument("--chunk-size", type=int, default=8192, help="prefill chunk size in tokens")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--max-seq-len", type=int, default=None, help="default session length limit")
    p.add_argument("--max-tokens", type=int, default=512, help="default completion length")
    p.add_argument("--threads", type=int, default=8, help="request threads of the worker")
    p.add_argument("--api-key", default=os.environ.get("SPL_API_KEY"), help="require this bearer key")
    p.add_argument("--no-plugins", action="store_true", help="don't load third-party plugins")
    return p


def parse_settings(argv: list[str] | None = None) -> Settings:
    """Parse command-line flags into settings."""
    a = _parser().parse_args(argv)
    if a.chunk_size < 1:
        _parser().error("--chunk-size must be positive")
    return Settings(
        model=a.model, host=a.host, port=a.port, chunk_size=a.chunk_size, dtype=a.dtype, device=a.device,
        max_seq_len=a.max_seq_len, max_tokens=a.max_tokens, threads=a.threads, api_key=a.api_key,
        load_plugins=not a.no_plugins,
    )


class _Gunicorn(BaseApplication):
    """Gunicorn configured in code; the app (and the model) is built inside the worker."""

    def __init__(self, settings: Settings):
        self.settings = settings
        super().__init__()

    def load_config(self):
        s = self.settings
        for key, value in {
            "bind": f"{s.host}:{s.port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": s.threads,
            "preload_app": False,
            "timeout": 0,
            "graceful_timeout": 10,
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": "info",
            "control_socket_disable": True,
        }.items():
            self.cfg.set(key, value)

    def load(self):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return create_app(ServiceHolder(lambda: build_services(self.settings)), api_key=self.settings.api_key)


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground until it is stopped."""
    settings = parse_settings(argv)
    _Gunicorn(settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
