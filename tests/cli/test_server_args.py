"""`spl server start` hands its flags to spl-server unchanged."""

from superlinear.frontends.cli.main import build_parser
from superlinear.frontends.cli.server_cmd import _server_args
from superlinear.frontends.http.server import parse_settings


def test_start_flags_reach_the_server_settings():
    args = build_parser().parse_args(["server", "start", "--port", "9000", "--kv-budget", "2GiB",
                                      "--max-seq-len", "4096", "--chunk-size", "512", "--model", "/m"])
    settings = parse_settings(_server_args(args))
    assert (settings.port, settings.kv_budget, settings.max_seq_len, settings.chunk_size, settings.model) == \
        (9000, 2 * 2**30, 4096, 512, "/m")
