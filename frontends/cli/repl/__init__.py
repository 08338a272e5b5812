"""The REPL shared by `spl chat` and `spl docs` (read a line, run a slash command or ask a turn), the streamed
turn view, the shared slash commands, and `spl chat` itself. Built on commands and infra."""
