"""Choose an op's implementation from the device its tensors live on."""

import importlib
from collections.abc import Callable, Mapping

import torch


def choose_implementation(
    accelerated: Mapping[str, Callable], device: torch.device, reference: Callable
) -> Callable:
    """Return the implementation registered for ``device.type`` in ``accelerated``, else ``reference``.

    Each op keeps its own table (device type -> callable); an accelerated kernel plugs in by adding an
    entry, and every device without one runs the PyTorch reference.
    """
    return accelerated.get(device.type, reference)


def lazy_implementation(module: str, name: str, package: str, fallback: Callable) -> Callable:
    """Return a callable that runs ``module.name`` (relative to ``package``), imported on first call.

    Importing an API module then never imports Triton; where the import fails (no Triton installed) the
    call runs ``fallback`` instead, with the same arguments.
    """

    def run(*args, **kwargs):
        try:
            implementation = getattr(importlib.import_module(module, package), name)
        except ImportError:
            implementation = fallback
        return implementation(*args, **kwargs)

    return run
