"""The reference is differentiable; routing gradients reach Q1 only through the selected anchors' scores."""

import torch

from superlinear.kernels import SuperlinearParams, superlinear_attention
from superlinear.kernels.superlinear.search.reference import candidate_anchors, search_scores

# W = 3; anchors at q + 1 - j ** 2 for j >= 2, so queries 0..2 have none and 3..7 have exactly one.
TINY = SuperlinearParams(sw_index=1, num_spans=2, backward_factor=1.0, forward_factor=1.0)


def well_separated_inputs(make_inputs, length: int, dim: int, margin: float = 1e-2):
    """Draw float64 inputs whose anchor scores differ by more than ``margin`` within every query.

    gradcheck perturbs inputs by 1e-6, which must not reorder the top-k selection.
    """
    positions = torch.arange(length)
    offsets = torch.tensor([j * j for j in range(2, length) if j * j <= length])
    for _ in range(50):
        Q1, Q2, K, V = make_inputs(1, 2, 1, length, dim, dtype=torch.float64)
        anchors, valid = candidate_anchors(positions, torch.zeros(1, dtype=torch.int64), None, offsets, 2)
        scores = search_scores(Q1, K, anchors)
        ranked = scores.masked_fill(~valid[:, None], float("inf")).sort(dim=-1).values
        gaps = (ranked[..., 1:] - ranked[..., :-1]).nan_to_num(nan=1.0, posinf=1.0)
        if bool((gaps > margin).all()):
            return Q1, Q2, K, V
    raise AssertionError("no well-separated draw in 50 tries")


def test_gradients_match_finite_differences(make_inputs):
    inputs = [x.requires_grad_() for x in well_separated_inputs(make_inputs, 13, 3)]

    def attention(Q1, Q2, K, V):
        return superlinear_attention(Q1, Q2, K, V, torch.arange(13), params=TINY)

    assert torch.autograd.gradcheck(attention, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_q1_gets_gradient_only_where_the_gate_depends_on_anchor_scores(make_inputs):
    length = 40
    Q1, Q2, K, V = (x.requires_grad_() for x in make_inputs(1, 2, 1, length, 8))
    out = superlinear_attention(Q1, Q2, K, V, torch.arange(length), params=TINY)
    (out * torch.randn_like(out)).sum().backward()
    row_norms = Q1.grad.norm(dim=-1)[0]  # [HQ, L]
    # q < 3: no anchor; 3 <= q < 8: one anchor, so the gate is constant.
    assert torch.equal(row_norms[:, :8], torch.zeros_like(row_norms[:, :8]))
    assert bool((row_norms[:, 8:] > 0).all())
    # Query 0 attends to key 0 alone, so its Q2 has no influence; every other row and every value does.
    assert bool((Q2.grad[:, :, 1:].norm(dim=-1) > 0).all())
    assert bool((V.grad.norm(dim=-1) > 0).all())


def test_the_q1_gradient_is_a_combination_of_the_selected_anchor_keys(make_inputs):
    length = 60
    Q1, Q2, K, V = make_inputs(1, 1, 1, length, 8, dtype=torch.float64)
    Q1.requires_grad_()
    out = superlinear_attention(Q1, Q2, K, V, torch.arange(length), params=TINY)
    (out * torch.randn_like(out)).sum().backward()
    positions = torch.arange(length)
    offsets = torch.tensor([j * j for j in range(2, 9)])
    anchors, valid = candidate_anchors(positions, torch.zeros(1, dtype=torch.int64), None, offsets, 2)
    scores = search_scores(Q1.detach(), K, anchors).masked_fill(~valid[:, None], float("-inf"))
    top = scores.topk(2, dim=-1).indices[0, 0]  # [L, 2] columns of the two selected anchors
    for q in range(9, length):
        keys = K[0, 0, anchors[q, top[q]]]  # [2, D]
        grad = Q1.grad[0, 0, q]
        coefficients = torch.linalg.lstsq(keys.T, grad[:, None]).solution
        residual = keys.T @ coefficients - grad[:, None]
        assert residual.norm() <= 1e-10 * max(grad.norm().item(), 1.0), q
