"""`spl server start` hands its flags to spl-server unchanged."""

from superlinear.frontends.cli.commands.server import _server_args
from superlinear.frontends.cli.main import build_parser as _build_parser
from superlinear.frontends.cli.registry import make_plugin_manager
from superlinear.frontends.http.server import parse_settings


def build_parser():
    return _build_parser(make_plugin_manager(load_entrypoints=False))


def test_start_flags_reach_the_server_settings():
    args = build_parser().parse_args(["server", "start", "--port", "9000", "--kv-budget", "2GiB",
                                      "--max-seq-len", "4096", "--chunk-size", "512", "--model", "/m"])
    settings = parse_settings(_server_args(args))
    assert (settings.port, settings.kv_budget, settings.max_seq_len, settings.chunk_size, settings.model) == \
        (9000, 2 * 2**30, 4096, 512, "/m")


def test_torch_threads_default_to_one_and_follow_the_flag_or_the_environment(monkeypatch):
    monkeypatch.delenv("SPL_TORCH_THREADS", raising=False)
    assert parse_settings([]).torch_threads == 1
    monkeypatch.setenv("SPL_TORCH_THREADS", "2")
    assert parse_settings([]).torch_threads == 2
    args = build_parser().parse_args(["server", "start", "--torch-threads", "3"])
    assert parse_settings(_server_args(args)).torch_threads == 3


def test_keeping_sessions_is_on_unless_the_flag_or_the_environment_says_no(monkeypatch):
    monkeypatch.delenv("SPL_KEEP_SESSIONS", raising=False)
    assert parse_settings([]).keep_sessions is True
    args = build_parser().parse_args(["server", "start", "--no-keep-sessions"])
    assert parse_settings(_server_args(args)).keep_sessions is False
    monkeypatch.setenv("SPL_KEEP_SESSIONS", "0")
    assert parse_settings([]).keep_sessions is False


def test_zero_torch_threads_means_every_core_and_bad_counts_are_usage_errors(monkeypatch, capsys):
    import os

    import pytest

    assert parse_settings(["--torch-threads", "0"]).torch_threads == os.cpu_count()
    for argv, env in ((["--torch-threads", "-1"], None), (["--torch-threads", "x"], None), ([], "many")):
        if env:
            monkeypatch.setenv("SPL_TORCH_THREADS", env)
        with pytest.raises(SystemExit) as exc:
            parse_settings(argv)
        assert exc.value.code == 2
        assert "torch" in capsys.readouterr().err.lower()


def test_every_flag_of_server_start_says_its_default():
    parser = build_parser()
    server = next(a for a in parser._subparsers._group_actions[0].choices["server"]._actions
                  if a.dest == "server_cmd")
    start = server.choices["start"]
    flags = [a for a in start._actions if a.option_strings and a.dest != "help"]
    assert len(flags) >= 12
    missing = [a.option_strings[0] for a in flags if "default" not in (a.help or "")]
    assert missing == []


def test_gpus_becomes_the_servers_tensor_parallel_count():
    assert parse_settings([]).tensor_parallel == 1
    for flag in ("--gpus", "--tensor-parallel"):
        args = build_parser().parse_args(["server", "start", flag, "2"])
        assert parse_settings(_server_args(args)).tensor_parallel == 2
