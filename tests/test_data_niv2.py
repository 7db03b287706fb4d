"""NIV2 loading against the real truncated sample in ../shared/data/niv2-sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from zsg_lib.data import load, load_niv2, niv2_split
from zsg_lib.errors import DataError

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "niv2-sample"


def task_json(name: str) -> dict:
    # Python's json reads the NaN some NIV2 task files contain.
    return json.loads((SAMPLE / "tasks" / f"{name}.json").read_text(encoding="utf-8"))


def test_sample_is_present():
    assert SAMPLE.is_dir(), f"CI provides the NIV2 sample at {SAMPLE}"


def test_default_split_matches_the_split_files():
    train, test = niv2_split(SAMPLE)
    assert len(train) == 30 and len(test) == 8
    assert not set(train) & set(test)
    assert "task365_synthetic_remove_vowels" in train
    assert test == (SAMPLE / "splits/default/test_tasks.txt").read_text().split()


def test_loads_every_task_and_instance():
    t = load_niv2(SAMPLE)
    train, test = niv2_split(SAMPLE)
    expected = sum(len(task_json(n)["Instances"]) for n in train + test)
    assert t.num_rows == expected == 1266
    assert set(t.column("task").to_pylist()) == set(train + test)
    assert set(t.column("source").to_pylist()) == {"niv2"}


def test_prompt_is_definition_two_positive_examples_and_input():
    name = "task365_synthetic_remove_vowels"
    data = task_json(name)
    t = load_niv2(SAMPLE, tasks=[name])
    first = t.slice(0, 1).to_pylist()[0]
    inst = data["Instances"][0]
    prompt, response = first["messages"][0]["content"], first["messages"][1]["content"]
    assert first["id"] == inst["id"] and first["task"] == name
    assert prompt.startswith("Definition: " + data["Definition"][0])
    for k, ex in enumerate(data["Positive Examples"][:2], start=1):
        assert f"Positive Example {k} -\nInput: {ex['input']}\nOutput: {ex['output']}" in prompt
    assert "Positive Example 3" not in prompt  # the task has 3; k_positive=2 keeps 2
    assert prompt.endswith(f"Input: {inst['input']}\nOutput:")
    assert response == inst["output"][0]
    meta = json.loads(first["metadata"])
    assert meta["references"] == inst["output"] and meta["k_positive"] == 2


def test_k_positive_and_instances_per_task():
    name = "task365_synthetic_remove_vowels"
    t0 = load_niv2(SAMPLE, tasks=[name], k_positive=0, instances_per_task=3)
    assert t0.num_rows == 3
    assert "Positive Example" not in t0.column("messages").to_pylist()[0][0]["content"]
    t3 = load_niv2(SAMPLE, tasks=[name], k_positive=3, instances_per_task=1)
    assert "Positive Example 3 -" in t3.column("messages").to_pylist()[0][0]["content"]


def test_dispatcher_loads_niv2():
    t = load("niv2", SAMPLE, tasks=["task1508_wordnet_antonyms"]).table
    assert set(t.column("task").to_pylist()) == {"task1508_wordnet_antonyms"}


# ---- bad input ---------------------------------------------------------------------------

@pytest.fixture
def mini_root(tmp_path) -> Path:
    """A two-task copy of the sample that tests can break."""
    root = tmp_path / "niv2"
    (root / "tasks").mkdir(parents=True)
    (root / "splits" / "default").mkdir(parents=True)
    for name in ["task365_synthetic_remove_vowels", "task1508_wordnet_antonyms"]:
        shutil.copy(SAMPLE / "tasks" / f"{name}.json", root / "tasks")
    (root / "splits/default/train_tasks.txt").write_text("task365_synthetic_remove_vowels\n")
    (root / "splits/default/test_tasks.txt").write_text("task1508_wordnet_antonyms\n")
    return root


def test_split_file_naming_a_missing_task(mini_root):
    split = mini_root / "splits/default/test_tasks.txt"
    split.write_text("task1508_wordnet_antonyms\ntask999_does_not_exist\n")
    with pytest.raises(DataError) as err:
        niv2_split(mini_root)
    msg = str(err.value)
    assert str(split) in msg and "task999_does_not_exist" in msg and "entry 2" in msg
    with pytest.raises(DataError, match="task999_does_not_exist"):
        load_niv2(mini_root)


def test_split_overlap(mini_root):
    (mini_root / "splits/default/test_tasks.txt").write_text(
        "task1508_wordnet_antonyms\ntask365_synthetic_remove_vowels\n")
    with pytest.raises(DataError, match="both train and test"):
        niv2_split(mini_root)


def test_missing_track(mini_root):
    with pytest.raises(DataError, match="split file not found"):
        niv2_split(mini_root, track="xlingual")


def test_unknown_task_name(mini_root):
    with pytest.raises(DataError, match="task000_nope"):
        load_niv2(mini_root, tasks=["task000_nope"])


def _edit(root: Path, name: str, fn) -> Path:
    path = root / "tasks" / f"{name}.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))
    return path


def test_non_string_input(mini_root):
    def breaks(d):
        d["Instances"][3]["input"] = ["not", "a", "string"]

    path = _edit(mini_root, "task1508_wordnet_antonyms", breaks)
    with pytest.raises(DataError) as err:
        load_niv2(mini_root)
    iid = json.loads(path.read_text())["Instances"][3]["id"]
    for part in [str(path), "record 3", repr(iid), "'input'"]:
        assert part in str(err.value)


def test_missing_output(mini_root):
    path = _edit(mini_root, "task1508_wordnet_antonyms",
                 lambda d: d["Instances"][0].pop("output"))
    with pytest.raises(DataError, match=r"record 0 .*'output'") as err:
        load_niv2(mini_root)
    assert str(path) in str(err.value)


def test_duplicate_id_across_tasks(mini_root):
    other = json.loads((mini_root / "tasks/task365_synthetic_remove_vowels.json").read_text())
    dup = other["Instances"][0]["id"]

    def breaks(d):
        d["Instances"][2]["id"] = dup

    _edit(mini_root, "task1508_wordnet_antonyms", breaks)
    with pytest.raises(DataError, match=rf"record 2 \(id '{dup}'\), field 'id': duplicate"):
        load_niv2(mini_root)


def test_truncated_task_file(mini_root):
    path = mini_root / "tasks/task1508_wordnet_antonyms.json"
    path.write_text(path.read_text()[:500])
    with pytest.raises(DataError, match="invalid JSON") as err:
        load_niv2(mini_root)
    assert str(path) in str(err.value)
