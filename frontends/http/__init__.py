"""The HTTP frontend: the OpenAI-compatible server."""

from .app import AppOptions, create_app
from .limits import Limits
from .services import ServiceHolder, Services

__all__ = ["AppOptions", "Limits", "ServiceHolder", "Services", "create_app"]
