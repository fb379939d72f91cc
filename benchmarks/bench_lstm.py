"""Module 3 benchmark: one LSTM layer, forward + backward, against ``torch.nn.LSTM`` on CPU.

    python -m benchmarks.bench_lstm [rounds]        # prints `rounds` (default 3) comparisons
    python -m benchmarks.bench_lstm 3 --one-thread  # both sides on one thread (BLAS, torch, dlfs)
    python -m benchmarks.run lstm                   # one comparison, recorded in results.json

Both sides get the same float32 input (N = 64 sequences, T = 64 steps, D = 128 features), the
same weights (ours loaded into torch's module) and the same upstream gradient of the outputs;
both compute the gradient of the input (``x.requires_grad``) and of every parameter.
"""

from __future__ import annotations

import sys

import numpy as np

from benchmarks.harness import compare, try_torch


def lstm_step(batch: int = 64, steps: int = 64, input_size: int = 128, hidden: int = 128,
              repeats: int = 15, torch_threads: int | None = None):
    from dlfs.rnn.lstm import LSTM

    torch = try_torch()
    if torch and torch_threads:
        torch.set_num_threads(torch_threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, steps, input_size), dtype=np.float32)
    dout = rng.standard_normal((batch, steps, hidden), dtype=np.float32)
    layer = LSTM(input_size, hidden, rng=0)

    def ours():
        layer.forward(x)
        layer.backward(dout)

    theirs = None
    if torch:
        module = torch.nn.LSTM(input_size, hidden, batch_first=True)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
        tx = torch.from_numpy(x).requires_grad_(True)
        tdout = torch.from_numpy(dout)

        def theirs():
            out, _ = module(tx)
            out.backward(tdout)

    # forward: 2·N·T·4H·(D + H) multiply-adds ×1; backward: twice that (input and weight gradients)
    flops = 3 * 2 * batch * steps * 4 * hidden * (input_size + hidden)
    name = f"LSTM layer fwd+bwd, N={batch} T={steps} D={input_size} H={hidden}"
    return compare(name, ours, theirs, repeats=repeats, warmup=3, flops=flops, goal="ratio <= 2.0")


BENCHMARKS = [lstm_step]


def main(argv: list[str]) -> None:
    one = "--one-thread" in argv
    args = [a for a in argv if a != "--one-thread"]
    rounds = int(args[0]) if args else 3
    if one:
        import os

        from threadpoolctl import threadpool_limits

        os.environ["DLFS_NUM_THREADS"] = "1"          # no parallel blocks of the batch
        threadpool_limits(1, user_api="blas")          # NumPy's BLAS on one thread
    for _ in range(rounds):
        r = lstm_step(torch_threads=1 if one else None)
        print(("one thread: " if one else "") + r.line(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
