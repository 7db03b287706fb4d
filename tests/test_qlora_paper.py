"""The paper's profile (params/paper-gpu.yaml: QLoRA in 4-bit, bf16 autocast, Flan-mini) end to
end at CPU scale: a chapter through ``zsg batch`` with overrides that only shrink it (issue 27,
item 4), so everything the profile needs but CUDA runs on every submission."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from factories import save_tiny_model

from zsg_lib.cli import main as cli
from zsg_lib.profiles.params import load_profile
from zsg_lib.train import records as runs

pytestmark = pytest.mark.slow  # a papermill kernel runs the chapter (~1 min)

N_TASKS = 8  # Flan-mini tasks written by the test: 6 to train on, 2 held out


def _flan_mini(path: Path) -> Path:
    """A small Flan-mini file (its JSON layout: id, source = task, conversations)."""
    records = [
        {"id": f"task{t}-{i}", "source": f"task{t}",
         "conversations": [{"from": "human", "value": f"Task {t}: add {t} to {i}."},
                           {"from": "gpt", "value": str(t + i)}]}
        for t in range(N_TASKS) for i in range(12)
    ]
    path.write_text(json.dumps(records))
    return path


def test_the_paper_profile_runs_a_chapter_in_4bit(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSG_HOME", str(tmp_path / "home"))  # runs and caches: the test's own
    monkeypatch.setenv("ZSG_FLAN_MINI", str(_flan_mini(tmp_path / "flan-mini.json")))
    model = save_tiny_model(tmp_path / "model", hidden_size=64, intermediate_size=128)
    # sizes only (4 steps of 16 need 64 instances): method, precision, rank, lr, schedule,
    # batches and autocast stay the paper's
    shrink = {
        "model": model, "seeds": [0], "split.n_train_tasks": 6, "split.n_test_tasks": 2,
        "train_per_task": 11, "test_per_task": 2, "train.max_steps": 4, "train.eval_every": 2,
        "train.generate_at": [0, 4], "train.max_source_len": 64, "train.max_target_len": 8,
        "stats.first_n_steps": 2,
    }
    profile = load_profile("paper-gpu", shrink)
    cfg = profile.run_config(0)
    assert (cfg.method, cfg.resolved_precision, cfg.bf16_autocast) == ("qlora", "4bit", True)
    assert (cfg.lora_r, cfg.grad_accum) == (64, 4)

    argv = ["batch", "01_early_generalization", "--profile", "paper-gpu",
            "--out", str(tmp_path / "out")]
    for key, value in shrink.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    assert cli.main(argv) == 0

    run_dirs = [p.parent for p in (tmp_path / "home").rglob(runs.DONE)]
    assert len(run_dirs) == 1
    record = runs.read_record(run_dirs[0])
    assert record.params["precision"]["weights"] == "4bit"
    assert record.params["precision"]["quant_type"] == "nf4"
    assert record.config.method == "qlora" and record.config.bf16_autocast is True
    assert record.log["step"].tolist() == [1, 2, 3, 4]
    assert record.log["n_instances"].tolist() == [16] * 4  # batch 4 x 4 micro-batches
    scores = record.scores
    assert sorted(scores["step"].unique()) == [0, 2, 4]
    assert scores["loss"].notna().all() and scores["prediction"].notna().sum() == 2 * len(
        scores[scores["step"] == 0])
    assert pd.Series(record.log["train_loss"]).notna().all()
    notebook = next((tmp_path / "out").rglob("*.ipynb"))
    assert notebook.stat().st_size > 0
