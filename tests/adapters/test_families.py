"""Model families: the built-in hybrid family plugin and dispatch by config.json's model_type."""

from __future__ import annotations

import json
import shutil

import pytest

from superlinear.adapters import HFTokenizer, TorchModel
from superlinear.adapters.families import UnknownModelFamily, load_model_from_dir, read_model_type
from superlinear.adapters.hybrid.config import MODEL_TYPES
from superlinear.adapters.torch_model import DEFAULT_MODEL_DIR
from superlinear.core.ports import GenerationDefaults, LoadedModel, ModelPort, TokenizerPort
from superlinear.core.testing import FakeModel, FakeTokenizer
from superlinear.plugins import build_plugin_manager, collect
from superlinear.plugins.builtin.hybrid_family import HYBRID_MODEL_TYPES, load_hybrid


@pytest.fixture(scope="module")
def families():
    return collect(build_plugin_manager(load_entrypoints=False), "superlinear_model_families")


def test_the_hybrid_family_registers_every_model_type_the_adapter_reads(families):
    assert HYBRID_MODEL_TYPES == MODEL_TYPES
    assert {name: families[name] for name in MODEL_TYPES} == dict.fromkeys(MODEL_TYPES, load_hybrid)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


@pytest.mark.parametrize("fixture", ["superlinear_dir", "dense_dir"])
def test_a_checkpoint_loads_through_the_family_of_its_model_type(fixture, families, request, tmp_path):
    directory = tmp_path / "checkpoint"
    shutil.copytree(request.getfixturevalue(fixture), directory)
    for name in TOKENIZER_FILES:
        shutil.copy(DEFAULT_MODEL_DIR / name, directory / name)
    (directory / "generation_config.json").write_text(json.dumps({"do_sample": False}), encoding="utf-8")
    loaded = load_model_from_dir(directory, families, dtype="float32", chunk_size=16, name="tiny")
    assert isinstance(loaded, LoadedModel)
    assert isinstance(loaded.model, TorchModel) and isinstance(loaded.tokenizer, HFTokenizer)
    assert isinstance(loaded.model, ModelPort) and isinstance(loaded.tokenizer, TokenizerPort)
    assert loaded.model.info.name == "tiny" and loaded.model.chunk_size == 16
    assert loaded.model.info.fingerprint["model_type"] == read_model_type(directory)
    assert loaded.defaults == GenerationDefaults(temperature=0.0)


def test_options_reach_the_loader_as_keywords(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "toy"}), encoding="utf-8")
    seen = []
    made = LoadedModel(FakeModel(), FakeTokenizer())
    loaded = load_model_from_dir(
        tmp_path, {"toy": lambda path, **kw: seen.append((path, kw)) or made}, device="x"
    )
    assert loaded is made and seen == [(tmp_path, {"device": "x"})]
    assert loaded.defaults == GenerationDefaults(temperature=1.0)


def test_a_loader_that_returns_no_loaded_model_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "toy"}), encoding="utf-8")
    with pytest.raises(TypeError, match="model_type 'toy' returned FakeModel, not a LoadedModel"):
        load_model_from_dir(tmp_path, {"toy": lambda path: FakeModel()})


def test_an_unknown_model_type_names_itself_and_the_known_ones(tmp_path, families):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
    with pytest.raises(
        UnknownModelFamily, match=r"'llama' .* not supported \(known: .*nemotron_h.*superlinear-exp"
    ):
        load_model_from_dir(tmp_path, families)


@pytest.mark.parametrize(
    ("text", "message"),
    [(None, "does not exist"), ("{oops", "not valid JSON"), ('{"vocab_size": 3}', "has no 'model_type'")],
)
def test_a_config_without_a_readable_model_type_is_a_clear_error(tmp_path, families, text, message):
    if text is not None:
        (tmp_path / "config.json").write_text(text, encoding="utf-8")
    with pytest.raises(UnknownModelFamily, match=message):
        load_model_from_dir(tmp_path, families)


def test_building_a_plugin_manager_does_not_import_the_model_code():
    import subprocess
    import sys

    code = (
        "import sys; from superlinear.plugins import build_plugin_manager, collect; "
        "pm = build_plugin_manager(load_entrypoints=False); collect(pm, 'superlinear_model_families'); "
        "collect(pm, 'superlinear_cli_commands'); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
