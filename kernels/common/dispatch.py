"""Choose an op's implementation from the device its tensors live on."""

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
