"""Topic 23: greedy search and beam search, against step-by-step argmax and against the exact
best output found by enumerating every possible output of a toy decoder."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.seq2seq.beam import beam_search, decode, greedy_decode, length_normalizer
from dlfs.seq2seq.encoder_decoder import Seq2Seq
from dlfs.testing import assert_close

N = 3


def run_beam(toy, model, beam_size, max_len, alpha=0.0):
    return beam_search(model.step, model.h0, model.bias, N, beam_size=beam_size, bos_id=toy.BOS,
                       eos_id=toy.EOS, pad_id=toy.PAD, max_len=max_len, length_penalty=alpha)


def run_greedy(toy, model, max_len):
    return greedy_decode(model.step, model.h0, model.bias, N, bos_id=toy.BOS, eos_id=toy.EOS,
                         pad_id=toy.PAD, max_len=max_len)


def output_of(decoded, n):
    return tuple(int(t) for t in decoded.tokens[n, :decoded.lengths[n]])


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_beam_as_large_as_all_outputs_finds_the_exact_best(toy, seed, alpha):
    """4 output tokens, outputs up to 4 long: 121 possible outputs per source, beam 121."""
    model, max_len = toy.ToyDecoder(seed), 4
    count = len(list(toy.all_outputs(max_len)))
    got = run_beam(toy, model, count, max_len, alpha)
    for n in range(N):
        best, score = toy.brute_force_best(model, n, max_len, alpha)
        assert output_of(got, n) == best, (f"source {n} (seed {seed}, length penalty {alpha}): beam search with "
                                           f"beam {count} returned {output_of(got, n)}, the best output is {best}")
        assert_close(got.scores[n], score, rtol=1e-10, atol=1e-12, what=f"score of source {n}'s best output")
        assert got.finished[n] == (best[-1] == toy.EOS) and got.lengths[n] == len(best)
        assert np.all(got.tokens[n, got.lengths[n]:] == toy.PAD), "after the end token: padding"


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 10_000), max_len=st.integers(1, 3), alpha=st.sampled_from([0.0, 0.6, 2.0]))
def test_exhaustive_beam_equals_enumeration_for_random_decoders(toy, seed, max_len, alpha):
    model = toy.ToyDecoder(seed)
    count = len(list(toy.all_outputs(max_len)))
    got = run_beam(toy, model, count, max_len, alpha)
    for n in range(N):
        best, _ = toy.brute_force_best(model, n, max_len, alpha)
        assert output_of(got, n) == best, f"source {n}: beam gave {output_of(got, n)}, enumeration {best}"


def test_greedy_takes_the_argmax_at_every_step_and_stops_at_the_end_token(toy):
    model, max_len = toy.ToyDecoder(3), 6
    got = run_greedy(toy, model, max_len)
    for n in range(N):
        h, bias, last, out, total = model.h0[n:n + 1], model.bias[n:n + 1], np.array([toy.BOS]), [], 0.0
        for _ in range(max_len):
            logp, h, _ = model.step(last, h, bias)
            tok = int(np.argmax(logp[0]))
            out.append(tok)
            total += float(logp[0, tok])
            last = np.array([tok])
            if tok == toy.EOS:
                break
        assert output_of(got, n) == tuple(out), f"source {n}: greedy gave {output_of(got, n)}, argmax steps {out}"
        assert_close(got.scores[n], total, rtol=1e-12, atol=1e-12, what=f"greedy score of source {n}")
        assert got.finished[n] == (out[-1] == toy.EOS)
        assert np.all(got.tokens[n, len(out):] == toy.PAD)


def test_beam_of_one_is_greedy(toy):
    for seed in range(4):
        model = toy.ToyDecoder(seed)
        g, b = run_greedy(toy, model, 5), run_beam(toy, model, 1, 5)
        for n in range(N):
            assert output_of(b, n) == output_of(g, n), f"seed {seed}, source {n}: beam 1 {output_of(b, n)}, greedy {output_of(g, n)}"
        assert_close(b.scores, g.scores, rtol=1e-12, atol=1e-12, what="scores of beam 1 and greedy")


def test_each_source_is_searched_as_if_it_were_alone(toy):
    model = toy.ToyDecoder(5)
    together = run_beam(toy, model, 3, 5)
    for n in range(N):
        alone = beam_search(model.step, model.h0[n:n + 1], model.bias[n:n + 1], 1, beam_size=3, bos_id=toy.BOS,
                            eos_id=toy.EOS, pad_id=toy.PAD, max_len=5)
        assert output_of(together, n) == output_of(alone, 0), f"source {n} in the batch and alone differ"
        assert_close(together.scores[n], alone.scores[0], rtol=1e-12, atol=1e-12, what=f"score of source {n}")


def test_outputs_without_an_end_token_are_cut_at_max_len(toy):
    model = toy.ToyDecoder(6)
    model.U[:, toy.EOS] = 0.0
    model.bias[:, toy.EOS] = -1e9              # the end token is (numerically) never chosen
    for got in (run_greedy(toy, model, 3), run_beam(toy, model, 4, 3)):
        assert not got.finished.any() and np.all(got.lengths == 3), (got.finished, got.lengths)
        assert got.tokens.shape == (N, 3) and not (got.tokens == toy.EOS).any()


def test_the_length_penalty_is_gnmts():
    assert_close(length_normalizer(np.array([1, 7]), 0.0), np.ones(2), rtol=0, atol=0, what="alpha 0: no penalty")
    assert_close(length_normalizer(np.array([1, 7]), 1.0), np.array([1.0, 2.0]), rtol=1e-15, atol=0,
                 what="((5 + L) / 6)^1")


def test_decoding_a_seq2seq_model(batch):
    """decode() on Topic 23's model: greedy equals beam 1, and a wider beam never scores lower here."""
    src, lengths, _ = batch(1)
    model = Seq2Seq(7, 6, embed_dim=4, hidden_size=5, rng=3, dtype=np.float64)
    g = decode(model, src, lengths, max_len=6)
    b1 = decode(model, src, lengths, max_len=6, beam_size=1)
    b = beam_search(model.step, *model.start(src, lengths), len(src), beam_size=1, bos_id=model.bos_id,
                    eos_id=model.eos_id, pad_id=model.pad_id, max_len=6)
    assert np.array_equal(g.tokens, b1.tokens) and np.array_equal(g.tokens[:, :b.tokens.shape[1]], b.tokens)
    assert_close(b.scores, g.scores, rtol=1e-12, atol=1e-12, what="beam 1 vs greedy on a Seq2Seq")
    exhaustive = decode(model, src, lengths, max_len=2, beam_size=6 * 6)
    for n in range(len(src)):
        assert exhaustive.scores[n] >= decode(model, src, lengths, max_len=2).scores[n] - 1e-12
