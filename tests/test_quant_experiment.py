"""Topic 33's experiment quantises a finished Milestone 30 checkpoint without writing it, and
refuses a checkpoint of another model or one that stopped early."""

import hashlib

import numpy as np
import pytest

from dlfs.errors import DataError
from dlfs.milestones.mini_gpt import SMOKE, with_steps
from dlfs.quant.experiment import load_trained
from dlfs.transformer.gpt import GPT, GPTConfig
from dlfs.transformer.training import fit


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-step smoke-sized run's checkpoint and its model."""
    path = tmp_path_factory.mktemp("ckpt") / "run.npz"
    p = with_steps(SMOKE, 3)
    data = np.random.default_rng(0).integers(0, SMOKE.model.vocab_size, 2000)
    model = GPT(p.model, rng=0)
    fit(model, data, data, p.train, checkpoint=path, progress=False, log=lambda s: None)
    return path, model


def test_the_checkpoint_is_loaded_and_left_untouched(trained):
    path, model = trained
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    fresh = GPT(SMOKE.model, rng=1)
    source = load_trained(fresh, path, 3)
    assert path.read_bytes() and hashlib.sha256(path.read_bytes()).hexdigest() == before, \
        "the checkpoint file changed while it was loaded"
    assert source["step"] == 3 and source["sha256"] == before and source["trained_here"] is False, \
        f"expected step 3, the file's SHA-256 and trained_here False, got {source}"
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[name], value, err_msg=f"{name} was not loaded")


def test_an_unfinished_checkpoint_is_refused(trained):
    path, _ = trained
    with pytest.raises(DataError, match="stopped after step 3 of 10"):
        load_trained(GPT(SMOKE.model, rng=1), path, 10)


def test_a_checkpoint_of_another_model_is_refused(trained):
    path, _ = trained
    other = GPT(GPTConfig(**{**SMOKE.model.as_dict(), "n_embd": 32}), rng=1)
    with pytest.raises(DataError, match="holds the model"):
        load_trained(other, path, 3)
