"""Topic 30 benchmarks: a GPT training step (forward + backward + AdamW, with gradient clipping)
against the same model in PyTorch, and the kernels inside it one by one.

    python -m benchmarks.bench_gpt [--threads N] [--rounds R] [--only step|kernels]
    python -m benchmarks.run gpt

The PyTorch model is built from ``torch.nn`` parts with our weights loaded: an ``nn.Embedding``,
a learned position table, pre-LN ``nn.TransformerEncoderLayer``s (tanh GELU, causal mask,
``is_causal=True``, so torch uses its fused scaled-dot-product attention), a final
``nn.LayerNorm`` and the head tied to the embedding; ``torch.optim.AdamW`` with the same two
parameter groups (decay on the 2-D weights) and ``clip_grad_norm_``. Both sides run float32 on
the same number of threads (NumPy's BLAS limited with threadpoolctl, ``torch.set_num_threads``),
alternately on the same batch (``benchmarks.harness.compare``: medians of the repeats, ratio
ours / torch). Each row is measured twice: wall time, and CPU time of the process
(``time.process_time``), which on a machine shared with other jobs counts only the time this
process actually ran. ``--rounds`` repeats every measurement to report a range.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import numpy as np

from benchmarks.harness import BenchResult, compare, try_torch

# (name, GPTConfig keywords, batch size)
CONFIGS = {
    "nanogpt-cpu": (dict(block_size=64, n_layer=4, n_head=4, n_embd=128), 12),
    "milestone-30": (dict(block_size=128, n_layer=4, n_head=4, n_embd=128), 16),
}


def compare_cpu(name: str, ours: Callable[[], object], theirs: Callable[[], object], *, repeats: int = 15,
                warmup: int = 3, goal: str = "") -> BenchResult:
    """Like ``harness.compare``, with the process's CPU time instead of the wall time."""
    for _ in range(warmup):
        ours()
        theirs()
    a, b = [], []
    for _ in range(repeats):
        t = time.process_time()
        ours()
        a.append((time.process_time() - t) * 1000)
        t = time.process_time()
        theirs()
        b.append((time.process_time() - t) * 1000)
    o, t = statistics.median(a), statistics.median(b)
    return BenchResult(name + " [CPU time]", o, t, o / t, None, goal)


def torch_gpt(torch, model):
    """The PyTorch twin of a dlfs GPT, with its weights (float32)."""
    from dlfs.transformer.encoder import torch_names

    cfg = model.config
    D = cfg.n_embd
    approximate = "tanh" if cfg.activation == "gelu_tanh" else "none"

    class TorchGPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = torch.nn.Embedding(cfg.vocab_size, D)
            self.wpe = torch.nn.Parameter(torch.zeros(cfg.block_size, D))
            self.blocks = torch.nn.ModuleList([torch.nn.TransformerEncoderLayer(
                D, cfg.n_head, 4 * D, dropout=cfg.dropout,
                activation=lambda x: torch.nn.functional.gelu(x, approximate=approximate),
                batch_first=True, norm_first=True) for _ in range(cfg.n_layer)])
            self.ln_f = torch.nn.LayerNorm(D)

        def forward(self, idx):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe[:T]
            mask = torch.nn.Transformer.generate_square_subsequent_mask(T)
            for block in self.blocks:
                x = block(x, src_mask=mask, is_causal=True)
            return self.ln_f(x) @ self.wte.weight.T

    tm = TorchGPT()
    state = {"wte.weight": model.wte.W.data, "wpe": model.wpe.data,
             "ln_f.weight": model.ln_f.gamma.data, "ln_f.bias": model.ln_f.beta.data}
    for i, block in enumerate(model.blocks):
        params = dict(block.named_parameters())
        for ours, theirs in torch_names(block).items():
            value = params[ours].data
            state[f"blocks.{i}.{theirs}"] = value.T if value.ndim == 2 else value
    tm.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()})
    return tm


def gpt_step(torch, config: str = "nanogpt-cpu", *, repeats: int = 15) -> list[BenchResult]:
    """Wall-time and CPU-time rows of one configuration. ``torch``: the module, its threads set."""
    from dlfs.transformer.gpt import GPT, GPTConfig
    from dlfs.transformer.training import TrainConfig, adamw_groups, train_step

    kw, B = CONFIGS[config]
    cfg = GPTConfig(vocab_size=65, activation="gelu_tanh", **kw)
    model = GPT(cfg, rng=0)
    tc = TrainConfig()
    opt = adamw_groups(model, tc)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 65, (B, cfg.block_size))
    y = rng.integers(0, 65, (B, cfg.block_size))

    def ours():
        train_step(model, x, y, opt, tc.grad_clip)

    tm = torch_gpt(torch, model)
    decay = [p for p in tm.parameters() if p.dim() >= 2]
    no_decay = [p for p in tm.parameters() if p.dim() < 2]
    topt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr, betas=(tc.beta1, tc.beta2))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def theirs():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tm(tx).reshape(-1, cfg.vocab_size), ty.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tm.parameters(), tc.grad_clip)
        topt.step()

    name = (f"GPT step {config}: {cfg.n_layer}L {cfg.n_head}H D{cfg.n_embd} T{cfg.block_size} B{B} "
            f"({model.num_parameters() / 1e6:.2f} M params)")
    flops = 6.0 * B * cfg.block_size * (model.num_parameters() - cfg.block_size * cfg.n_embd) \
        + 12.0 * cfg.n_layer * B * cfg.block_size ** 2 * cfg.n_embd           # 6N per token + attention
    wall = compare(name, ours, theirs, repeats=repeats, flops=flops, goal="ratio <= 1.5")
    cpu = compare_cpu(name, ours, theirs, repeats=repeats, goal="ratio <= 1.5")
    tokens = B * cfg.block_size
    print(f"  tokens/s: ours {tokens / wall.ours_ms * 1e3:,.0f} wall, {tokens / cpu.ours_ms * 1e3:,.0f} CPU; "
          f"torch {tokens / wall.torch_ms * 1e3:,.0f} wall, {tokens / cpu.torch_ms * 1e3:,.0f} CPU", flush=True)
    return [wall, cpu]


def kernels(torch, B: int = 12, T: int = 64, D: int = 128, H: int = 4, V: int = 65) -> list[BenchResult]:
    """Forward + backward of each kernel of the step, at the nanoGPT CPU configuration's shapes."""
    from dlfs.attention.multi_head import MultiHeadAttention
    from dlfs.nn.activations import GELU
    from dlfs.nn.embedding import Embedding
    from dlfs.nn.losses import cross_entropy
    from dlfs.nn.normalization import LayerNorm
    from dlfs.transformer.encoder import EncoderBlock

    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, D), dtype=np.float32)
    dx = rng.standard_normal((B, T, D), dtype=np.float32)
    h = rng.standard_normal((B, T, 4 * D), dtype=np.float32)
    dh = rng.standard_normal((B, T, 4 * D), dtype=np.float32)
    logits = rng.standard_normal((B, T, V), dtype=np.float32)
    ids = rng.integers(0, V, (B, T))
    tx, tdx = torch.tensor(x, requires_grad=True), torch.tensor(dx)
    th, tdh = torch.tensor(h, requires_grad=True), torch.tensor(dh)
    tlogits, tids = torch.tensor(logits, requires_grad=True), torch.from_numpy(ids)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T)
    out = []

    def both(name, ours, theirs):
        out.extend([compare(name, ours, theirs, repeats=30), compare_cpu(name, ours, theirs, repeats=30)])

    ln, tln = LayerNorm(D), torch.nn.LayerNorm(D)
    both(f"LayerNorm({D}) fwd+bwd ({B}x{T})", lambda: (ln.forward(x), ln.backward(dx)),
         lambda: tln(tx).backward(tdx))
    gelu = GELU("tanh")
    both(f"GELU tanh fwd+bwd ({B}x{T}x{4 * D})", lambda: (gelu.forward(h), gelu.backward(dh)),
         lambda: torch.nn.functional.gelu(th, approximate="tanh").backward(tdh))
    mha, tmha = MultiHeadAttention(D, H), torch.nn.MultiheadAttention(D, H, batch_first=True)
    both(f"causal MHA fwd+bwd ({B}x{T}x{D}, {H} heads)", lambda: (mha.forward(x, causal=True), mha.backward(dx)),
         lambda: tmha(tx, tx, tx, attn_mask=mask, is_causal=True, need_weights=False)[0].backward(tdx))
    both(f"softmax cross-entropy fwd+bwd ({B}x{T}x{V})", lambda: cross_entropy(logits, ids),
         lambda: torch.nn.functional.cross_entropy(tlogits.reshape(-1, V), tids.reshape(-1)).backward())
    emb, temb = Embedding(V, D), torch.nn.Embedding(V, D)
    both(f"Embedding({V}, {D}) fwd+bwd ({B}x{T})", lambda: (emb.forward(ids), emb.backward(dx)),
         lambda: temb(tids).backward(tdx))
    for activation, approximate in (("gelu_tanh", "tanh"), ("gelu", "none")):
        block = EncoderBlock(D, H, 4 * D, dropout=0.0, activation=activation, norm_first=True)
        tblock = torch.nn.TransformerEncoderLayer(
            D, H, 4 * D, dropout=0.0, batch_first=True, norm_first=True,
            activation=lambda t, a=approximate: torch.nn.functional.gelu(t, approximate=a))
        both(f"pre-LN encoder block, causal, {activation} ({B}x{T}x{D})",
             lambda b=block: (b.forward(x, causal=True), b.backward(dx)),
             lambda tb=tblock: tb(tx, src_mask=mask, is_causal=True).backward(tdx))
    return out


def main(argv: list[str]) -> list[BenchResult]:
    from threadpoolctl import threadpool_limits

    from dlfs.parallel import limit_workers
    from dlfs.memory import keep_freed_memory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for ours, torch threads (default 1)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every measurement (a range over rounds)")
    parser.add_argument("--only", choices=("step", "kernels"), default=None)
    args = parser.parse_args(argv)
    torch = try_torch()              # (it sets torch's threads to the CPU count: set them after)
    if torch is None:
        sys.exit("PyTorch is the baseline of these benchmarks: pip install -e '.[oracle]'")
    torch.set_num_threads(args.threads)
    keep_freed_memory()            # process-wide: both sides get the same allocator behaviour
    results = []
    with threadpool_limits(args.threads, user_api="blas"), limit_workers(args.threads):
        for _ in range(args.rounds):
            if args.only in (None, "step"):
                for config in CONFIGS:
                    for r in gpt_step(torch, config):
                        print(r.line(), flush=True)
                        results.append(r)
            if args.only in (None, "kernels"):
                for r in kernels(torch):
                    print(r.line(), flush=True)
                    results.append(r)
    return results


def one_thread_step(config: str) -> BenchResult:
    """The wall-time row of :func:`gpt_step` on one thread each (``python -m benchmarks.run gpt``)."""
    from threadpoolctl import threadpool_limits

    from dlfs.parallel import limit_workers
    from dlfs.memory import keep_freed_memory

    torch = try_torch()
    torch.set_num_threads(1)
    keep_freed_memory()
    with threadpool_limits(1, user_api="blas"), limit_workers(1):
        wall, _ = gpt_step(torch, config)
    wall.name += ", 1 thread"
    return wall


BENCHMARKS = [lambda: one_thread_step("nanogpt-cpu"), lambda: one_thread_step("milestone-30")]

if __name__ == "__main__":
    main(sys.argv[1:])
