"""Topic 18 — vanishing gradients, measured: how much of a loss's gradient at the last step of a
sequence reaches its first step, in a vanilla RNN and in an LSTM, at standard initialisation.

For each sequence length T, each model and each seed, a freshly initialised layer (PyTorch's
initialisation, ``U(-1/√H, 1/√H)`` for every parameter) reads N random sequences
``x ~ N(0, 1)``; the loss is ``L = Σ_n ⟨u_n, h_T,n⟩`` with a random unit vector ``u_n`` per
sequence, so the gradient enters at the last step only. BPTT then gives ``∂L/∂x_t`` for every
step; the number reported for T is ``‖∂L/∂x_0‖`` (the Euclidean norm per sequence, averaged over
the N sequences), the gradient that reaches step 0 after crossing all T − 1 transitions.
Over seeds the values are averaged on a log scale (the geometric mean), with their range.
Everything runs in float64, so that norms far below float32's range are still measured.

``--weight-hh-scale s`` multiplies the recurrent weights after initialisation (s = 4 shows the
opposite problem, exploding gradients). Models: the vanilla tanh RNN (``dlfs.rnn.vanilla.RNN``), the LSTM (``dlfs.rnn.lstm.LSTM``) as
PyTorch initialises it, and the LSTM with ``forget_bias=1.0``.

    python -m dlfs.experiments.vanishing_gradients [--out results/topic-18] [--seeds 8]
    python -m dlfs.experiments.vanishing_gradients --weight-hh-scale 4 --out /tmp/exploding

Saves ``vanishing_gradients.json`` (the numbers) and ``vanishing_gradients.png`` (the gradient
reaching step 0 against T; the gradient at every step of the longest sequence) in ``--out``.
About half a minute on one CPU core with the defaults.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dlfs.experiments import common

RESULTS = "topic-18"        # results/topic-18/ (see dlfs.experiments.common)
MODELS = ("rnn", "lstm", "lstm_forget_bias_1")
LABELS = {"rnn": "vanilla RNN (tanh)", "lstm": "LSTM (PyTorch init)", "lstm_forget_bias_1": "LSTM, forget_bias = 1"}


@dataclass(frozen=True)
class Config:
    lengths: tuple[int, ...] = (5, 10, 20, 50, 100, 200)
    input_size: int = 32
    hidden_size: int = 128
    batch: int = 16
    seeds: int = 8
    weight_hh_scale: float = 1.0       # multiplies every weight_hh after initialisation (4: exploding)


def make_layer(model: str, cfg: Config, seed: int):
    from dlfs.rnn.lstm import LSTM
    from dlfs.rnn.vanilla import RNN

    if model == "rnn":
        layer = RNN(cfg.input_size, cfg.hidden_size, rng=seed, dtype=np.float64)
    elif model == "lstm":
        layer = LSTM(cfg.input_size, cfg.hidden_size, rng=seed, dtype=np.float64)
    elif model == "lstm_forget_bias_1":
        layer = LSTM(cfg.input_size, cfg.hidden_size, rng=seed, dtype=np.float64, forget_bias=1.0)
    else:
        raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")
    layer.weight_hh_l0.data *= cfg.weight_hh_scale
    return layer


def step_gradient_norms(model: str, cfg: Config, T: int, seed: int) -> np.ndarray:
    """‖∂L/∂x_t‖ for t = 0 … T−1 (mean over the batch) for one initialisation and one batch."""
    rng = np.random.default_rng([seed, T])
    layer = make_layer(model, cfg, seed)
    x = rng.standard_normal((cfg.batch, T, cfg.input_size))
    u = rng.standard_normal((cfg.batch, cfg.hidden_size))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    layer.forward(x)
    if model == "rnn":
        dx, _ = layer.backward(None, u)
    else:
        dx, _ = layer.backward(None, (u, None))
    return np.linalg.norm(dx, axis=2).mean(axis=0)


def measure(cfg: Config, log=print) -> dict:
    """The gradient reaching step 0 for every model, length and seed; the per-step profile of the
    longest length. Returns the result dict (what the JSON holds)."""
    result = {"config": asdict(cfg), "models": {}}
    longest = max(cfg.lengths)
    for model in MODELS:
        rows = {}
        for T in cfg.lengths:
            per_seed = [step_gradient_norms(model, cfg, T, seed) for seed in range(cfg.seeds)]
            first = np.array([p[0] for p in per_seed])
            last = np.array([p[-1] for p in per_seed])
            rows[str(T)] = {
                "grad_step0_geomean": float(10 ** np.mean(np.log10(first))),
                "grad_step0_min": float(first.min()),
                "grad_step0_max": float(first.max()),
                "grad_last_step_geomean": float(10 ** np.mean(np.log10(last))),
            }
            if T == longest:
                profile = 10 ** np.mean(np.log10(np.stack(per_seed)), axis=0)
            log(f"{LABELS[model]:<24} T = {T:>3}: ‖∂L/∂x_0‖ = {rows[str(T)]['grad_step0_geomean']:.3g} "
                f"(seeds: {first.min():.3g} … {first.max():.3g})")
        lengths = np.array(cfg.lengths, dtype=float)
        logs = np.log10([rows[str(T)]["grad_step0_geomean"] for T in cfg.lengths])
        slope = float(np.polyfit(lengths[lengths >= 20], logs[lengths >= 20], 1)[0])
        result["models"][model] = {
            "label": LABELS[model],
            "by_length": rows,
            "log10_slope_per_step": slope,
            "profile_longest": profile.tolist(),
        }
    return result


def plot(result: dict, path: str | Path) -> Path:
    """Two panels: ‖∂L/∂x_0‖ against T (log scale, seed range shaded); ‖∂L/∂x_t‖ at every step
    t of the longest sequence."""
    from dlfs.viz.plots import _pyplot, _save

    plt = _pyplot()
    cfg = result["config"]
    colours = {"rnn": "tab:red", "lstm": "tab:blue", "lstm_forget_bias_1": "tab:green"}
    fig, (ax_len, ax_prof) = plt.subplots(1, 2, figsize=(11, 4))
    lengths = cfg["lengths"]
    for model, r in result["models"].items():
        rows = [r["by_length"][str(T)] for T in lengths]
        ax_len.semilogy(lengths, [x["grad_step0_geomean"] for x in rows], marker="o", ms=4, color=colours[model],
                        label=f"{r['label']} ({-r['log10_slope_per_step']:.3f} decades/step)")
        ax_len.fill_between(lengths, [x["grad_step0_min"] for x in rows], [x["grad_step0_max"] for x in rows],
                            color=colours[model], alpha=0.15)
        prof = r["profile_longest"]
        ax_prof.semilogy(np.arange(len(prof)), prof, color=colours[model], label=r["label"])
    ax_len.set_xlabel("sequence length T")
    ax_len.set_ylabel("‖∂L/∂x_0‖ (geometric mean over seeds)")
    ax_len.set_title("Gradient reaching step 0 (loss on h_T only)")
    ax_len.grid(alpha=0.3, which="both")
    ax_len.legend(fontsize=8)
    ax_prof.set_xlabel(f"step t (T = {max(lengths)}; the loss is at t = {max(lengths) - 1})")
    ax_prof.set_ylabel("‖∂L/∂x_t‖")
    ax_prof.set_title("Gradient at every step of the longest sequence")
    ax_prof.grid(alpha=0.3, which="both")
    ax_prof.legend(fontsize=8)
    scaled = f", weight_hh × {cfg['weight_hh_scale']:g}" if cfg["weight_hh_scale"] != 1 else ""
    fig.suptitle(f"Gradients through time at initialisation{scaled}: D = {cfg['input_size']}, "
                 f"H = {cfg['hidden_size']}, batch {cfg['batch']}, {cfg['seeds']} seeds, float64")
    return _save(fig, path)


def run(cfg: Config = Config(), out_dir: str | Path = ".", log=print) -> dict:
    """Measure, save the JSON and the figure in ``out_dir``; return the result."""
    from dlfs.io import atomic_write_json

    t0 = time.perf_counter()
    result = measure(cfg, log)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figure = plot(result, out / "vanishing_gradients.png")
    atomic_write_json(out / "vanishing_gradients.json", result)
    for model, r in result["models"].items():
        slope = r["log10_slope_per_step"]
        log(f"{r['label']}: log10 ‖∂L/∂x_0‖ changes by {slope:.3f} per step of T (fitted over T ≥ 20)"
            + (f": a factor 10 every {-1 / slope:.1f} steps" if slope < 0 else ""))
    log(f"saved {figure} and {out / 'vanishing_gradients.json'} ({result['seconds']} s)")
    return result


def main(argv: list[str] | None = None) -> int:
    d = Config()
    p = common.parser("vanishing_gradients", "Measure the gradient reaching the first step of a sequence "
                                             "in a vanilla RNN and an LSTM at initialisation.", RESULTS)
    p.add_argument("--seeds", type=int, default=d.seeds, help=f"initialisations per point (default {d.seeds})")
    p.add_argument("--hidden-size", type=int, default=d.hidden_size, help=f"H (default {d.hidden_size})")
    p.add_argument("--lengths", type=int, nargs="+", default=list(d.lengths),
                   help=f"sequence lengths (default {' '.join(map(str, d.lengths))})")
    p.add_argument("--weight-hh-scale", type=float, default=d.weight_hh_scale,
                   help="multiply weight_hh by this after initialisation (e.g. 4 to see gradients explode)")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.hidden_size < 1 or min(args.lengths) < 1:
        p.error("need --seeds >= 1, --hidden-size >= 1 and lengths >= 1")
    run(Config(lengths=tuple(sorted(set(args.lengths))), hidden_size=args.hidden_size, seeds=args.seeds,
               weight_hh_scale=args.weight_hh_scale), out_dir=common.output_dir(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
