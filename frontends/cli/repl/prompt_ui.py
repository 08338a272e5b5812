"""The prompt_toolkit side of the REPLs: input history file, slash-command completion, multi-line input.

Pasting several lines arrives as one bracketed paste and stays one message; Esc then Enter (or Alt-Enter)
inserts a newline by hand; Enter sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History
from prompt_toolkit.key_binding import KeyBindings

from ..infra.config import history_dir

__all__ = ["SlashCompleter", "make_prompt_session", "history_file"]

# Commands whose arguments are paths, completed from the file system.
_PATH_COMMANDS = ("/add",)


class SlashCompleter(Completer):
    """Complete slash-command names (with their help as meta) and the paths /add takes."""

    def __init__(self, commands: Mapping[str, Any]):
        self.commands = commands
        self._paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/"):
            return
        name, space, rest = text.partition(" ")
        if not space:
            for command, spec in self.commands.items():
                if command.startswith(name):
                    yield Completion(command, start_position=-len(name), display_meta=spec.help)
            return
        if name in _PATH_COMMANDS:
            word = rest.split(" ")[-1]
            yield from self._paths.get_completions(Document(word, len(word)), event)


def _bindings() -> KeyBindings:
    kb = KeyBindings()

    @kb.add("escape", "enter")
    def _newline(event) -> None:
        event.current_buffer.insert_text("\n")

    return kb


def history_file(name: str) -> History:
    """Return the input history stored as $XDG_CONFIG_HOME/spl/history/<name>."""
    folder = history_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return FileHistory(str(folder / name))


def make_prompt_session(commands: Mapping[str, Any], history: History, **kwargs: Any) -> PromptSession:
    """Build the REPL's prompt session; `kwargs` pass through (tests give `input` and `output`)."""
    return PromptSession(
        history=history,
        completer=SlashCompleter(commands),
        complete_while_typing=True,
        key_bindings=_bindings(),
        enable_history_search=False,
        **kwargs,
    )
