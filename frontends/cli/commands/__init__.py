"""The one-shot commands: `spl server`, `spl ls`/`rm`, `spl session`, `spl snapshot`. Built on infra only."""
