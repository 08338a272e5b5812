"""`spl docs`: the document workspace REPL, ingesting files (/add), framing documents and questions, and
retrieving passages. Built on the REPL, commands and infra."""
