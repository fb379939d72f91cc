"""The experiment of Topic 24 (accuracy against input length, with and without attention): its
data and one tiny end-to-end run."""

import json

import numpy as np

from dlfs.experiments import attention_vs_length as exp
from dlfs.seq2seq.training import exact_match, length_batches


def test_copy_examples_are_the_source_as_targets_then_the_end_token():
    cfg = exp.Config(symbols=5, min_len=2, max_len=6)
    src, lengths, tgt = exp.copy_examples(np.random.default_rng(0), 50, cfg)
    assert lengths.min() >= 2 and lengths.max() <= 6 and src.shape == (50, lengths.max())
    for s, n, t in zip(src, lengths, tgt):
        assert np.all((s[:n] >= 1) & (s[:n] <= 5)) and np.all(s[n:] == exp.PAD)
        assert np.array_equal(t[:n], s[:n] + 2) and t[n] == exp.EOS and np.all(t[n + 1:] == exp.PAD)
    _, fixed, _ = exp.copy_examples(np.random.default_rng(1), 10, cfg, length=4)
    assert np.all(fixed == 4)


def test_results_go_to_the_workspace_unless_recorded(tmp_path, monkeypatch, capsys):
    import pytest

    from dlfs.course import milestones

    with pytest.raises(SystemExit):
        exp.main(["--help"])
    text = capsys.readouterr().out
    assert "--record" in text and "<workspace>/results/milestone-24" in text, text[-300:]
    monkeypatch.setenv("DLFS_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setattr(milestones, "PROJECT_ROOT", tmp_path / "project")
    args = ["--steps", "2", "--min-len", "3", "--max-len", "3", "--per-length", "2", "--hidden", "4", "--no-progress"]
    exp.main(args)
    assert (tmp_path / "ws" / "results" / "milestone-24" / "attention_vs_length.json").exists()
    exp.main(args + ["--record"])
    assert (tmp_path / "project" / "results" / "milestone-24" / "attention_vs_length.json").exists()


def test_a_tiny_run_writes_the_results_and_the_figure(tmp_path):
    code = exp.main(["--steps", "3", "--min-len", "3", "--max-len", "5", "--per-length", "4", "--hidden", "8",
                     "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    doc = json.loads((tmp_path / "attention_vs_length.json").read_text())
    assert set(doc["results"]) == {"seq2seq", "attention"} and doc["config"]["steps"] == 3
    for res in doc["results"].values():
        assert sorted(int(L) for L in res["per_length"]) == [3, 4, 5]
        assert all(0.0 <= r["exact_match"] <= r["token_accuracy"] <= 1.0 or r["exact_match"] == 0.0
                   for r in res["per_length"].values())
    assert (tmp_path / "attention_vs_length.png").stat().st_size > 1000


class Oracle:
    """A 'model' whose step knows the answers: exact_match must count it as all right."""

    pad_id, bos_id, eos_id = exp.PAD, exp.BOS, exp.EOS

    def __init__(self, targets, wrong_row=None):
        self.targets, self.wrong_row, self.offset = targets, wrong_row, 0

    def start(self, src, lengths):                 # state: (row of the batch in targets, step)
        rows = np.arange(self.offset, self.offset + len(src))
        self.offset += len(src)
        return np.stack([rows, np.zeros_like(rows)], axis=1), None

    def step(self, tokens, state, memory):
        rows, t = state[:, 0], np.minimum(state[:, 1], self.targets.shape[1] - 1)
        want = self.targets[rows, t].copy()
        if self.wrong_row is not None:              # its first token wrong
            want[(rows == self.wrong_row) & (t == 0)] = 3 if self.targets[self.wrong_row, 0] != 3 else 4
        logp = np.full((len(rows), 8), -10.0)
        logp[np.arange(len(rows)), want] = 0.0
        return logp, state + [0, 1], None


def test_exact_match_counts_whole_outputs_and_tokens():
    cfg = exp.Config(symbols=5, min_len=2, max_len=6)
    src, lengths, tgt = exp.copy_examples(np.random.default_rng(2), 20, cfg)
    perfect = exact_match(Oracle(tgt), src, lengths, tgt, batch_size=7)
    assert perfect.accuracy == 1.0 and perfect.token_accuracy == 1.0 and perfect.correct.all()
    one_off = exact_match(Oracle(tgt, wrong_row=4), src, lengths, tgt, batch_size=7)
    assert one_off.accuracy == 0.95 and not one_off.correct[4] and one_off.token_accuracy < 1.0


def test_length_batches_cover_every_example_once_with_similar_lengths():
    lengths = np.random.default_rng(3).integers(1, 30, 1000)
    batches = length_batches(lengths, 32, np.random.default_rng(4), group=8)
    together = np.concatenate(batches)
    assert sorted(together.tolist()) == list(range(1000)) and max(len(b) for b in batches) == 32
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 0.5 * np.ptp(lengths), f"a batch should hold similar lengths, mean spread {spread}"
