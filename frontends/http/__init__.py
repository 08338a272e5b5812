"""The HTTP frontend: the OpenAI-compatible server."""

from .app import ServiceHolder, create_app
from .resources import Services

__all__ = ["ServiceHolder", "Services", "create_app"]
