"""The published package's runtime checks (``superlinear.runtime``): Triton, CUDA and device limits.

Same names and signatures. Here they only report: every kernel entry point runs on any device (the
PyTorch reference where Triton or CUDA is missing), so nothing requires them.
"""

import functools
import importlib.util

import torch

# What a device without CUDA is assumed to offer per block (the portable CUDA minimum).
FALLBACK_SHARED_MEMORY = 48 * 1024


@functools.lru_cache(maxsize=1)
def is_triton_available() -> bool:
    """Whether Triton can be imported (the CUDA kernels need it)."""
    return importlib.util.find_spec("triton") is not None


@functools.lru_cache(maxsize=1)
def is_cuda_available() -> bool:
    """Whether torch sees a CUDA device."""
    return torch.cuda.is_available()


@functools.lru_cache(maxsize=16)
def get_cuda_capability(device_index: int = 0) -> tuple[int, int] | None:
    """The (major, minor) compute capability of a CUDA device, None without one."""
    if not is_cuda_available() or device_index >= torch.cuda.device_count():
        return None
    return tuple(torch.cuda.get_device_capability(device_index))


@functools.lru_cache(maxsize=16)
def get_shared_memory_limit(device_index: int = 0) -> int:
    """Shared memory one block may use on a CUDA device (bytes); 48 KiB without one."""
    if not is_cuda_available() or device_index >= torch.cuda.device_count():
        return FALLBACK_SHARED_MEMORY
    props = torch.cuda.get_device_properties(device_index)
    per_block = getattr(props, "shared_memory_per_block_optin", props.shared_memory_per_block)
    return min(per_block, props.shared_memory_per_multiprocessor)


def check_triton_required() -> None:
    """Raise ImportError naming the fix when Triton is missing."""
    if not is_triton_available():
        raise ImportError("Triton is not installed: pip install 'superlinear[cuda]' (or triton) for the CUDA kernels")


def check_cuda_required() -> None:
    """Raise RuntimeError when torch sees no CUDA device."""
    if not is_cuda_available():
        raise RuntimeError("no CUDA device: install a CUDA build of torch on a machine with an NVIDIA GPU")
