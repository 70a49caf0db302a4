"""Which costs a checkpoint was trained on: recorded in askwise.json, joined over the runs it
descends from, and read by `askwise eval` to mark the unseen cells."""

from askwise.cli import build_parser
from askwise.policy.checkpoints import default_adapter, trained_grid, write_meta
from askwise.training.cli import eval_config


def test_a_run_adds_its_grid_to_the_one_its_init_adapter_records(tmp_path):
    write_meta(tmp_path, kind="lora", train_alphas=[0.02, 0.5], train_betas=[0.001])
    grid = trained_grid(tmp_path, [0.15, 0.5], [0.001, 0.03])
    assert grid == {"train_alphas": [0.02, 0.15, 0.5], "train_betas": [0.001, 0.03]}


def test_nothing_is_claimed_for_an_adapter_that_records_no_grid(tmp_path):
    write_meta(tmp_path, kind="lora")
    assert trained_grid(tmp_path) == {}
    assert trained_grid(None) == {}
    assert trained_grid(None, [0.1], [0.005]) == {"train_alphas": [0.1], "train_betas": [0.005]}


def test_eval_marks_cells_by_the_adapters_grid_unless_flags_say_otherwise(tmp_path):
    parser = build_parser()
    shipped = eval_config(parser.parse_args(["eval"]))
    assert shipped.adapter == default_adapter()
    # the shipped policy was never trained at the voice preset's alpha, but was at its neighbours
    assert 0.05 not in shipped.train_alphas and {0.03, 0.07, 0.5} <= set(shipped.train_alphas)

    write_meta(tmp_path, kind="lora", train_alphas=[0.1], train_betas=[0.005])
    recorded = eval_config(parser.parse_args(["eval", "--adapter", str(tmp_path)]))
    assert (recorded.train_alphas, recorded.train_betas) == ([0.1], [0.005])
    flagged = eval_config(parser.parse_args(["eval", "--adapter", str(tmp_path), "--train-alphas", "0.2"]))
    assert (flagged.train_alphas, flagged.train_betas) == ([0.2], [0.005])
