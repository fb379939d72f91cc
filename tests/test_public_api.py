"""The library as a library: packages export their public names, layers are built from given
weights, optimisers resume from a saved state."""

import importlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dlfs.autograd
import dlfs.conv
import dlfs.nn
import dlfs.optim
import dlfs.tensor
from dlfs.conv import Conv2d, MaxPool2d, conv2d_forward_naive
from dlfs.exports import lazy_exports
from dlfs.nn import Flatten, Linear, MSELoss, ReLU, Sequential, Tanh
from dlfs.optim import SGD, AdamW
from dlfs.testing import assert_close
from torch_oracle import to_numpy, to_torch, torch_or_skip

PACKAGES = [dlfs.tensor, dlfs.autograd, dlfs.nn, dlfs.conv, dlfs.optim]


def _run(code: str, **env) -> str:
    """Run ``code`` in a fresh interpreter (nothing of dlfs imported yet); return its stdout."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=120)
    assert proc.returncode == 0, f"the subprocess failed:\n{proc.stderr}"
    return proc.stdout


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_exported_name_resolves_to_its_one_definition(package):
    assert package.__all__, f"{package.__name__} exports nothing"
    for name in package.__all__:
        obj = getattr(package, name)
        home = getattr(obj, "__module__", None)
        assert home and home.startswith("dlfs."), f"{package.__name__}.{name} is {obj!r}, not a dlfs object"
        defined = getattr(importlib.import_module(home), name, None)
        assert defined is obj, f"{package.__name__}.{name} is not the object {home}.{name}"
    assert set(package.__all__) <= set(dir(package)), f"dir({package.__name__}) misses exported names"


def test_the_names_of_the_issue_import_from_their_packages():
    from dlfs.nn import BatchNorm1d, BatchNorm2d, CrossEntropyLoss, softmax  # noqa: F401
    from dlfs.optim import Adam, CosineWithWarmup  # noqa: F401
    from dlfs.autograd import Tensor, no_grad  # noqa: F401

    assert Linear.__module__ == "dlfs.nn.layers" and Conv2d.__module__ == "dlfs.conv.im2col"
    assert MaxPool2d.__module__ == "dlfs.conv.pooling" and AdamW.__module__ == "dlfs.optim.optimizers"
    assert softmax.__module__ == "dlfs.numerics", f"softmax comes from {softmax.__module__}, not dlfs.numerics"
    assert BatchNorm1d.__module__ == BatchNorm2d.__module__ == "dlfs.nn.batchnorm"


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import():
    with pytest.raises(AttributeError, match="no attribute 'Conv3d'"):
        dlfs.conv.Conv3d  # noqa: B018
    out = _run("""
        from dlfs.conv import im2col, pooling
        print(im2col.__name__, pooling.__name__)
    """)
    assert out.split() == ["dlfs.conv.im2col", "dlfs.conv.pooling"], \
        f"`from dlfs.conv import im2col` must give the module, got {out!r}"


def test_a_name_exported_twice_is_refused():
    with pytest.raises(ValueError, match="'relu'"):
        lazy_exports("pkg", {"pkg.a": ["relu"], "pkg.b": ["relu", "gelu"]})


def test_importing_a_package_imports_none_of_its_modules():
    out = _run("""
        import sys
        import dlfs.nn, dlfs.conv, dlfs.optim, dlfs.autograd, dlfs.tensor
        print(sorted(m for m in sys.modules if m.startswith("dlfs.") and m.count(".") > 1))
    """)
    assert out.strip() == "[]", f"importing the packages imported modules: {out.strip()}"


def test_package_names_follow_the_graders_redirect(tmp_path):
    """The grader serves a learner's file under the module's name before it is imported; the
    package's names must come from that file, not from a copy taken earlier."""
    learner = tmp_path / "layers.py"
    source = importlib.import_module("dlfs.nn.layers").__file__
    learner.write_text(open(source, encoding="utf-8").read() + "\nLEARNER_COPY = True\n", encoding="utf-8")
    out = _run("""
        import sys
        from dlfs.course import redirect
        redirect.install_from_env()
        import dlfs.nn
        from dlfs.nn import Linear, ReLU
        print(sys.modules[Linear.__module__].__file__)
        print(getattr(sys.modules["dlfs.nn.layers"], "LEARNER_COPY", False))
        print(ReLU.__mro__[1] is sys.modules["dlfs.nn.layers"].Layer)
    """, DLFS_REDIRECT=json.dumps({"dlfs.nn.layers": str(learner)}))
    file, flag, same_base = out.split()
    assert file == str(learner) and flag == "True", f"dlfs.nn.Linear came from {file}, not the redirected {learner}"
    assert same_base == "True", "ReLU's base class must be the redirected module's Layer"


def test_linear_from_weights_computes_x_w_plus_b_with_copies():
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((5, 3)), rng.standard_normal(3)
    x = rng.standard_normal((4, 5))
    layer = Linear.from_weights(W, b)
    assert (layer.in_features, layer.out_features) == (5, 3) and layer.W.dtype == np.float64
    assert_close(layer.forward(x), x @ W + b, rtol=1e-12, atol=1e-12, what="Linear.from_weights(W, b)(x)")
    W[...] = 0
    assert_close(layer.forward(x), x @ layer.W.data + b, rtol=1e-12, atol=1e-12, what="after changing W")
    assert np.abs(layer.W.data).sum() > 0, "the layer must hold a copy of W, not the caller's array"
    no_bias = Linear.from_weights(np.eye(3, dtype=np.float32))
    assert no_bias.b is None and no_bias.W.dtype == np.float32
    assert_close(no_bias.forward(np.ones((2, 3), np.float32)), np.ones((2, 3)), what="identity layer without bias")
    assert Linear.from_weights([[1, 2], [3, 4]]).W.dtype == np.float32, "integer weights become float32"


def test_from_weights_refuses_wrong_shapes_with_the_shapes_in_the_message():
    with pytest.raises(ValueError, match=r"\(in_features, out_features\).*\(6,\)"):
        Linear.from_weights(np.ones(6))
    with pytest.raises(ValueError, match=r"expected shape \(3,\), got \(4,\)"):
        Linear.from_weights(np.ones((2, 3)), np.ones(4))
    with pytest.raises(ValueError, match=r"\(out_channels, in_channels, kh, kw\).*\(4, 3, 3\)"):
        Conv2d.from_weights(np.ones((4, 3, 3)))


def test_conv2d_from_weights_uses_the_given_weights_and_geometry():
    rng = np.random.default_rng(1)
    W, b = rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    x = rng.standard_normal((2, 3, 9, 8))
    layer = Conv2d.from_weights(W, b, stride=(2, 1), padding=1, dilation=(1, 2))
    assert (layer.in_channels, layer.out_channels, layer.kernel_size) == (3, 4, (3, 2))
    expected = conv2d_forward_naive(x, W, b, stride=(2, 1), padding=1, dilation=(1, 2))
    assert_close(layer.forward(x), expected, rtol=1e-12, atol=1e-12, what="Conv2d.from_weights(...)(x)")


def test_layers_from_torch_weights_give_torch_outputs():
    torch = torch_or_skip()
    torch.manual_seed(0)
    tnet = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 5))
    conv, lin = tnet[0], tnet[4]
    net = Sequential(Conv2d.from_weights(to_numpy(conv.weight), to_numpy(conv.bias), padding=1), ReLU(),
                     MaxPool2d(2), Flatten(),
                     Linear.from_weights(to_numpy(lin.weight).T, to_numpy(lin.bias)))   # our W is torch's transposed
    x = np.random.default_rng(2).standard_normal((3, 2, 8, 8))
    assert_close(net.forward(x), to_numpy(tnet(to_torch(x))), rtol=1e-10, atol=1e-12,
                 what="a network built from torch's weights vs torch")


def _model(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(Linear.from_weights(rng.standard_normal((3, 4)), rng.standard_normal(4)), Tanh(),
                      Linear.from_weights(rng.standard_normal((4, 2)), rng.standard_normal(2)))


def _step(opt, model, x, y):
    opt.zero_grad()
    loss = MSELoss()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    opt.step()


@pytest.mark.parametrize("make", [lambda p: AdamW(p, lr=0.05, weight_decay=0.1),
                                  lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True)],
                         ids=["AdamW", "SGD-Nesterov"])
def test_an_optimiser_resumes_from_a_saved_state(make):
    """Three steps in a row equal one step, a saved state (copied, with string keys as after a
    round trip through JSON), and two steps of a new optimiser that loaded it, on a model that
    loaded the weights saved at the same point."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    model = _model()
    opt = make(model.parameters())
    _step(opt, model, x, y)
    saved_weights = model.state_dict()
    saved = opt.state_dict()
    saved = {"lr": saved["lr"], "state": {str(i): {k: np.array(v) if isinstance(v, np.ndarray) else v
                                                   for k, v in st.items()}
                                          for i, st in saved["state"].items()}}
    assert saved["state"], "after one step the optimiser must have state to save"
    for _ in range(2):
        _step(opt, model, x, y)

    resumed = _model(seed=9)
    resumed.load_state_dict(saved_weights)
    opt2 = make(resumed.parameters())
    opt2.load_state_dict(saved)
    for _ in range(2):
        _step(opt2, resumed, x, y)
    for name, value in model.state_dict().items():
        assert_close(resumed.state_dict()[name], value, rtol=0, atol=0, what=f"{name} after resuming")
