"""Topic 02, part 1: the scalar engine ``Value``.

Every operation is checked for its value and, separately, for its gradient (against central
finite differences in float64); then random graphs are checked against finite differences
and against PyTorch; then the engine's rules: accumulation, backward twice, zero_grad.
"""

import math

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from dlfs.autograd.value import Value
from dlfs.testing import assert_close, check_gradients
from torch_oracle import torch_or_skip


@pytest.fixture(scope="module")
def torch():
    return torch_or_skip()


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


# name -> (function of Values, the same function of floats, inputs)
OPS = {
    "a + b": (lambda a, b: a + b, lambda a, b: a + b, [1.3, -0.7]),
    "a * b": (lambda a, b: a * b, lambda a, b: a * b, [1.3, -0.7]),
    "a ** 2": (lambda a: a ** 2, lambda a: a ** 2, [-1.3]),
    "a ** 3": (lambda a: a ** 3, lambda a: a ** 3, [0.8]),
    "a ** -1": (lambda a: a ** -1, lambda a: a ** -1, [1.7]),
    "a ** 0.5": (lambda a: a ** 0.5, lambda a: a ** 0.5, [2.3]),
    "exp(a)": (lambda a: a.exp(), math.exp, [0.9]),
    "log(a)": (lambda a: a.log(), math.log, [2.5]),
    "tanh(a)": (lambda a: a.tanh(), math.tanh, [-0.6]),
    "relu(a), a > 0": (lambda a: a.relu(), lambda a: max(a, 0.0), [0.8]),
    "relu(a), a < 0": (lambda a: a.relu(), lambda a: max(a, 0.0), [-0.8]),
    "sigmoid(a), a > 0": (lambda a: a.sigmoid(), _sigmoid, [1.4]),
    "sigmoid(a), a < 0": (lambda a: a.sigmoid(), _sigmoid, [-2.2]),
    "-a": (lambda a: -a, lambda a: -a, [0.7]),
    "a - b": (lambda a, b: a - b, lambda a, b: a - b, [0.4, 1.9]),
    "a / b": (lambda a, b: a / b, lambda a, b: a / b, [0.4, -1.9]),
    "a + 2.5": (lambda a: a + 2.5, lambda a: a + 2.5, [0.3]),
    "2.5 + a": (lambda a: 2.5 + a, lambda a: 2.5 + a, [0.3]),
    "3 * a": (lambda a: 3 * a, lambda a: 3 * a, [0.3]),
    "a * 3": (lambda a: a * 3, lambda a: a * 3, [0.3]),
    "2 - a": (lambda a: 2 - a, lambda a: 2 - a, [0.3]),
    "a - 2": (lambda a: a - 2, lambda a: a - 2, [0.3]),
    "2 / a": (lambda a: 2 / a, lambda a: 2 / a, [0.6]),
    "a / 4": (lambda a: a / 4, lambda a: a / 4, [0.6]),
}


@pytest.mark.parametrize("name", list(OPS))
def test_forward_value(name):
    fn, ref, xs = OPS[name]
    got = fn(*[Value(x) for x in xs])
    assert isinstance(got, Value), f"{name}: expected a Value, got {type(got).__name__}"
    assert_close(got.data, ref(*xs), rtol=1e-12, what=f"value of {name} at {xs}")


@pytest.mark.parametrize("name", list(OPS))
def test_gradient_matches_finite_differences(name):
    fn, _, xs = OPS[name]
    x = np.array(xs, dtype=np.float64)
    leaves = [Value(v) for v in xs]
    fn(*leaves).backward()
    check_gradients(lambda: np.array(fn(*[Value(v) for v in x]).data), {"inputs": x},
                    {"inputs": np.array([leaf.grad for leaf in leaves])})


def test_relu_gradient_at_zero_is_zero():
    a = Value(0.0)
    out = a.relu()
    out.backward()
    assert_close(out.data, 0.0, what="relu(0)")
    assert_close(a.grad, 0.0, what="d relu(a)/da at a = 0 (PyTorch's convention)")


def test_sigmoid_does_not_overflow():
    # math.exp(1000) raises OverflowError: the forward must only exponentiate -|a|.
    for x, expected in [(-1000.0, 0.0), (1000.0, 1.0), (-700.0, math.exp(-700.0)), (30.0, 1 / (1 + math.exp(-30.0)))]:
        a = Value(x)
        out = a.sigmoid()
        out.backward()
        assert_close(out.data, expected, rtol=1e-12, atol=0, what=f"sigmoid({x})")
        assert_close(a.grad, expected * (1 - expected), rtol=1e-9, atol=1e-300, what=f"d sigmoid/da at {x}")


# ----------------------------------------------------------------------------- random graphs
# A program is a list of steps (op, i, j, c): node = op(pool[i], pool[j], constant c), appended
# to the pool that starts with the inputs. The output is the last node plus a weighted sum of
# every node, so each input reaches it along several paths. Operations whose finite-difference
# check would be ill-conditioned at the drawn point (relu near its kink, saturated tanh, ...)
# are swapped for a linear step: the graph stays random, the check stays meaningful.

class _Methods:
    """Value and torch scalars share these method names."""
    exp = staticmethod(lambda v: v.exp())
    log = staticmethod(lambda v: v.log())
    tanh = staticmethod(lambda v: v.tanh())
    relu = staticmethod(lambda v: v.relu())
    sigmoid = staticmethod(lambda v: v.sigmoid())


class _Floats:
    exp = staticmethod(math.exp)
    log = staticmethod(math.log)
    tanh = staticmethod(math.tanh)
    relu = staticmethod(lambda v: max(v, 0.0))
    sigmoid = staticmethod(_sigmoid)


STEPS = {
    # name: (function(a, b, c, B), text, guard(a, b, c) on floats: the step is well-conditioned)
    "add": (lambda a, b, c, B: a + b, "{a} + {b}", lambda a, b, c: True),
    "sub": (lambda a, b, c, B: a - b * c, "{a} - {b} * {c}", lambda a, b, c: True),
    "mul": (lambda a, b, c, B: a * b, "{a} * {b}", lambda a, b, c: 0.05 < abs(a) < 30 and 0.05 < abs(b) < 30),
    "div": (lambda a, b, c, B: a / (b * b + abs(c)), "{a} / ({b}^2 + |{c}|)", lambda a, b, c: abs(b) > 0.05),
    "tanh": (lambda a, b, c, B: B.tanh(a * c), "tanh({a} * {c})", lambda a, b, c: abs(a * c) < 3),
    "sigmoid": (lambda a, b, c, B: B.sigmoid(a * c), "sigmoid({a} * {c})", lambda a, b, c: abs(a * c) < 4),
    "exp": (lambda a, b, c, B: B.exp(a * c), "exp({a} * {c})", lambda a, b, c: abs(a * c) < 3),
    "log": (lambda a, b, c, B: B.log(a * a + abs(c)), "log({a}^2 + |{c}|)", lambda a, b, c: abs(a) > 0.05),
    "relu": (lambda a, b, c, B: B.relu(a + c), "relu({a} + {c})", lambda a, b, c: abs(a + c) > 0.01),
    "square": (lambda a, b, c, B: a ** 2, "{a} ** 2", lambda a, b, c: 0.05 < abs(a) < 10),
    "cube": (lambda a, b, c, B: a ** 3, "{a} ** 3", lambda a, b, c: 0.05 < abs(a) < 5),
    "sqrt": (lambda a, b, c, B: (a * a + abs(c)) ** 0.5, "({a}^2 + |{c}|) ** 0.5", lambda a, b, c: abs(a) > 0.05),
    "inv": (lambda a, b, c, B: (a * a + abs(c)) ** -1, "({a}^2 + |{c}|) ** -1", lambda a, b, c: abs(a) > 0.05),
    "neg": (lambda a, b, c, B: -a, "-{a}", lambda a, b, c: True),
    "rsub": (lambda a, b, c, B: c - a, "{c} - {a}", lambda a, b, c: True),
    "rdiv": (lambda a, b, c, B: c / (a * a + 1), "{c} / ({a}^2 + 1)", lambda a, b, c: abs(a) > 0.05),
    "radd": (lambda a, b, c, B: c + a, "{c} + {a}", lambda a, b, c: True),
    "rmul": (lambda a, b, c, B: c * a, "{c} * {a}", lambda a, b, c: True),
}
SAFE_STEP = "rmul"


@st.composite
def programs(draw):
    n_inputs = draw(st.integers(1, 3))
    raw = draw(st.lists(st.tuples(st.sampled_from(sorted(STEPS)), st.integers(0, 99), st.integers(0, 99)),
                        min_size=1, max_size=8))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.3, 1.5, n_inputs) * rng.choice([-1.0, 1.0], n_inputs)
    pool = [float(v) for v in x]
    steps = []
    for op, i, j in raw:
        a, b = i % len(pool), j % len(pool)
        c = float(rng.uniform(0.5, 1.5) * rng.choice([-1.0, 1.0]))
        if not STEPS[op][2](pool[a], pool[b], c):
            op = SAFE_STEP
        steps.append((op, a, b, c))
        pool.append(STEPS[op][0](pool[a], pool[b], c, _Floats))
    weights = [float(w) for w in rng.uniform(0.5, 1.5, len(pool)) * rng.choice([-1.0, 1.0], len(pool))]
    return x, steps, weights


def run_program(steps, weights, inputs, B):
    pool = list(inputs)
    for op, i, j, c in steps:
        pool.append(STEPS[op][0](pool[i], pool[j], c, B))
    out = pool[-1]
    for w, node in zip(weights, pool):
        out = out + w * node
    return out


def describe(x, steps, weights) -> str:
    lines = [f"inputs v0..v{len(x) - 1} = {np.round(x, 4).tolist()}"]
    for k, (op, i, j, c) in enumerate(steps, start=len(x)):
        lines.append(f"v{k} = " + STEPS[op][1].format(a=f"v{i}", b=f"v{j}", c=f"{c:.3f}"))
    lines.append(f"out = v{len(x) + len(steps) - 1} + sum(w_k * v_k), w = {np.round(weights, 3).tolist()}")
    return "\n".join(lines)


@settings(deadline=None, max_examples=60, derandomize=True)
@given(programs())
def test_random_graph_matches_finite_differences(program):
    x, steps, weights = program
    note(describe(*program))
    expected = run_program(steps, weights, [float(v) for v in x], _Floats)
    leaves = [Value(v) for v in x]
    out = run_program(steps, weights, leaves, _Methods)
    assert_close(out.data, expected, rtol=1e-10, what="output of the random graph")
    out.backward()
    check_gradients(lambda: np.array(run_program(steps, weights, [Value(v) for v in x], _Methods).data),
                    {"inputs": x}, {"inputs": np.array([leaf.grad for leaf in leaves])})


@settings(deadline=None, max_examples=30, derandomize=True)
@given(programs())
def test_random_graph_matches_torch(torch, program):
    x, steps, weights = program
    note(describe(*program))
    leaves = [Value(v) for v in x]
    out = run_program(steps, weights, leaves, _Methods)
    out.backward()
    t_leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in x]
    t_out = run_program(steps, weights, t_leaves, _Methods)
    t_out.backward()
    assert_close(out.data, t_out.item(), rtol=1e-10, what="output vs torch")
    assert_close(np.array([v.grad for v in leaves]), np.array([t.grad.item() for t in t_leaves]),
                 rtol=1e-9, atol=1e-12, what="input gradients vs torch")


# ----------------------------------------------------------------------------- the engine's rules

def test_a_node_used_twice_gets_both_contributions():
    x, y = Value(1.5), Value(-0.5)
    out = x * x + x * y + y          # d/dx = 2x + y, d/dy = x + 1
    out.backward()
    assert_close(x.grad, 2 * 1.5 - 0.5, what="d(x*x + x*y + y)/dx: each use of x must add (+=)")
    assert_close(y.grad, 1.5 + 1, what="d(x*x + x*y + y)/dy")
    z = Value(0.7)
    s = z + z
    s.backward()
    assert_close(z.grad, 2.0, what="d(z + z)/dz: both children are the same node")


def test_shared_interior_node_sends_its_total_gradient_once():
    x = Value(0.3)
    h = (x * 2).tanh()               # used by two consumers
    out = h * h + h.exp()            # d/dh = 2h + exp(h)
    out.backward()
    hv = math.tanh(0.6)
    dh = 2 * hv + math.exp(hv)
    assert_close(h.grad, dh, rtol=1e-12, what="gradient of the shared interior node h")
    assert_close(x.grad, dh * (1 - hv ** 2) * 2, rtol=1e-12, what="d out / dx through the shared node")


def test_topological_order_puts_children_first_each_node_once():
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    e = d * c                        # a diamond: c reached along two paths
    order = e.topological_order()
    assert order[-1] is e, "the output must come last"
    ids = [id(n) for n in order]
    assert len(ids) == len(set(ids)) == 5, f"expected the 5 nodes a, b, c, d, e once each, got {len(ids)} entries"
    where = {id(n): k for k, n in enumerate(order)}
    for node in order:
        for child in node._prev:
            assert where[id(child)] < where[id(node)], "a node appears before one of its children"


def _twice_graph(a, b):
    h = (a * b).tanh()
    return h * a + (b * b).sigmoid() * h


def test_backward_twice_gives_exactly_twice_one_call():
    x = np.array([0.4, -1.1])
    a, b = Value(x[0]), Value(x[1])
    out = _twice_graph(a, b)
    out.backward()
    once = np.array([a.grad, b.grad])
    check_gradients(lambda: np.array(_twice_graph(Value(x[0]), Value(x[1])).data), {"inputs": x},
                    {"inputs": once})
    out.backward()
    assert_close([a.grad, b.grad], 2 * once, rtol=1e-12,
                 what="leaf gradients after two backward() calls: exactly twice one call "
                      "(interior nodes must not carry the first pass into the second)")


def test_backward_twice_matches_torch(torch):
    a, b = Value(0.4), Value(-1.1)
    out = _twice_graph(a, b)
    out.backward()
    out.backward()
    ta = torch.tensor(0.4, requires_grad=True)
    tb = torch.tensor(-1.1, requires_grad=True)
    t_out = _twice_graph(ta, tb)
    t_out.backward(retain_graph=True)
    t_out.backward()
    assert_close([a.grad, b.grad], [ta.grad.item(), tb.grad.item()], rtol=1e-10,
                 what="leaf gradients after two backward() calls vs torch (retain_graph)")


def _two_outputs(x, y):
    h = (x * y + 1).tanh()
    return h * 3, (h * x).exp()


def test_two_outputs_sharing_a_subgraph_add_their_gradients():
    v = np.array([0.5, -0.8])
    x, y = Value(v[0]), Value(v[1])
    first, second = _two_outputs(x, y)
    first.backward()
    second.backward()

    def total():
        f, s = _two_outputs(Value(v[0]), Value(v[1]))
        return np.array(f.data + s.data)

    check_gradients(total, {"inputs": v}, {"inputs": np.array([x.grad, y.grad])})


def test_two_outputs_sharing_a_subgraph_match_torch(torch):
    x, y = Value(0.5), Value(-0.8)
    first, second = _two_outputs(x, y)
    first.backward()
    second.backward()
    tx = torch.tensor(0.5, requires_grad=True)
    ty = torch.tensor(-0.8, requires_grad=True)
    t_first, t_second = _two_outputs(tx, ty)
    t_first.backward(retain_graph=True)
    t_second.backward()
    assert_close([x.grad, y.grad], [tx.grad.item(), ty.grad.item()], rtol=1e-10,
                 what="gradients after backward() from two outputs sharing h vs torch")


def test_backward_on_a_leaf_and_on_a_constant_expression():
    x = Value(3.0)
    x.backward()
    x.backward()
    assert_close(x.grad, 2.0, what="d x/dx after two backward() calls on the leaf x itself")
    y = Value(2.0)
    out = y * 5 + 1
    out.backward()
    assert_close(out.grad, 1.0, what="the output's own gradient (the seed)")
    assert_close(y.grad, 5.0, what="d(5y + 1)/dy")


def test_zero_grad_resets_the_node_and_everything_it_depends_on():
    a, b = Value(0.9), Value(-0.2)
    h = a * b
    out = h.exp() + a
    out.backward()
    once = (a.grad, b.grad)
    assert a.grad != 0 and b.grad != 0
    out.zero_grad()
    for name, node in [("a", a), ("b", b), ("h", h), ("out", out)]:
        assert node.grad == 0.0, f"after out.zero_grad(), {name}.grad should be 0.0, got {node.grad}"
    out.backward()
    assert_close([a.grad, b.grad], list(once), rtol=1e-12,
                 what="gradients of backward() after zero_grad(): one pass's worth")


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = Value(0.5)
    out = x
    for _ in range(5000):
        out = out + x * 0.001
    out.backward()
    assert_close(out.data, 0.5 + 5000 * 0.0005, rtol=1e-9, what="value of the 5000-step chain")
    assert_close(x.grad, 1 + 5000 * 0.001, rtol=1e-9,
                 what="d out/dx through a 5000-step chain (a recursive topological sort overflows the stack)")
