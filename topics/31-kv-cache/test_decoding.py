"""Topic 31: generation with the cache — batches of prompts of different lengths (left padding)
equal one-by-one generation; past block_size, each step equals the model run on its window."""

import numpy as np
import pytest

from dlfs.testing import assert_close
from dlfs.transformer import decoding as gen
from dlfs.transformer.gpt import GPT, GPTConfig
from dlfs.transformer.sampling import generate

CFG = GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=4, n_embd=16)


def greedy(z):
    return z.argmax(axis=-1)


@pytest.fixture(scope="module")
def model():
    return GPT(CFG, rng=0, dtype=np.float64).eval()


def test_window_positions_count_from_the_first_real_token():
    pad = np.array([[True, True, False, False, False],
                    [False, False, False, False, False]])
    assert_close(gen.window_positions(pad, 0, 5), np.array([[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]),
                 what="positions of the whole rows")
    assert_close(gen.window_positions(pad, 3, 5), np.array([[0, 1], [0, 1]]), what="positions in a window from column 3")


def test_batched_left_padded_generation_equals_one_by_one(model):
    prompts = [np.array([1, 2, 3, 4, 5]), np.array([7]), np.array([3, 3, 9])]
    ids, pad = gen.left_pad(prompts)
    assert ids.shape == (3, 5) and pad.sum() == 2 + 4
    batched = gen.decode(model, ids, pad, 9, greedy)
    for b, p in enumerate(prompts):
        alone = gen.decode(model, p[None], None, 9, greedy)
        assert_close(batched.logits[b], alone.logits[0], atol=1e-12, rtol=0, what=f"logits of prompt {b} in the batch")
        assert_close(batched.ids[b, pad[b].sum():], alone.ids[0], what=f"tokens of prompt {b}")


def test_each_step_equals_the_full_model_on_its_window(model):
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    out = gen.decode(model, prompt, None, 40, greedy, keep=6)
    # the cache fills at 16 columns, then is rebuilt from the last 6: the window jumps by 16 + 1 − 6
    assert_close(out.window_start[[0, 13, 14, 24, 25]], np.array([0, 0, 11, 11, 22]), what="window starts")
    for i, start in enumerate(out.window_start):
        full = model.forward(out.ids[:, start:3 + i])[:, -1]
        assert_close(out.logits[:, i], full, atol=1e-12, rtol=0, what=f"logits of new token {i}")
    assert_close(out.ids[:, 3:], out.logits.argmax(-1), what="greedy tokens")


def test_keeping_the_whole_block_reproduces_topic30_generate(model):
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    expected = generate(model, prompt, 30, temperature=0.9, top_k=8, rng=5)
    got = gen.generate_cached(model, prompt, 30, temperature=0.9, top_k=8, rng=5, keep=CFG.block_size)
    assert_close(got, expected, what="tokens sampled with keep = block_size")


def test_generate_cached_returns_each_prompt_with_its_tokens(model):
    prompts = [np.array([4, 4, 1]), np.array([2])]
    out = gen.generate_cached(model, prompts, 5, top_k=1, rng=0)
    alone = [gen.generate_cached(model, p, 5, top_k=1, rng=0) for p in prompts]
    for b in range(2):
        assert_close(out[b], alone[b], what=f"prompt {b} with its new tokens")
        assert_close(out[b][:prompts[b].size], prompts[b], what=f"prompt {b} kept")
    with pytest.raises(ValueError, match="keep"):
        gen.generate_cached(model, prompts[0], 3, keep=CFG.block_size + 1)
