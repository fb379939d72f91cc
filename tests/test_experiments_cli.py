"""The experiments' command lines: a learner's run writes to the workspace, never over the
project's recorded results, unless --record is given."""


import pytest

from dlfs.course import milestones
from dlfs.experiments import common


@pytest.fixture
def roots(tmp_path, monkeypatch):
    monkeypatch.setenv("DLFS_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.setattr(milestones, "PROJECT_ROOT", tmp_path / "project")
    return tmp_path


def parse(*argv):
    return common.parser("demo", "a demo", "topic-99", data="demo/").parse_args(list(argv))


def test_results_go_to_the_workspace_by_default(roots):
    out = common.output_dir(parse())
    assert out == roots / "workspace" / "results" / "topic-99" and out.is_dir(), f"got {out}"


def test_record_writes_the_projects_results_and_out_any_folder(roots):
    assert common.output_dir(parse("--record")) == roots / "project" / "results" / "topic-99"
    assert common.output_dir(parse("--out", str(roots / "x"))) == roots / "x"


def test_a_missing_dataset_is_one_message_and_its_exit_code(capsys):
    from dlfs.errors import DataError

    def run():
        raise DataError("Tiny Shakespeare not found in /nowhere", exit_code=4)

    assert common.report_data_errors(run) == 4
    assert capsys.readouterr().err == "error: Tiny Shakespeare not found in /nowhere\n"


@pytest.mark.parametrize("module", ["attention_vs_length", "char_lm", "length_extrapolation", "moe_vs_dense",
                                    "plain_vs_residual", "selective_copying", "speculative", "ssm_numerics",
                                    "vanishing_gradients", "word2vec_vs_gensim", "dlfs.distributed.scaling"])
def test_every_experiment_offers_record_and_defaults_to_the_workspace(module, capsys):
    import importlib

    exp = importlib.import_module(module if "." in module else f"dlfs.experiments.{module}")
    with pytest.raises(SystemExit) as stop:
        exp.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "--record" in text and "<workspace>/results/" in text, f"{module}: {text[-400:]}"


def test_run_info_gives_every_record_its_provenance(monkeypatch):
    monkeypatch.setattr(milestones, "git_commit", lambda: "abc123")
    info = common.RunInfo("demo", ["--steps", "3"])
    fields = info.fields(note="shared machine")
    assert fields["command"] == "python -m dlfs.experiments.demo --steps 3", fields["command"]
    assert fields["commit"] == "abc123", fields["commit"]
    assert fields["machine"]["note"] == "shared machine" and fields["machine"]["cpu_count"] >= 1, fields["machine"]
    load = fields["load_average_1_5_15min"]
    assert len(load["start"]) == 3 and len(load["end"]) == 3, load
    assert fields["wall_time_s"] >= 0 and fields["date"][:2] == "20", fields
    assert common.RunInfo("dlfs.quant.experiment", []).command == "python -m dlfs.quant.experiment"


def test_a_short_selective_copying_run_records_where_it_came_from(tmp_path, monkeypatch):
    import json

    from dlfs.experiments import selective_copying

    monkeypatch.setattr(milestones, "git_commit", lambda: "abc123")
    args = ["--steps", "2", "--eval-every", "1", "--eval-size", "4", "--batch", "2", "--length", "8",
            "--d-model", "8", "--d-state", "2", "--n-layers", "1", "--out", str(tmp_path)]
    assert selective_copying.main(args) == 0
    record = json.loads((tmp_path / "selective_copying.json").read_text())
    assert record["commit"] == "abc123" and record["command"].endswith(" ".join(args)), record["command"]
    assert record["machine"]["blas_threads"] == 1 and "load_average_1_5_15min" in record, sorted(record)
