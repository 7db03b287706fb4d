"""The README's "your model and data" lines, followed literally from a blank folder (issue #26,
item 4): copy ``params/cpu-demo.yaml``, set ``model``, ``dataset`` (kind and path) and
``split`` as the README says, and run one chapter with ``zsg batch`` (sizes shrunk with
``--set``, as the README's batch line does, so the run takes seconds on the tiny model).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from user_data import REPO, overrides, write_kind

pytestmark = pytest.mark.slow

#: The tiny profile's sizes, as ``--set`` pairs (the README's ``--set train.max_steps=12``).
SIZES = {"precision": "fp32", "train.max_steps": 6, "train.eval_every": 2,
         "train.generate_at": [0, 6], "train.batch_size": 2, "train.lora_r": 4,
         "train.max_source_len": 96, "train.max_target_len": 24, "train.max_new_tokens": 8,
         "train.bf16_autocast": False, "warmup.steps": 2, "stats.first_n_steps": 4,
         "attribution.steps": 2, "attribution.gradient_dim": 64,
         "train_per_task": 4, "test_per_task": 3, "tma.budget": 16}


def test_readme_names_the_keys_the_test_sets() -> None:
    """The test follows what the README says: these lines are in it."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    line = readme[readme.index("**Your model and data**"):]
    line = line[:line.index("\n- ")]
    for key in ("params/cpu-demo.yaml", "`model`", "`dataset`", "`split`", "zsg batch"):
        assert key in line, key


@pytest.mark.parametrize(("kind", "chapter"), [("niv2", "03_similarity"),
                                               ("flan-mini", "01_early_generalization"),
                                               ("sharegpt", "01_early_generalization")])
def test_own_data_from_a_blank_folder(kind: str, chapter: str, tmp_path: Path) -> None:
    data = write_kind(kind, tmp_path / "mydata")
    profile = tmp_path / "my-profile.yaml"
    shutil.copy(REPO / "params" / "cpu-demo.yaml", profile)
    text = yaml.safe_load(profile.read_text(encoding="utf-8"))
    text["model"] = "tiny"  # a Hugging Face id or a local folder; the test model here
    text["dataset"] = {"kind": kind, "path": str(data)}
    text["split"] = {"test_tasks": None}  # the copied lists are the demo's tasks
    profile.write_text(yaml.safe_dump(text), encoding="utf-8")
    sizes = {**SIZES, **{k: v for k, v in overrides(kind, data).items()
                         if k.startswith(("split.", "seeds", "dataset.k_"))}}
    sets = [f"--set={k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
            .replace("\n...", "") for k, v in sizes.items()]
    env = {**os.environ, "ZSG_HOME": str(tmp_path / "home"), "ZSG_COMPILE": "0"}
    proc = subprocess.run([sys.executable, "-m", "zsg_lib.cli.main", "batch", chapter,
                           "--profile", str(profile), *sets, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(rf"{chapter}.py done in \d+ s", proc.stdout)
    assert (tmp_path / "out" / f"{chapter}.ipynb").exists()
