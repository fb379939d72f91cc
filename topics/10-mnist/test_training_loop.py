"""Topic 10: metrics, one training epoch and evaluation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.testing import assert_close
from dlfs.train import loop


def test_accuracy_counts_argmax_matches():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 5.0], [1.0, 1.5, 0.0]])
    y = np.array([1, 0, 1, 0])
    assert loop.accuracy(logits, y) == pytest.approx(0.5)


def _confusion_naive(t, p, k):
    cm = np.zeros((k, k), dtype=np.int64)
    for a, b in zip(t, p):
        cm[a, b] += 1
    return cm


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 7).flatmap(lambda k: st.tuples(
    st.just(k), st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=0, max_size=60))))
def test_confusion_matrix_matches_a_loop(case):
    k, pairs = case
    t = np.array([a for a, _ in pairs], dtype=np.int64)
    p = np.array([b for _, b in pairs], dtype=np.int64)
    got = loop.confusion_matrix(t, p, k)
    assert_close(got, _confusion_naive(t, p, k), what="confusion matrix")


def test_confusion_matrix_rows_are_true_classes():
    cm = loop.confusion_matrix(np.array([0, 0, 1, 2]), np.array([1, 1, 1, 0]), 3)
    assert_close(cm, np.array([[0, 2, 0], [0, 1, 0], [1, 0, 0]]), what="confusion matrix")
    with pytest.raises(ValueError):
        loop.confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)


class Recorder:
    """A fake model/loss/optimiser/schedule that records the order of calls."""

    def __init__(self, logits_per_batch):
        self.calls = []
        self.logits = list(logits_per_batch)
        self.training = None

    # model
    def train(self, mode=True):
        self.training = mode
        self.calls.append("train" if mode else "eval")
        return self

    def eval(self):
        return self.train(False)

    def forward(self, x):
        self.calls.append("forward")
        return self.logits.pop(0)

    def backward(self, dy):
        self.calls.append(("backward", float(dy)))
        return dy

    # optimiser / schedule
    def zero_grad(self):
        self.calls.append("zero_grad")

    def step(self):
        self.calls.append("step")


class FakeLoss:
    def __init__(self, losses, log):
        self.losses = list(losses)
        self.log = log

    def forward(self, logits, y):
        self.log.append("loss")
        self.current = self.losses.pop(0)
        return self.current

    def backward(self):
        self.log.append("loss.backward")
        return np.float64(self.current * 10)


def test_train_epoch_calls_in_the_right_order_and_weights_by_batch_size():
    logits = [np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), np.array([[0.0, 1.0]])]
    rec = Recorder(logits)
    opt, sched = Recorder([]), Recorder([])
    sched.calls = opt.calls = rec.calls          # one shared log
    loss = FakeLoss([2.0, 6.0], rec.calls)
    batches = [(np.zeros((3, 4)), np.array([0, 0, 0])), (np.zeros((1, 4)), np.array([1]))]
    seen = []
    mean_loss, acc = loop.train_epoch(rec, loss, opt, batches, scheduler=sched,
                                      on_batch=lambda l, a: seen.append((l, a)))
    assert mean_loss == pytest.approx((2.0 * 3 + 6.0 * 1) / 4), "mean loss must be weighted by batch size"
    assert acc == pytest.approx(3 / 4)
    assert seen == [(2.0, pytest.approx(2 / 3)), (6.0, 1.0)]
    one_batch = ["zero_grad", "forward", "loss", "loss.backward", ("backward", 20.0), "step", "step"]
    body = [c for c in rec.calls if c != "train"]
    assert body[:7] == one_batch, f"expected the calls {one_batch}, got {body[:7]}"
    assert rec.training is True, "train_epoch must put the model in training mode"


def test_evaluate_uses_eval_mode_and_weights_the_loss():
    x = np.arange(5, dtype=np.float64)[:, None]
    y = np.array([0, 1, 1, 0, 1])

    class Model(Recorder):
        def forward(self, xb):
            assert self.training is False, "evaluate must run the model in eval mode"
            return np.concatenate([xb, 2.5 - xb], axis=1)   # class 0 iff x > 1.25

    class Loss:
        def forward(self, logits, yb):
            return float(len(yb))                          # batch of n has loss n

    loss, acc, pred = loop.evaluate(Model([]).train(), Loss(), x, y, batch_size=2)
    assert_close(pred, np.array([1, 1, 0, 0, 0]), what="predicted labels")
    assert acc == pytest.approx(2 / 5)
    assert loss == pytest.approx((2 * 2 + 2 * 2 + 1 * 1) / 5), "loss must be the mean weighted by batch size"


def test_a_real_model_learns_two_blobs():
    from dlfs.nn.layers import Linear
    from dlfs.nn.losses import CrossEntropyLoss
    from dlfs.optim.optimizers import SGD

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (200, 2)), rng.normal(2, 1, (200, 2))]).astype(np.float32)
    y = np.repeat([0, 1], 200)
    model = Linear(2, 2, rng=np.random.default_rng(1))
    loss_fn = CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=0.5)
    first = None
    for epoch in range(5):
        order = rng.permutation(len(x))
        batches = [(x[order[i:i + 40]], y[order[i:i + 40]]) for i in range(0, len(x), 40)]
        l, a = loop.train_epoch(model, loss_fn, opt, batches)
        first = l if first is None else first
    val_loss, val_acc, _ = loop.evaluate(model, loss_fn, x, y)
    assert val_acc > 0.95, f"expected > 95% accuracy on separable blobs after 5 epochs, got {val_acc:.3f}"
    assert val_loss < first, f"loss should fall: first epoch {first:.3f}, final {val_loss:.3f}"
