"""Topic 06 — Sequential, Flatten, parameter discovery, and whole-MLP gradients checked three ways."""

import numpy as np
import pytest

from dlfs.autograd.tensor import Tensor
from dlfs.nn import layers as L
from dlfs.nn.activations import ReLU, Sigmoid, Tanh
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip


def randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


class Affine(L.Layer):
    """y = a·x + c, logging each call into a shared list."""

    def __init__(self, name, a, c, log):
        self.name, self.a, self.c, self.log = name, a, c, log

    def forward(self, x):
        self.log.append(("forward", self.name))
        return self.a * x + self.c

    def backward(self, dy):
        self.log.append(("backward", self.name))
        return self.a * dy


def mlp(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return L.Sequential(
        L.Linear(5, 7, rng=rng, dtype=dtype), Tanh(),
        L.Linear(7, 6, rng=rng, dtype=dtype), ReLU(),
        L.Linear(6, 4, rng=rng, dtype=dtype), Sigmoid(),
        L.Linear(4, 3, rng=rng, dtype=dtype),
    )


LINEAR_INDICES = (0, 2, 4, 6)


# ----------------------------------------------------------------- Sequential and Flatten

def test_sequential_runs_forward_in_order_and_backward_in_reverse():
    log = []
    net = L.Sequential(Affine("a", 2.0, 1.0, log), Affine("b", -3.0, 0.5, log), Affine("c", 0.5, 0.0, log))
    x = np.array([1.0, -2.0])
    y = net.forward(x)
    assert_close(y, 0.5 * (-3.0 * (2.0 * x + 1.0) + 0.5), what="Sequential forward (c(b(a(x))))")
    assert log == [("forward", "a"), ("forward", "b"), ("forward", "c")], f"forward order: {log}"
    log.clear()
    dx = net.backward(np.array([1.0, 10.0]))
    assert_close(dx, np.array([1.0, 10.0]) * 0.5 * -3.0 * 2.0, what="Sequential backward (chain rule)")
    assert log == [("backward", "c"), ("backward", "b"), ("backward", "a")], f"backward order: {log}"
    assert len(net) == 3 and net[1].name == "b"


@pytest.mark.parametrize("start_dim, out_shape", [(1, (2, 60)), (2, (2, 3, 20)), (0, (120,)), (-1, (2, 3, 4, 5))])
def test_flatten_forward_is_a_view_and_backward_restores_the_shape(start_dim, out_shape):
    flat = L.Flatten(start_dim)
    x = randn(2, 3, 4, 5)
    y = flat.forward(x)
    assert_close(y, x.reshape(out_shape), rtol=0, atol=0, what=f"Flatten({start_dim}) of (2, 3, 4, 5)")
    assert np.shares_memory(y, x), "Flatten of a contiguous array must be a view (a reshape), not a copy"
    dy = randn(*out_shape, seed=2)
    assert_close(flat.backward(dy), dy.reshape(x.shape), rtol=0, atol=0, what="Flatten backward")


def test_flatten_then_linear_gradients():
    rng = np.random.default_rng(3)
    net = L.Sequential(L.Flatten(), L.Linear(12, 4, rng=rng, dtype=np.float64))
    x, dy = randn(5, 3, 2, 2, seed=4), randn(5, 4, seed=5)
    net.forward(x)
    dx = net.backward(dy)
    lin = net[1]
    check_gradients(lambda: net.forward(x), {"x": x, "W": lin.W.data, "b": lin.b.data},
                    {"x": dx, "W": lin.W.grad, "b": lin.b.grad}, dout=dy)


# ----------------------------------------------------------------- parameters, zero_grad, state_dict

def test_parameters_are_discovered_and_zero_grad_clears_them():
    net = mlp()
    names = [name for name, _ in net.named_parameters()]
    expected = [f"layers.{i}.{p}" for i in LINEAR_INDICES for p in ("W", "b")]
    assert names == expected, f"expected parameter names {expected}, got {names}"
    assert net.num_parameters() == 5 * 7 + 7 + 7 * 6 + 6 + 6 * 4 + 4 + 4 * 3 + 3
    net.forward(randn(8, 5))
    net.backward(randn(8, 3, seed=2))
    assert all(p.grad.any() for p in net.parameters()), "every parameter should receive a gradient"
    net.zero_grad()
    assert all(not p.grad.any() for p in net.parameters()), "zero_grad must zero every parameter's gradient"


def test_state_dict_round_trip():
    a, b = mlp(seed=0), mlp(seed=1)
    x = randn(6, 5)
    assert not np.allclose(a.forward(x), b.forward(x)), "two seeds should give two different networks"
    state = a.state_dict()
    assert sorted(state) == sorted(name for name, _ in a.named_parameters())
    b_arrays = [p.data for p in b.parameters()]
    b.load_state_dict(state)
    assert_close(b.forward(x), a.forward(x), rtol=1e-12, what="output after load_state_dict")
    assert all(p.data is arr for p, arr in zip(b.parameters(), b_arrays)), \
        "load_state_dict must write into the existing arrays (optimisers hold references to them)"
    state["layers.0.W"][...] = 0.0
    assert a[0].W.data.any(), "state_dict must return copies, not the live arrays"


# ----------------------------------------------------------------- whole-network gradients

def run_mlp(net, x, dy):
    net.zero_grad()
    y = net.forward(x)
    dx = net.backward(dy)
    grads = {"x": dx}
    for i in LINEAR_INDICES:
        grads[f"W{i}"], grads[f"b{i}"] = net[i].W.grad.copy(), net[i].b.grad.copy()
    return y, grads


def test_mlp_end_to_end_matches_finite_differences():
    net = mlp()
    x, dy = randn(4, 5, seed=20), randn(4, 3, seed=21)
    _, grads = run_mlp(net, x, dy)
    inputs = {"x": x}
    for i in LINEAR_INDICES:
        inputs[f"W{i}"], inputs[f"b{i}"] = net[i].W.data, net[i].b.data
    check_gradients(lambda: net.forward(x), inputs, grads, dout=dy)


def test_mlp_matches_the_autograd_tensor_engine():
    """Hand-derived layer gradients vs Topic 02's Tensor engine: two independent implementations."""
    net = mlp()
    x, dy = randn(4, 5, seed=22), randn(4, 3, seed=23)
    y, grads = run_mlp(net, x, dy)

    params = {f"{n}{i}": Tensor(getattr(net[i], n).data.copy(), requires_grad=True)
              for i in LINEAR_INDICES for n in ("W", "b")}
    tx = Tensor(x.copy(), requires_grad=True)
    h = (tx @ params["W0"] + params["b0"]).tanh()
    h = (h @ params["W2"] + params["b2"]).relu()
    h = (h @ params["W4"] + params["b4"]).sigmoid()
    out = h @ params["W6"] + params["b6"]
    (out * Tensor(dy)).sum().backward()

    assert_close(y, out.data, rtol=1e-12, what="MLP output vs the Tensor engine")
    assert_close(grads["x"], tx.grad, rtol=1e-10, atol=1e-12, what="dx vs the Tensor engine")
    for name, t in params.items():
        assert_close(grads[name], t.grad, rtol=1e-10, atol=1e-12, what=f"gradient of {name} vs the Tensor engine")


def test_mlp_matches_torch():
    torch = torch_or_skip()
    net = mlp()
    x, dy = randn(4, 5, seed=24), randn(4, 3, seed=25)
    y, grads = run_mlp(net, x, dy)

    tnet = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 6), torch.nn.ReLU(),
                               torch.nn.Linear(6, 4), torch.nn.Sigmoid(), torch.nn.Linear(4, 3)).double()
    with torch.no_grad():
        for i in LINEAR_INDICES:
            tnet[i].weight.copy_(to_torch(net[i].W.data.T.copy()))
            tnet[i].bias.copy_(to_torch(net[i].b.data))
    tx = to_torch(x, requires_grad=True)
    ty = tnet(tx)
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=1e-10, what="MLP output vs torch")
    assert_close(grads["x"], to_numpy(tx.grad), rtol=1e-9, atol=1e-12, what="dx vs torch")
    for i in LINEAR_INDICES:
        assert_close(grads[f"W{i}"], to_numpy(tnet[i].weight.grad).T, rtol=1e-9, atol=1e-12, what=f"dW{i} vs torch")
        assert_close(grads[f"b{i}"], to_numpy(tnet[i].bias.grad), rtol=1e-9, atol=1e-12, what=f"db{i} vs torch")


def test_an_mlp_trained_with_its_own_gradients_fits_xor():
    from dlfs.optim.optimizers import SGD

    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    t = np.array([[0], [1], [1], [0]], dtype=np.float32)
    rng = np.random.default_rng(0)
    net = L.Sequential(L.Linear(2, 16, rng=rng), Tanh(), L.Linear(16, 1, rng=rng))
    opt = SGD(net.parameters(), lr=0.2, momentum=0.9)
    for _ in range(300):
        opt.zero_grad()
        y = net.forward(x)
        net.backward(2 * (y - t) / len(x))      # d/dy of the mean squared error
        opt.step()
    loss = float(np.mean((net.forward(x) - t) ** 2))
    assert loss < 1e-2, f"XOR should be fitted (mean squared error < 0.01) after 300 steps, got {loss:.4f}"
    assert net[0].W.data.dtype == np.float32, "training in float32 must keep the parameters float32"
