"""Building plugin managers and collecting what plugins register."""

from __future__ import annotations

import sys
import textwrap
import types

import pluggy
import pytest

from superlinear.core.ports import CONTINUE
from superlinear.core.values import SamplingParams
from superlinear.plugins import DuplicateRegistration, ReplCommand, build_plugin_manager, collect, hookimpl


class ShoutRule:
    def observe(self, token_id, text):
        return CONTINUE


def shout_rule(params: SamplingParams) -> ShoutRule:
    return ShoutRule()


class ShoutPlugin:
    @hookimpl
    def superlinear_stop_rules(self, register):
        register("test.shout", shout_rule)

    @hookimpl
    def superlinear_repl_commands(self, register):
        register("shout", print, "Shout the last answer.")


def test_built_in_stop_rules_are_registered():
    pm = build_plugin_manager(load_entrypoints=False)
    assert pm.get_plugin("superlinear.stop_rules") is not None
    rules = collect(pm, "superlinear_stop_rules")
    assert {"stop_strings", "repetition"} <= set(rules)
    assert rules["stop_strings"](SamplingParams(stop=("x",))) is not None


def test_a_plugin_in_extra_plugins_registers_a_stop_rule_that_is_collected():
    pm = build_plugin_manager(load_entrypoints=False, extra_plugins=[ShoutPlugin()])
    rules = collect(pm, "superlinear_stop_rules")
    assert rules["test.shout"] is shout_rule
    assert isinstance(rules["test.shout"](SamplingParams()), ShoutRule)
    assert collect(pm, "superlinear_repl_commands")["shout"] == ReplCommand(print, "Shout the last answer.")


def test_two_managers_are_independent():
    first = build_plugin_manager(load_entrypoints=False, extra_plugins=[ShoutPlugin()])
    second = build_plugin_manager(load_entrypoints=False)
    assert first is not second
    assert "test.shout" in collect(first, "superlinear_stop_rules")
    assert "test.shout" not in collect(second, "superlinear_stop_rules")
    first.unregister(name="superlinear.stop_rules")
    assert "stop_strings" not in collect(first, "superlinear_stop_rules")
    assert "stop_strings" in collect(second, "superlinear_stop_rules")


def test_a_name_registered_twice_is_an_error_naming_both():
    class Clash:
        @hookimpl
        def superlinear_stop_rules(self, register):
            register("stop_strings", shout_rule)

    pm = build_plugin_manager(load_entrypoints=False, extra_plugins=[Clash()])
    with pytest.raises(DuplicateRegistration, match="'stop_strings' is registered twice.*shout_rule"):
        collect(pm, "superlinear_stop_rules")


def test_a_misspelled_hook_is_refused():
    class Typo:
        @hookimpl
        def superlinear_stop_rule(self, register):
            register("x", shout_rule)

    with pytest.raises(pluggy.PluginValidationError):
        build_plugin_manager(load_entrypoints=False, extra_plugins=[Typo()])


def test_hooks_nobody_implements_collect_nothing():
    pm = build_plugin_manager(load_entrypoints=False)
    assert collect(pm, "superlinear_http_routes") == {}


def install_fake_distribution(tmp_path, monkeypatch) -> None:
    """Put a dist-info with a `superlinear` entry point and its plugin module on sys.path."""
    dist_info = tmp_path / "fake_spl_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-spl-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[superlinear]\nfake = fake_spl_plugin_module\n")
    (tmp_path / "fake_spl_plugin_module.py").write_text(
        textwrap.dedent(
            """
            from superlinear.plugins import hookimpl

            @hookimpl
            def superlinear_retrievers(register):
                register("fake.grep", dict)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fake_spl_plugin_module", raising=False)


def test_entry_points_in_group_superlinear_are_loaded_unless_told_not_to(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, monkeypatch)
    loaded = build_plugin_manager()
    assert collect(loaded, "superlinear_retrievers")["fake.grep"] is dict
    assert isinstance(loaded.get_plugin("fake"), types.ModuleType)
    skipped = build_plugin_manager(load_entrypoints=False)
    assert "fake.grep" not in collect(skipped, "superlinear_retrievers")
