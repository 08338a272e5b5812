"""Default device and dtype: GPU + bfloat16 where CUDA is present, CPU + float32 elsewhere; clear errors."""

from __future__ import annotations

import pytest
import torch

from superlinear.adapters.placement import PlacementError, resolve_placement


def test_without_cuda_the_defaults_are_cpu_float32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_placement(None, None) == ("cpu", "float32")
    assert resolve_placement(None, "bfloat16") == ("cpu", "bfloat16")


def test_with_cuda_the_defaults_are_the_gpu_in_bfloat16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_placement(None, None) == ("cuda", "bfloat16")
    assert resolve_placement("cuda:1", None) == ("cuda:1", "bfloat16")
    assert resolve_placement("cpu", None) == ("cpu", "float32")
    assert resolve_placement(None, "float32") == ("cuda", "float32")
    with pytest.raises(PlacementError, match="has 2 CUDA device"):
        resolve_placement("cuda:2", None)


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_asking_for_cuda_without_it_is_a_clear_error(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PlacementError, match="no CUDA device"):
        resolve_placement(device, None)


def test_an_unknown_device_is_a_clear_error():
    with pytest.raises(PlacementError, match="unknown device 'tpu7'"):
        resolve_placement("tpu7", None)


def test_spl_server_asked_for_cuda_without_it_stops_with_a_clear_error(monkeypatch, capsys):
    from superlinear.frontends.http import server

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert server.main(["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "spl-server: error: device 'cuda' was asked for" in err and "no CUDA device" in err
