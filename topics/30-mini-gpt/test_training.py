"""Topic 30: training a GPT — the batches, the weight-decay groups, one training step against the
same step written out, exact resumption from a checkpoint, and learning a pattern."""

import numpy as np
import pytest

from dlfs.nn.losses import cross_entropy
from dlfs.optim.optimizers import AdamW
from dlfs.optim.schedules import clip_grad_norm
from dlfs.testing import assert_close
from dlfs.transformer import training as tr
from dlfs.transformer.gpt import GPT, GPTConfig

CONFIG = GPTConfig(vocab_size=9, block_size=8, n_layer=2, n_head=2, n_embd=8, activation="gelu_tanh")


def test_get_batch_gives_windows_and_their_successors():
    data = np.arange(100, 160)
    x, y = tr.get_batch(data, 5, 4, np.random.default_rng(0))
    starts = np.random.default_rng(0).integers(0, 60 - 5, size=4)
    assert x.shape == y.shape == (4, 5), f"expected x and y of shape (B, T) = (4, 5), got {x.shape}, {y.shape}"
    assert_close(x, data[starts[:, None] + np.arange(5)], rtol=0, atol=0,
                 what="x[b] = data[i_b : i_b + T] with the starts of rng.integers(0, N - T, size=B)")
    assert_close(y, x + 1, rtol=0, atol=0, what="y = the next token of each x (data = 100, 101, ...)")
    short = np.arange(6)
    x, y = tr.get_batch(short, 5, 50, np.random.default_rng(1))
    assert_close(y[:, -1], np.full(50, 5), rtol=0, atol=0, what="the last target of the only window of 6 ids")
    with pytest.raises(ValueError):
        tr.get_batch(np.arange(5), 5, 1, np.random.default_rng(2))


def test_weight_decay_goes_to_the_matrices_only():
    model = GPT(CONFIG, rng=0)
    decay, no_decay = tr.decay_groups(model)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in decay)
    kept = sorted(names[id(p)] for p in no_decay)
    assert "wte.W" in decayed and "wpe" in decayed and "blocks.0.ff.linear1.W" in decayed, \
        f"the embeddings and the Linear weights must decay; decayed: {decayed}"
    assert "ln_f.gamma" in kept and "blocks.1.self_attn.qkv.b" in kept, \
        f"biases and LayerNorm parameters must not decay; not decayed: {kept}"
    assert all(p.data.ndim >= 2 for p in decay) and all(p.data.ndim == 1 for p in no_decay), \
        "2-D parameters decay, 1-D ones do not"
    assert len(decay) + len(no_decay) == len(model.parameters()), "every parameter is in exactly one group"


def test_train_step_is_forward_loss_backward_clip_adamw():
    cfg = tr.TrainConfig(lr=3e-3, weight_decay=0.1, grad_clip=0.05)
    ids = np.random.default_rng(3).integers(0, 9, (3, 8))
    x, y = ids, np.roll(ids, -1, axis=1)
    model, ref = GPT(CONFIG, rng=4, dtype=np.float64), GPT(CONFIG, rng=4, dtype=np.float64)
    loss, norm = tr.train_step(model, x, y, tr.adamw_groups(model, cfg), cfg.grad_clip)
    # the same step written out on the twin model
    ref.zero_grad()
    expected_loss, dlogits = cross_entropy(ref.forward(x), y)
    ref.backward(dlogits)
    expected_norm = clip_grad_norm(ref.parameters(), cfg.grad_clip)
    params = dict(ref.named_parameters())
    for p in params.values():
        decay = cfg.weight_decay if p.data.ndim >= 2 else 0.0
        AdamW([p], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=decay).step()
    assert_close(loss, expected_loss, rtol=1e-12, what="the returned loss (mean cross-entropy over B·T)")
    assert_close(norm, expected_norm, rtol=1e-10, what="the returned gradient norm (before clipping)")
    assert norm > cfg.grad_clip, "this test needs a step that is clipped"
    for name, p in model.named_parameters():
        assert_close(p.data, params[name].data, rtol=1e-10, atol=1e-12, what=f"{name} after one step")


def test_gradients_do_not_accumulate_across_steps():
    cfg = tr.TrainConfig(lr=0.0, grad_clip=0.0)                  # lr 0: the weights never change
    model = GPT(CONFIG, rng=5, dtype=np.float64)
    opt = tr.adamw_groups(model, cfg)
    ids = np.random.default_rng(6).integers(0, 9, (2, 8))
    tr.train_step(model, ids, ids, opt, 0.0)
    first = model.wte.W.grad.copy()
    tr.train_step(model, ids, ids, opt, 0.0)
    assert_close(model.wte.W.grad, first, rtol=1e-12, atol=1e-14,
                 what="wte.W.grad after a second identical step (zeroed first, not accumulated)")


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_weights(tmp_path):
    """A run stopped after step 7 (its checkpoint is from step 5) and resumed ends with exactly the
    weights, the optimiser state and the curves of a run that was never interrupted, dropout included."""
    config = GPTConfig(vocab_size=9, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.2,
                       activation="gelu_tanh")
    data = np.random.default_rng(7).integers(0, 9, 600)
    cfg = tr.TrainConfig(max_steps=12, batch_size=4, warmup_steps=3, eval_every=4, eval_windows=10,
                         checkpoint_every=5)
    quiet = dict(progress=False, log=lambda s: None)
    whole = GPT(config, rng=8)
    h1 = tr.fit(whole, data[:500], data[500:], cfg, seed=9, **quiet)
    ckpt = tmp_path / "run.npz"
    tr.fit(GPT(config, rng=8), data[:500], data[500:], cfg, seed=9, checkpoint=ckpt, stop_after_step=7, **quiet)
    resumed = GPT(config, rng=123)                               # other weights: the checkpoint must replace them
    h2 = tr.fit(resumed, data[:500], data[500:], cfg, seed=9, checkpoint=ckpt, resume=True, **quiet)
    for name, value in whole.state_dict().items():
        assert_close(resumed.state_dict()[name], value, rtol=0, atol=0, what=f"{name} after resuming")
    assert h2["val_loss"] == h1["val_loss"] and h2["train_loss"] == h1["train_loss"], \
        f"curves differ after resuming: {h1['val_loss']} vs {h2['val_loss']}"
    assert h2["steps_done"] == 12, f"expected 12 steps done, got {h2['steps_done']}"


def test_a_tiny_gpt_learns_a_repeating_pattern():
    pattern = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 4, 2])
    data = np.tile(pattern, 60)
    model = GPT(CONFIG, rng=10)
    cfg = tr.TrainConfig(max_steps=150, batch_size=8, lr=3e-2, min_lr=3e-3, warmup_steps=5, eval_every=150,
                         eval_windows=20, checkpoint_every=150)
    h = tr.fit(model, data[:500], data[500:], cfg, seed=11, progress=False, log=lambda s: None)
    # measured with the reference: 0.046 after 150 steps
    assert h["val_loss"][-1] < 0.15, f"the pattern is deterministic after two tokens: expected a validation " \
                                      f"loss below 0.15, got {h['val_loss'][-1]:.3f} (ln 9 = 2.20 at chance)"
