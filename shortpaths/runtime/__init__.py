"""``superlinear.runtime``: the published package's runtime checks (Triton, CUDA, device limits)."""

from superlinear.kernels.common.runtime import (
    check_cuda_required,
    check_triton_required,
    get_cuda_capability,
    get_shared_memory_limit,
    is_cuda_available,
    is_triton_available,
)

__all__ = [
    "check_cuda_required",
    "check_triton_required",
    "get_cuda_capability",
    "get_shared_memory_limit",
    "is_cuda_available",
    "is_triton_available",
]
