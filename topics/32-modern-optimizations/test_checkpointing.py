"""Topic 32: gradient checkpointing gives exactly the plain gradients, keeps no activations, and
replays dropout's masks."""

import numpy as np
import pytest

from dlfs.nn.layers import Linear, Sequential
from dlfs.nn.activations import GELU
from dlfs.testing import assert_close, check_layer
from dlfs.transformer import checkpointing as ckpt
from dlfs.transformer.encoder import EncoderBlock


def blocks(n=3, dropout=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return [EncoderBlock(8, 2, 16, dropout=dropout, norm_first=True, rng=rng, dtype=np.float64) for _ in range(n)]


def run(stack, x, dy, **kwargs):
    for layer in stack:
        layer.zero_grad()
    h = x
    for layer in stack:
        h = layer.forward(h, **kwargs)
    dx = dy
    for layer in reversed(stack):
        dx = layer.backward(dx)
    grads = {f"{i}.{name}": p.grad.copy() for i, layer in enumerate(stack) for name, p in layer.named_parameters()}
    return h, dx, grads


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_gradients_are_exactly_the_plain_ones(n, dropout):
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 5, 8))
    plain = blocks(dropout=dropout)
    y0, dx0, g0 = run(plain, x, dy, causal=True)
    stack = blocks(dropout=dropout)
    ckpt.checkpoint_blocks(stack, n)
    y1, dx1, g1 = run(stack, x, dy, causal=True)
    assert np.array_equal(y1, y0), "the checkpointed forward changed the output"
    assert np.array_equal(dx1, dx0), f"dx differs from the plain backward by up to {np.abs(dx1 - dx0).max():.3e}"
    for name in g0:
        assert np.array_equal(g1[name], g0[name]), \
            f"{name}: the gradient differs from the plain backward by up to {np.abs(g1[name] - g0[name]).max():.3e}"


def test_no_activation_is_kept_between_forward_and_backward():
    block = blocks(1)[0]
    x = np.random.default_rng(2).standard_normal((2, 5, 8))
    ckpt.checkpoint(block)
    y = block.forward(x, causal=True)
    kept = [a for sub in ckpt.layer_tree(block) for a in vars(sub).values()
            if isinstance(a, np.ndarray) and a.shape[:2] == (2, 5)]
    kept += [a for sub in ckpt.layer_tree(block) for a in vars(sub).values()
             if isinstance(a, tuple) for a in a if isinstance(a, np.ndarray) and a.ndim >= 3]
    assert not kept, f"the checkpointed block still holds {len(kept)} activation array(s) after its forward"
    dx = block.backward(np.ones_like(y))
    assert dx.shape == x.shape and np.abs(dx).max() > 0, "the backward after checkpointing returned no gradient"


def test_dropout_masks_are_replayed_and_the_generator_moves_on():
    stack = blocks(1, dropout=0.5)
    block = stack[0]
    ckpt.checkpoint(block)
    gen = ckpt.generators(block)[0]
    x = np.random.default_rng(3).standard_normal((2, 5, 8))
    y = block.forward(x)
    after_forward = gen.bit_generator.state
    block.backward(np.ones_like(y))
    assert gen.bit_generator.state == after_forward, \
        "after the backward the generator must be where the forward left it (the next forward gets new masks)"
    plain = blocks(1, dropout=0.5)[0]
    _, dx0, g0 = run([plain], x, np.ones_like(y))
    stack2 = blocks(1, dropout=0.5)
    ckpt.checkpoint_blocks(stack2)
    _, dx1, g1 = run(stack2, x, np.ones_like(y))
    assert np.array_equal(dx1, dx0), "with dropout, the recomputed forward did not reuse the forward's masks"


def test_checkpointed_block_matches_finite_differences():
    layer = Sequential(Linear(4, 6, rng=0, dtype=np.float64), GELU(), Linear(6, 3, rng=1, dtype=np.float64))
    ckpt.checkpoint(layer)
    check_layer(layer, np.random.default_rng(4).standard_normal((5, 4)))


def test_parameter_names_and_state_are_unchanged():
    stack = blocks(2)
    names = [name for name, _ in stack[0].named_parameters()]
    state = stack[0].state_dict()
    ckpt.checkpoint_blocks(stack, 2)
    assert [name for name, _ in stack[0].named_parameters()] == names, "checkpointing renamed the parameters"
    assert all(np.array_equal(state[k], v) for k, v in stack[0].state_dict().items())
    x = np.random.default_rng(5).standard_normal((1, 3, 8))
    y = stack[0].forward(x)
    ckpt.checkpoint_blocks(stack, 0)
    assert not ckpt.is_checkpointed(stack[0]) and not ckpt.is_checkpointed(stack[1])
    assert_close(stack[0].forward(x), y, rtol=0, atol=0, what="the block after turning checkpointing off")


def test_backward_before_forward_is_an_error():
    layer = ckpt.checkpoint(Linear(3, 2, rng=0, dtype=np.float64))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((1, 2)))
    layer.forward(np.ones((1, 3)))
    layer.backward(np.ones((1, 2)))
    assert_close(layer.W.grad, np.ones((3, 2)), what="Linear W gradient through the checkpoint")


def test_gpt_with_checkpointed_blocks_gives_the_plain_gradients():
    from dlfs.transformer import gpt
    cfg = gpt.GPTConfig(vocab_size=13, block_size=6, n_layer=3, n_head=2, n_embd=8, dropout=0.2)
    idx = np.random.default_rng(6).integers(0, 13, (2, 6))
    results = []
    for n in (0, 2):
        model = gpt.GPT(cfg, rng=0, dtype=np.float64)
        ckpt.checkpoint_blocks(model.blocks, n)
        logits = model.forward(idx)
        model.backward(logits * 0.01)
        results.append({name: p.grad.copy() for name, p in model.named_parameters()})
    for name in results[0]:
        assert np.array_equal(results[1][name], results[0][name]), f"GPT {name}: gradient differs with checkpointing"
