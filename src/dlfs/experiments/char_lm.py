"""Topic 20 — vanilla RNN, LSTM and GRU as character-level language models on Tiny Shakespeare,
under the same budget.

Each model reads characters and predicts the next one at every step:

    ids (N, T) -> one-hot (N, T, V) -> recurrent layer -> (N, T, H) -> Linear -> logits (N, T, V)

The input is one-hot, so the recurrent layer's input weights ``weight_ih_l0: (G·H, V)`` *are*
the character embedding (``onehot(c) @ weight_ihᵀ`` is column c). The loss is the mean
softmax cross-entropy over every position (``dlfs.nn.losses.cross_entropy``), the optimiser Adam
(``dlfs.optim.Adam``) with the global gradient norm clipped (``dlfs.optim.clip_grad_norm``).

The budget is the same for the three: the same number of parameters (the hidden size of each
is chosen so that the whole model is as close as possible to the GRU's), the same steps, batch
size, sequence length, learning rate, clipping, seed and the same batches in the same order.
Every training sequence starts from a zero state (random windows of the training text, as
nanoGPT samples them). The text is split 90/10 (``dlfs.data.load_shakespeare``); the
validation curve is measured on a fixed set of validation windows, and the final validation
loss on the whole validation split cut into consecutive windows of the training length, each
read from a zero state.

    python -m dlfs.experiments.char_lm [--data-dir DIR] [--out DIR | --record] [--steps N]

Saves ``char_lm.json`` (configuration, losses, curves, wall and CPU times, samples) and
``char_lm.png`` (the curves) in ``--out``. The defaults take about 3.5 minutes of CPU time for
the three models (BLAS limited to one thread: the products inside the time loop are too small
to split).
"""

from __future__ import annotations

import importlib
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dlfs.experiments import common

from dlfs.nn.layers import Layer, Linear

RESULTS = "topic-20"        # results/topic-20/ (see dlfs.experiments.common)
PROMPT = "ROMEO:\n"
SAMPLE_CHARS = 160

# name -> (module, class, gate blocks G, constructor options)
ARCHITECTURES = {
    "rnn": ("dlfs.rnn.vanilla", "RNN", 1, {}),
    "lstm": ("dlfs.rnn.lstm", "LSTM", 4, {}),
    "lstm-fb1": ("dlfs.rnn.lstm", "LSTM", 4, {"forget_bias": 1.0}),   # forget gate starts at σ(1) ≈ 0.73
    "gru": ("dlfs.rnn.gru", "GRU", 3, {}),
}


@dataclass(frozen=True)
class Config:
    gru_hidden: int = 128          # the GRU's hidden size; the others match its parameter count
    steps: int = 3000
    batch_size: int = 32
    seq_len: int = 64
    lr: float = 3e-3
    clip: float = 1.0
    eval_every: int = 100
    eval_batches: int = 8          # fixed validation batches for the curve
    seed: int = 0
    models: tuple[str, ...] = ("rnn", "lstm", "gru")


# ----------------------------------------------------------------- sizes

def parameter_count(gates: int, vocab: int, hidden: int) -> int:
    """Parameters of the model: the recurrent layer G·H·(V + H + 2) plus the head H·V + V."""
    return gates * hidden * (vocab + hidden + 2) + hidden * vocab + vocab


def hidden_for_budget(gates: int, vocab: int, budget: int) -> int:
    """The hidden size H whose model's :func:`parameter_count` is closest to ``budget``."""
    best = min(range(1, 4096), key=lambda h: abs(parameter_count(gates, vocab, h) - budget))
    return best


# ----------------------------------------------------------------- the model

def make_model(name: str, vocab: int, hidden: int, rng, dtype=np.float32) -> "CharModel":
    """A :class:`CharModel` with the recurrent layer ``name`` (a key of ARCHITECTURES)."""
    module, cls, _, options = ARCHITECTURES[name]
    layer_cls = getattr(importlib.import_module(module), cls)
    rng = np.random.default_rng(rng)
    return CharModel(layer_cls(vocab, hidden, rng=rng, dtype=dtype, **options), vocab, rng=rng, dtype=dtype)


def one_hot(ids: np.ndarray, vocab: int, dtype=np.float32) -> np.ndarray:
    """ids: (N, T) ints in [0, V) -> (N, T, V) one-hot rows."""
    return np.eye(vocab, dtype=dtype)[ids]


class CharModel(Layer):
    """ids (N, T) -> logits (N, T, V) through a recurrent layer and a Linear head.

    forward(ids, state=None) -> (logits, state): state is the recurrent layer's (None: zeros);
    backward(dlogits) accumulates every parameter's gradient (returns nothing: the input is ids).
    """

    def __init__(self, rnn, vocab: int, rng=None, dtype=np.float32):
        self.rnn = rnn
        self.head = Linear(rnn.hidden_size, vocab, rng=rng, dtype=dtype)
        self.vocab = int(vocab)
        self.dtype = np.dtype(dtype)

    def forward(self, ids: np.ndarray, state=None):
        out, state = self.rnn.forward(one_hot(ids, self.vocab, self.dtype), state)
        return self.head.forward(out), state

    def backward(self, dlogits: np.ndarray) -> None:
        self.rnn.backward(self.head.backward(dlogits))


# ----------------------------------------------------------------- training and evaluation

def loss_on(model: CharModel, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Summed cross-entropy of the next-character predictions and the number of positions."""
    from dlfs.nn.losses import cross_entropy

    logits, _ = model.forward(x)
    loss, _ = cross_entropy(logits, y, reduction="sum")
    return loss, y.size


def mean_loss(model: CharModel, batches) -> float:
    total = count = 0
    for x, y in batches:
        loss, n = loss_on(model, x, y)
        total, count = total + loss, count + n
    return total / count


def validation_windows(ids: np.ndarray, seq_len: int, batch_size: int):
    """The whole split as consecutive windows of ``seq_len`` characters (the tail that does not
    fill a window is left out): a list of (x, y) batches, y the next characters."""
    n = (len(ids) - 1) // seq_len
    x = ids[:n * seq_len].reshape(n, seq_len)
    y = ids[1:n * seq_len + 1].reshape(n, seq_len)
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size)]


def train(model: CharModel, data, cfg: Config, eval_set, bar=None) -> dict:
    """Adam on random training windows (the same sequence of batches for every model, from
    ``cfg.seed``), clipping the global gradient norm. Returns the curve: steps, mean training
    loss since the previous point, validation loss on ``eval_set``."""
    from dlfs.data.batching import sample_blocks
    from dlfs.nn.losses import cross_entropy
    from dlfs.optim import Adam, clip_grad_norm

    params = model.parameters()
    opt = Adam(params, lr=cfg.lr)
    rng = np.random.default_rng([cfg.seed, 1])
    curve = {"step": [0], "train_loss": [None], "val_loss": [mean_loss(model, eval_set)]}
    window = []
    for step in range(1, cfg.steps + 1):
        x, y = sample_blocks(data.train, cfg.seq_len, cfg.batch_size, rng)
        logits, _ = model.forward(x)
        loss, dlogits = cross_entropy(logits, y)
        opt.zero_grad(set_to_none=False)
        model.backward(dlogits)
        clip_grad_norm(params, cfg.clip)
        opt.step()
        window.append(loss)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            curve["step"].append(step)
            curve["train_loss"].append(float(np.mean(window)))
            curve["val_loss"].append(mean_loss(model, eval_set))
            window = []
            if bar is not None:
                bar.set_postfix(val=f"{curve['val_loss'][-1]:.3f}")
        if bar is not None:
            bar.update(1)
    return curve


# ----------------------------------------------------------------- sampling

def sample(model: CharModel, vocab, prompt: str, length: int, temperature: float = 0.0,
           rng=None) -> str:
    """``length`` characters after ``prompt``. temperature 0: greedy (the most likely character
    each time); otherwise sample from softmax(logits / temperature). The prompt is read once,
    then one character at a time, carrying the recurrent state."""
    from dlfs.numerics import softmax

    rng = np.random.default_rng(rng)
    ids = vocab.encode(prompt)[None, :]
    logits, state = model.forward(ids)
    out = []
    for _ in range(length):
        last = logits[0, -1].astype(np.float64)
        if temperature <= 0:
            nxt = int(np.argmax(last))
        else:
            p = softmax(last / temperature)
            nxt = int(rng.choice(len(p), p=p / p.sum()))
        out.append(nxt)
        logits, state = model.forward(np.array([[nxt]]), state)
    return vocab.decode(out)


# ----------------------------------------------------------------- plot and run

def plot(result: dict, path: str | Path) -> Path:
    """Validation loss (solid) and training loss (dashed) against the step, one colour per model."""
    from dlfs.viz.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colours = {"rnn": "tab:red", "lstm": "tab:blue", "lstm-fb1": "tab:purple", "gru": "tab:green"}
    for name, run in result["runs"].items():
        c = run["curve"]
        label = (f"{name.upper()} H={run['hidden']} ({run['parameters']:,} params): "
                 f"whole val split {run['val_loss']:.3f}")
        ax.plot(c["step"], c["val_loss"], color=colours.get(name), lw=2, marker="o", ms=3, label=label)
        ax.plot(c["step"][1:], c["train_loss"][1:], color=colours.get(name), lw=1, ls="--", alpha=0.7)
    cfg = result["config"]
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy (nats per character)")
    ax.set_title(f"Tiny Shakespeare, same parameter count; batch {cfg['batch_size']} × {cfg['seq_len']} "
                 f"chars, Adam {cfg['lr']:g}\nsolid: validation (fixed windows), dashed: training")
    ax.set_ylim(1.0, 4.5)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def train_and_measure(name: str, V: int, budget: int, data, cfg: Config, eval_set, full_val,
                      progress: bool) -> dict:
    """Build the model ``name`` with the hidden size that fits ``budget``, train it, measure
    the validation loss on ``full_val`` and sample from it."""
    from tqdm import tqdm

    hidden = hidden_for_budget(ARCHITECTURES[name][2], V, budget)
    model = make_model(name, V, hidden, rng=cfg.seed)
    bar = tqdm(total=cfg.steps, unit="step", desc=f"{name} H={hidden}", disable=not progress or None)
    t0, c0 = time.perf_counter(), time.process_time()
    curve = train(model, data, cfg, eval_set, bar)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    bar.close()
    samples = {"greedy": sample(model, data.vocab, PROMPT, SAMPLE_CHARS, 0.0),
               "temperature 0.8": sample(model, data.vocab, PROMPT, SAMPLE_CHARS, 0.8, rng=cfg.seed)}
    return {"hidden": hidden, "parameters": model.num_parameters(), "val_loss": mean_loss(model, full_val),
            "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu, 1), "curve": curve,
            "samples": samples}


def run(cfg: Config = Config(), data_dir: str | None = None, out_dir: str | Path = ".",
        progress: bool = True, log=print) -> dict:
    """Train each model of ``cfg.models`` under the same budget; save the JSON and the figure in
    ``out_dir``. Returns the result dict."""
    from threadpoolctl import threadpool_limits

    from dlfs.data import load_shakespeare
    from dlfs.data.batching import sample_blocks
    from dlfs.io import atomic_write_json

    data = load_shakespeare(data_dir)
    V = data.vocab_size
    budget = parameter_count(ARCHITECTURES["gru"][2], V, cfg.gru_hidden)
    eval_rng = np.random.default_rng([cfg.seed, 2])
    eval_set = [sample_blocks(data.val, cfg.seq_len, cfg.batch_size, eval_rng) for _ in range(cfg.eval_batches)]
    full_val = validation_windows(data.val, cfg.seq_len, 256)
    n_windows = sum(len(x) for x, _ in full_val)
    result = {
        "config": asdict(cfg),
        "budget": f"same parameter count (about {budget:,}: the GRU with H={cfg.gru_hidden}); same steps, "
                  "batch, sequence length, Adam learning rate, clipping, seed and batches",
        "data": {"name": "tinyshakespeare", "vocab": V, "train_chars": int(data.train.size),
                 "val_chars": int(data.val.size), "val_windows": n_windows},
        "val_loss_measured_on": f"the whole validation split as {n_windows:,} consecutive windows of "
                                f"{cfg.seq_len} characters, each from a zero state",
        "curve_measured_on": f"{cfg.eval_batches} fixed batches of {cfg.batch_size} random validation windows",
        "runs": {},
    }
    for name in cfg.models:
        with threadpool_limits(limits=1, user_api="blas"):
            result["runs"][name] = train_and_measure(name, V, budget, data, cfg, eval_set, full_val, progress)
        r = result["runs"][name]
        log(f"{name.upper()}: H={r['hidden']}, {r['parameters']:,} parameters, validation loss "
            f"{r['val_loss']:.4f} nats/char, training {r['train_seconds']:.0f} s wall, "
            f"{r['train_cpu_seconds']:.0f} s CPU")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "char_lm.json", result)
    figure = plot(result, out / "char_lm.png")
    log(f"saved {out / 'char_lm.json'} and {figure}")
    return result


def main(argv: list[str] | None = None) -> int:
    p = common.parser("char_lm", "Train a vanilla RNN, an LSTM and a GRU as character-level language "
                                 "models on Tiny Shakespeare with the same budget.", RESULTS,
                      data="tinyshakespeare/")
    d = Config()
    p.add_argument("--gru-hidden", type=int, default=d.gru_hidden,
                   help=f"the GRU's hidden size; the others get the same parameter count (default {d.gru_hidden})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"training steps (default {d.steps})")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--seq-len", type=int, default=d.seq_len)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--models", default=",".join(d.models),
                   help=f"comma-separated, from {','.join(ARCHITECTURES)} (default {','.join(d.models)}; "
                        "lstm-fb1 is the LSTM with forget_bias=1.0)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = p.parse_args(argv)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in models if m not in ARCHITECTURES]
    if unknown or not models:
        p.error(f"--models takes names from {', '.join(ARCHITECTURES)}, got {args.models!r}")
    if min(args.gru_hidden, args.steps, args.batch_size, args.seq_len, args.eval_every) < 1:
        p.error("--gru-hidden, --steps, --batch-size, --seq-len and --eval-every must be positive")
    cfg = Config(gru_hidden=args.gru_hidden, steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len,
                 lr=args.lr, eval_every=args.eval_every, seed=args.seed, models=models)
    return common.report_data_errors(
        lambda: run(cfg, data_dir=args.data_dir, out_dir=common.output_dir(args), progress=not args.no_progress))


if __name__ == "__main__":
    sys.exit(main())
