"""Topic 20: the GRU as a character-level language model (dlfs.experiments.char_lm) — the
model's gradients, a short training run on a tiny text, and sampling."""

import numpy as np

from dlfs.data.text import text_dataset
from dlfs.experiments import char_lm
from dlfs.nn.losses import cross_entropy
from dlfs.testing import check_gradients

TEXT = "to be or not to be, that is the question. " * 40


def test_model_gradients_match_finite_differences():
    """one-hot -> GRU -> Linear -> cross-entropy: every parameter's gradient, in float64."""
    model = char_lm.make_model("gru", 7, 5, rng=0, dtype=np.float64)
    rng = np.random.default_rng(1)
    ids, target = rng.integers(0, 7, (2, 6)), rng.integers(0, 7, (2, 6))
    params = dict(model.named_parameters())
    assert model.num_parameters() == char_lm.parameter_count(3, 7, 5), \
        f"expected {char_lm.parameter_count(3, 7, 5)} parameters, got {model.num_parameters()}"

    def loss():
        return np.array(cross_entropy(model.forward(ids)[0], target)[0])

    model.zero_grad()
    _, dlogits = cross_entropy(model.forward(ids)[0], target)
    model.backward(dlogits)
    check_gradients(loss, {n: p.data for n, p in params.items()}, {n: p.grad.copy() for n, p in params.items()},
                    h=1e-4)


def test_a_short_training_run_learns_a_repeated_sentence():
    data = text_dataset(TEXT, "tiny")
    cfg = char_lm.Config(steps=150, batch_size=8, seq_len=24, lr=2e-2, eval_every=75, eval_batches=2, seed=0)
    model = char_lm.make_model("gru", data.vocab_size, 24, rng=0)
    windows = char_lm.validation_windows(data.val, 24, 8)
    before = char_lm.mean_loss(model, windows)
    curve = char_lm.train(model, data, cfg, windows)
    after = char_lm.mean_loss(model, windows)
    assert curve["step"] == [0, 75, 150], f"curve steps: expected [0, 75, 150], got {curve['step']}"
    assert abs(curve["val_loss"][0] - before) < 1e-6, "the curve starts with the untrained model's loss"
    assert before > 2.5 and after < 0.5, f"validation loss should fall from ~ln(V) to < 0.5, got {before:.3f} -> {after:.3f}"
    greedy = char_lm.sample(model, data.vocab, "to be or not ", 30, temperature=0.0)
    assert greedy.startswith("to be, that is the question."), f"greedy continuation: {greedy!r}"


def test_sampling_is_reproducible_and_follows_the_temperature():
    data = text_dataset(TEXT, "tiny")
    model = char_lm.make_model("gru", data.vocab_size, 8, rng=3)
    a = char_lm.sample(model, data.vocab, "to ", 40, temperature=1.0, rng=5)
    b = char_lm.sample(model, data.vocab, "to ", 40, temperature=1.0, rng=5)
    assert a == b and len(a) == 40, f"the same seed should give the same 40 characters, got {a!r} and {b!r}"
    greedy = {char_lm.sample(model, data.vocab, "to ", 10, temperature=0.0, rng=s) for s in range(3)}
    assert len(greedy) == 1, f"greedy sampling ignores the seed, got {greedy}"
    hot = {char_lm.sample(model, data.vocab, "to ", 10, temperature=5.0, rng=s) for s in range(3)}
    assert len(hot) == 3, f"a high temperature should give different samples for different seeds, got {hot}"
