"""Topic 02, part 2: the rules of the ``Tensor`` engine.

Seeding, accumulation across uses and across backward calls, which tensors keep ``.grad``,
``zero_grad``, ``no_grad``, use as an optimiser parameter, deep graphs, and a small network
trained end to end against PyTorch.
"""

import numpy as np
import pytest

from dlfs.autograd.tensor import Tensor, is_grad_enabled, no_grad
from dlfs.testing import assert_close, check_gradients
from torch_oracle import torch_or_skip


@pytest.fixture(scope="module")
def torch():
    return torch_or_skip()


def test_scalar_output_is_seeded_with_one():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    assert_close(loss.data, 14.0, what="sum(x * x)")
    assert_close(x.grad, 2 * x.data, what="d sum(x * x)/dx with the default seed 1")


def test_non_scalar_output_takes_an_explicit_gradient():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = x * x                                         # shape (3,)
    with pytest.raises(RuntimeError, match="one-element|scalar"):
        y.backward()                                  # which seed? it is ambiguous
    y.backward(np.array([1.0, 10.0, 100.0]))
    assert_close(x.grad, 2 * x.data * np.array([1.0, 10.0, 100.0]),
                 what="x.grad after y.backward(grad): the vector-Jacobian product grad^T dy/dx")


def test_backward_needs_a_graph():
    c = Tensor(np.ones(3)) * 2                        # no input requires grad: no graph was recorded
    assert not c.requires_grad, "a result whose inputs do not require grad must not require grad"
    with pytest.raises(RuntimeError, match="require"):
        c.sum().backward()


def test_only_leaves_that_require_grad_keep_a_gradient():
    rng = np.random.default_rng(0)
    w = Tensor(rng.standard_normal((3, 2)), requires_grad=True)
    x = Tensor(rng.standard_normal((4, 3)))           # data, not a parameter
    h = x @ w
    loss = h.tanh().sum()
    loss.backward()
    assert w.grad is not None and w.grad.shape == (3, 2), "the parameter w should have a (3, 2) gradient"
    assert_close(w.grad, x.data.T @ (1 - np.tanh(x.data @ w.data) ** 2), what="d sum(tanh(x @ w))/dw")
    assert x.grad is None, "x does not require grad: its .grad must stay None"
    assert h.grad is None and loss.grad is None, "intermediate results keep no .grad (as in PyTorch)"
    assert h.requires_grad and not h.is_leaf, "h = x @ w is an interior node that requires grad"


def test_a_tensor_used_several_times_gets_every_contribution():
    x = Tensor(np.array([0.5, -1.5]), requires_grad=True)
    y = Tensor(np.array([2.0, 3.0]), requires_grad=True)
    loss = (x * x + x * y + x).sum() + (x + x).sum()   # d/dx = 2x + y + 1 + 2
    loss.backward()
    assert_close(x.grad, 2 * x.data + y.data + 3, what="gradient of a tensor used five times")
    assert_close(y.grad, x.data, what="d loss/dy")


def _small_graph(lib_tanh, x, w, b):
    h = lib_tanh(x @ w + b)
    return (h * h).mean() + (h.sum() * w).sum()


def _small_graph_values(seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)


def _numpy_small_graph(xv, wv, bv):
    h = np.tanh(xv @ wv + bv)
    return np.array((h * h).mean() + (h.sum() * wv).sum())


def test_backward_twice_gives_exactly_twice_one_call():
    xv, wv, bv = _small_graph_values()
    x, w, b = Tensor(xv), Tensor(wv, requires_grad=True), Tensor(bv, requires_grad=True)
    loss = _small_graph(lambda t: t.tanh(), x, w, b)
    loss.backward()
    once = (w.grad.copy(), b.grad.copy())
    check_gradients(lambda: _numpy_small_graph(xv, wv, bv), {"w": wv, "b": bv}, {"w": once[0], "b": once[1]})
    loss.backward()
    assert_close(w.grad, 2 * once[0], rtol=1e-12, what="w.grad after two backward() calls (twice one call)")
    assert_close(b.grad, 2 * once[1], rtol=1e-12, what="b.grad after two backward() calls (twice one call)")


def test_backward_twice_matches_torch(torch):
    xv, wv, bv = _small_graph_values()
    x, w, b = Tensor(xv), Tensor(wv, requires_grad=True), Tensor(bv, requires_grad=True)
    loss = _small_graph(lambda t: t.tanh(), x, w, b)
    loss.backward()
    loss.backward()
    tw = torch.tensor(wv, requires_grad=True)
    tb = torch.tensor(bv, requires_grad=True)
    t_loss = _small_graph(torch.tanh, torch.tensor(xv), tw, tb)
    t_loss.backward(retain_graph=True)
    t_loss.backward()
    assert_close(w.grad, tw.grad.numpy(), rtol=1e-10, what="w.grad after two backward() calls vs torch")
    assert_close(b.grad, tb.grad.numpy(), rtol=1e-10, what="b.grad after two backward() calls vs torch")


def _two_losses(x):
    h = (x * 2).sigmoid()
    return (h * h).sum(), h.exp().mean()


def test_two_losses_sharing_a_subgraph_add_their_gradients():
    xv = np.random.default_rng(2).standard_normal((2, 3))
    x = Tensor(xv, requires_grad=True)
    first, second = _two_losses(x)
    first.backward()
    second.backward()

    def numpy_total():
        h = 1 / (1 + np.exp(-2 * xv))
        return np.array((h * h).sum() + np.exp(h).mean())

    check_gradients(numpy_total, {"x": xv}, {"x": x.grad})


def test_two_losses_sharing_a_subgraph_match_torch(torch):
    xv = np.random.default_rng(2).standard_normal((2, 3))
    x = Tensor(xv, requires_grad=True)
    first, second = _two_losses(x)
    first.backward()
    second.backward()
    tx = torch.tensor(xv, requires_grad=True)
    t_first, t_second = _two_losses(tx)
    t_first.backward(retain_graph=True)
    t_second.backward()
    assert_close(x.grad, tx.grad.numpy(), rtol=1e-10, what="x.grad after backward() from two losses vs torch")


def test_zero_grad_clears_the_gradients_of_the_graph():
    rng = np.random.default_rng(3)
    w = Tensor(rng.standard_normal((3, 2)), requires_grad=True)
    b = Tensor(rng.standard_normal(2), requires_grad=True)
    loss = ((Tensor(rng.standard_normal((5, 3))) @ w + b).relu() ** 2).sum()
    loss.backward()
    once = (w.grad.copy(), b.grad.copy())
    loss.zero_grad()
    assert w.grad is None and b.grad is None, "loss.zero_grad() should set every leaf's .grad to None"
    loss.backward()
    assert_close(w.grad, once[0], what="w.grad after zero_grad() and one more backward()")
    w.zero_grad()
    assert w.grad is None, "w.zero_grad() should set w.grad to None"
    assert_close(b.grad, once[1], what="b.grad must be untouched by w.zero_grad()")


def test_no_grad_records_nothing_and_restores_the_mode():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled(), "inside no_grad() grad mode must be off"
        y = (x * 3).exp()
        with no_grad():
            pass
        assert not is_grad_enabled(), "leaving an inner no_grad() must not switch grad mode back on"
    assert is_grad_enabled(), "grad mode must be back on after the with block"
    assert_close(y.data, np.exp(3 * x.data), what="values computed inside no_grad()")
    assert not y.requires_grad and y.is_leaf, "a result computed inside no_grad() must record no graph"
    with pytest.raises(RuntimeError):
        y.sum().backward()
    z = (x * 3).sum()
    assert z.requires_grad, "after no_grad(), operations record the graph again"
    z.backward()
    assert_close(x.grad, [3.0, 3.0], what="gradient of an operation recorded after no_grad()")


def test_no_grad_restores_the_mode_after_an_exception_and_works_as_a_decorator():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError("boom")
    assert is_grad_enabled(), "an exception inside no_grad() must still restore grad mode"

    @no_grad()
    def evaluate(t):
        return (t * t).sum()

    out = evaluate(x)
    assert_close(out.data, 5.0, what="value returned by a no_grad-decorated function")
    assert not out.requires_grad, "a no_grad-decorated function must record no graph"
    assert is_grad_enabled()


def test_detach_cuts_the_graph():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    loss = (x * 2 + x.detach() * x.detach() * 5).sum()
    loss.backward()
    assert_close(x.grad, [2.0, 2.0], what="gradient with a detached term (it counts as a constant)")


def test_numpy_arrays_and_numbers_are_constants_on_either_side():
    x = Tensor(np.array([1.0, 2.0, 4.0]), requires_grad=True)
    c = np.array([3.0, 5.0, 7.0])
    out = c * x + x / c - c + 2 ** x
    assert isinstance(out, Tensor), f"ndarray * Tensor should give a Tensor, got {type(out).__name__}"
    out.sum().backward()
    assert_close(x.grad, c + 1 / c + np.log(2) * 2 ** x.data, what="gradient with NumPy-array operands")


def test_works_as_an_optimiser_parameter():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((50, 3))
    true_w = np.array([[1.5], [-2.0], [0.5]])
    y = X @ true_w + 0.3
    w = Tensor(np.zeros((3, 1)), requires_grad=True)
    b = Tensor(np.zeros(1), requires_grad=True)
    data_w = w.data
    Xt, yt = Tensor(X), Tensor(y)
    for step in range(300):
        loss = ((Xt @ w + b - yt) ** 2).mean()
        w.grad, b.grad = None, None                  # what an optimiser's zero_grad() does
        loss.backward()
        with no_grad():
            w.data -= 0.1 * w.grad                   # in place, as optimisers do
            b.data -= 0.1 * b.grad
    assert w.data is data_w, "the parameter array must be updated in place"
    assert_close(w.data, true_w, rtol=1e-3, atol=1e-4, what="weights after 300 gradient-descent steps")
    assert_close(b.data, [0.3], rtol=1e-3, atol=1e-4, what="bias after 300 gradient-descent steps")
    # optimisers may also zero .grad in place; the next backward must add onto those zeros
    w.grad[...] = 0.0
    loss = ((Xt @ w + b - yt) ** 2).mean() * 0 + (w * w).sum()
    loss.backward()
    assert_close(w.grad, 2 * w.data, what="gradient accumulated onto a .grad zeroed in place")


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = Tensor(np.array([0.5, -0.5]), requires_grad=True)
    out = x
    for _ in range(3000):
        out = out + x * 0.001
    out.sum().backward()
    assert_close(x.grad, [1 + 3000 * 0.001] * 2, rtol=1e-9,
                 what="gradient through a 3000-step chain (a recursive topological sort overflows the stack)")


def _mlp_loss(X, y, W1, b1, W2, b2, log_softmax, relu):
    logits = relu(X @ W1 + b1) @ W2 + b2            # (N, C)
    logp = log_softmax(logits)
    return -logp[np.arange(len(y)), y].mean()        # cross-entropy


def _mlp_case():
    rng = np.random.default_rng(6)               # no pre-activation near relu's kink, no tiny gradient
    N, D, H, C = 6, 4, 5, 3
    X = rng.standard_normal((N, D))
    y = rng.integers(0, C, N)
    params = {"W1": rng.standard_normal((D, H)), "b1": rng.standard_normal(H) * 0.1,
              "W2": rng.standard_normal((H, C)), "b2": rng.standard_normal(C) * 0.1}
    return X, y, params


def _our_mlp_gradients(X, y, params):
    ours = {k: Tensor(v, requires_grad=True) for k, v in params.items()}
    loss = _mlp_loss(Tensor(X), y, **ours, log_softmax=lambda t: t.log_softmax(axis=-1), relu=lambda t: t.relu())
    loss.backward()
    return loss, ours


def test_mlp_cross_entropy_matches_finite_differences():
    X, y, params = _mlp_case()
    loss, ours = _our_mlp_gradients(X, y, params)

    def numpy_loss():
        h = np.maximum(X @ params["W1"] + params["b1"], 0)
        z = h @ params["W2"] + params["b2"]
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return np.array(-logp[np.arange(len(y)), y].mean())

    assert_close(loss.data, numpy_loss(), rtol=1e-12, what="cross-entropy of the MLP vs NumPy")
    check_gradients(numpy_loss, params, {k: ours[k].grad for k in params})


def test_mlp_cross_entropy_matches_torch(torch):
    X, y, params = _mlp_case()
    loss, ours = _our_mlp_gradients(X, y, params)
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    t_loss = _mlp_loss(torch.tensor(X), torch.tensor(y), **theirs,
                       log_softmax=lambda t: torch.log_softmax(t, dim=-1), relu=torch.relu)
    t_loss.backward()
    assert_close(loss.data, t_loss.item(), rtol=1e-10, what="cross-entropy of the MLP vs torch")
    for k in params:
        assert_close(ours[k].grad, theirs[k].grad.numpy(), rtol=1e-9, atol=1e-12, what=f"d loss/d {k} vs torch")
