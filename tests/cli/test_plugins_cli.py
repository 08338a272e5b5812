"""Third-party plugins add `spl` commands and REPL slash commands through the same hooks as the built-ins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from superlinear.frontends.cli.main import build_parser, main
from superlinear.frontends.cli.registry import make_plugin_manager
from superlinear.frontends.cli.repl.base import for_repls, repl_commands
from superlinear.plugins import collect, hookimpl


def add_hello(sub):
    p = sub.add_parser("hello", help="say hello")
    p.add_argument("who", nargs="?", default="world")
    p.set_defaults(func=lambda a: print(f"hello {a.who}") or 0)


def shout(repl, arg):
    repl.write(arg.upper() + "\n")


@for_repls("docs")
def docs_only(repl, arg):
    repl.write("docs only\n")


class HelloPlugin:
    @hookimpl
    def superlinear_cli_commands(self, register):
        register("hello", add_hello)

    @hookimpl
    def superlinear_repl_commands(self, register):
        register("shout", shout, "shout the argument")
        register("only-docs", docs_only, "a docs-only command")


def test_a_plugin_object_adds_a_cli_command(capsys):
    assert main(["hello", "plugins"], extra_plugins=[HelloPlugin()]) == 0
    assert capsys.readouterr().out == "hello plugins\n"


def test_built_in_commands_come_through_the_hook():
    commands = collect(make_plugin_manager(load_entrypoints=False), "superlinear_cli_commands")
    assert {"server", "chat", "docs", "ls", "rm", "session", "snapshot"} <= set(commands)
    help_text = build_parser(make_plugin_manager(load_entrypoints=False)).format_help()
    assert help_text.index("\n    server ") < help_text.index("\n    chat ") < help_text.index("\n    snapshot ")


def test_a_plugin_adds_slash_commands_to_the_repls_of_its_kinds():
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins=[HelloPlugin()])
    registered = collect(pm, "superlinear_repl_commands")
    chat, docs = repl_commands(registered, "chat"), repl_commands(registered, "docs")
    assert chat["/shout"].handler is shout and docs["/shout"].handler is shout
    assert "/only-docs" in docs and "/only-docs" not in chat
    assert {"/help", "/ls", "/rm", "/save", "/load", "/head", "/tail", "/history", "/stats", "/exit"} <= set(chat)
    assert "/new" in chat and "/new" not in docs
    assert {"/add", "/sources", "/info", "/rag", "/reset"} <= set(docs) and "/add" not in chat


def test_a_plugin_that_takes_a_built_in_name_is_a_clear_error(capsys):
    class Clash:
        @hookimpl
        def superlinear_cli_commands(self, register):
            register("chat", add_hello)

    assert main(["ls"], extra_plugins=[Clash()]) == 1
    assert "'chat' is registered twice" in capsys.readouterr().err


def _dist(site, name: str, module_code: str) -> None:
    """Write a minimal installed distribution with a `superlinear` entry point onto `site`."""
    (site / f"{name}.py").write_text(textwrap.dedent(module_code))
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[superlinear]\n{name} = {name}\n")


def _spl(site, *args, **env):
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), **env}
    return subprocess.run([sys.executable, "-m", "superlinear.frontends.cli.main", *args], env=environ,
                          capture_output=True, text=True, timeout=60)


PLUGIN = """
    from superlinear.plugins import hookimpl

    def add(sub):
        p = sub.add_parser("greet", help="greet from an installed plugin")
        p.set_defaults(func=lambda a: print("greetings from an entry point") or 0)

    @hookimpl
    def superlinear_cli_commands(register):
        register("greet", add)
"""


@pytest.fixture
def site(tmp_path):
    path = tmp_path / "site"
    path.mkdir()
    return path


def test_an_installed_plugin_adds_a_command_to_spl(site):
    _dist(site, "splgreet", PLUGIN)
    result = _spl(site, "greet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "greetings from an entry point\n"
    assert "greet" in _spl(site, "--help").stdout
    skipped = _spl(site, "greet", SPL_NO_PLUGINS="1")
    assert skipped.returncode == 2 and "invalid choice: 'greet'" in skipped.stderr


def test_a_broken_installed_plugin_is_reported_and_spl_still_works(site):
    _dist(site, "splbroken", "raise ImportError('this plugin is broken')\n")
    result = _spl(site, "server", "connect", "http://127.0.0.1:9")
    assert result.returncode == 0, result.stderr
    assert "a plugin failed to load" in result.stderr and "this plugin is broken" in result.stderr
