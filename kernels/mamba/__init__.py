"""Mamba-2 kernels: the one-token decode step (conv window, state update, gated norm) in Triton."""

from .decode import conv_step, gated_rms_norm_rows, ssm_step_fused, supported

__all__ = ["conv_step", "gated_rms_norm_rows", "ssm_step_fused", "supported"]
