"""`spl-server` flags: the seed's set, parsed into Settings (no server started)."""

import pytest

from superlinear.frontends.http.server import parse_settings, parse_size


def test_the_seed_flags_reach_the_settings():
    s = parse_settings(["--model", "/models/x", "--host", "0.0.0.0", "--port", "9000", "--chunk-size", "4096",
                        "--dtype", "bfloat16", "--device", "cuda:1", "--kv-budget", "8GiB", "--api-key", "k",
                        "--max-prompt-tokens", "1000", "--threads", "3", "--max-seq-len", "65536"])
    assert (s.model, s.host, s.port, s.chunk_size, s.dtype, s.device) == ("/models/x", "0.0.0.0", 9000, 4096,
                                                                          "bfloat16", "cuda:1")
    assert (s.kv_budget, s.api_key, s.max_prompt_tokens, s.threads) == (8 * 2**30, "k", 1000, 3)
    assert s.max_seq_len == 65536 and s.max_prompt_tokens == 1000


def test_defaults_are_safe():
    s = parse_settings([])
    assert s.host == "127.0.0.1" and s.port == 8787 and s.api_key is None and s.load_plugins
    assert s.kv_budget is None and s.max_prompt_tokens is None


def test_the_api_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPL_API_KEY", "from-env")
    assert parse_settings([]).api_key == "from-env"
    assert parse_settings(["--api-key", "flag"]).api_key == "flag"


@pytest.mark.parametrize("text,value", [("8GiB", 8 * 2**30), ("8G", 8 * 2**30), ("8GB", 8 * 10**9),
                                        ("512MiB", 512 * 2**20), ("1.5k", 1536), ("1000", 1000),
                                        # a lowercase b is bytes, not bits; case never changes the base
                                        ("8gb", 8 * 10**9), ("8Gb", 8 * 10**9), (" 8 gib ", 8 * 2**30),
                                        ("2TB", 2 * 10**12), ("8kB", 8000), ("8K", 8192), ("0", 0)])
def test_sizes_parse_binary_and_decimal(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("argv", [["--kv-budget", "lots"], ["--kv-budget", "-1GiB"], ["--kv-budget", "8 Mi B"],
                                  ["--kv-budget", "nan"], ["--chunk-size", "0"], ["--threads", "-1"]])
def test_bad_flags_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_settings(argv)
    assert exc.value.code == 2
