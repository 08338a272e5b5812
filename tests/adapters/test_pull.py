"""`spl pull`: the built-in CLI plugin that fetches a model into the cache."""

from __future__ import annotations

import argparse
import importlib
import io
import json

import huggingface_hub
import pytest

from superlinear.plugins import build_plugin_manager, collect
from superlinear.plugins.builtin.pull import add_pull_parser, cmd_pull


def pull_args(*argv: str) -> argparse.Namespace:
    """Parse `spl <argv>` with the add_parser that the plugin registers, as the CLI would."""
    add_parser = collect(build_plugin_manager(load_entrypoints=False), "superlinear_cli_commands")["pull"]
    assert add_parser is add_pull_parser
    parser = argparse.ArgumentParser(prog="spl")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def run(args: argparse.Namespace) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return args.func(args, out=out, err=err), out.getvalue(), err.getvalue()


def test_pull_parses_the_repo_revision_and_cache_dir():
    args = pull_args("pull", "org/model", "--revision", "v1", "--cache-dir", "/tmp/c")
    assert (args.repo, args.revision, args.cache_dir, args.func) == ("org/model", "v1", "/tmp/c", cmd_pull)
    defaults = pull_args("pull", "org/model")
    assert defaults.revision is None and defaults.cache_dir is None


def test_pull_downloads_and_prints_where_the_files_are(tmp_path, monkeypatch):
    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    (snapshot / "config.json").write_text(json.dumps({"model_type": "nemotron_h"}), encoding="utf-8")
    (snapshot / "model.safetensors").write_bytes(b"w")
    calls = []

    def fake_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs["revision"], kwargs["cache_dir"]))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    status, out, err = run(pull_args("pull", "org/model", "--revision", "v1", "--cache-dir", str(tmp_path)))
    assert (status, out, err) == (0, f"{snapshot}\n", "")
    assert calls == [("org/model", "v1", str(tmp_path))]


def test_pull_offline_of_an_uncached_repo_fails_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    status, out, err = run(pull_args("pull", "org/model", "--cache-dir", str(tmp_path)))
    assert status == 1 and out == ""
    assert err.startswith("error: model 'org/model' is not (fully) in") and "HF_HUB_OFFLINE=1" in err


def test_spl_dispatches_pull_to_the_plugin(tmp_path, monkeypatch, capsys):
    cli = importlib.import_module("superlinear.frontends.cli.main")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    try:
        status = cli.main(["pull", "org/model", "--cache-dir", str(tmp_path)])
    except SystemExit as exc:
        if "invalid choice: 'pull'" in capsys.readouterr().err:
            pytest.skip("the spl CLI does not dispatch plugin-registered commands yet")
        raise AssertionError(f"spl pull exited with {exc.code}") from exc
    assert status == 1
    assert "spl pull org/model" in capsys.readouterr().err
