"""Issue 10 in the profile layer: duplicate YAML keys, non-finite and nonsensical numbers,
and messages that point at the file and the dotted key that is wrong."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest

from zsg_lib.errors import ParamsError
from zsg_lib.profiles.params import check_dataset_path, check_split_tasks, load_profile
from zsg_lib.profiles.sweeps import load_sweep
from zsg_lib.train.config import ConfigError, TrainConfig
from zsg_lib.typed import NON_FINITE, FieldError, build, coerce


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(path_or_name, match: str, overrides=None) -> str:
    with pytest.raises(ParamsError, match=match) as err:
        load_profile(path_or_name, overrides)
    return str(err.value)


# --------------------------------------------------------------------------- 1. duplicate keys


def test_two_train_blocks_name_file_key_and_both_lines(tmp_path):
    path = write(tmp_path, "name: x\ntrain:\n  max_steps: 4\nseeds: [0]\ntrain:\n  lora_r: 2\n")
    msg = refused(path, r"p.yaml: train: key given twice \(lines 2 and 5\); keep one")
    assert msg.startswith(str(path))


def test_key_twice_inside_a_section_is_dotted(tmp_path):
    path = write(tmp_path, "train:\n  max_steps: 4\n  eval_every: 2\n  max_steps: 8\n")
    refused(path, r"p.yaml: train.max_steps: key given twice \(lines 2 and 4\)")


def test_key_twice_in_a_flow_mapping_and_deeper(tmp_path):
    refused(write(tmp_path, "chapters: {similarity: [nft], similarity: [fft]}\n"),
            r"chapters.similarity: key given twice \(lines 1 and 1\)")
    refused(write(tmp_path, "dataset:\n  kind: demo\n\n\n  kind: niv2\n", "q.yaml"),
            r"q.yaml: dataset.kind: key given twice \(lines 2 and 5\)")


def test_same_key_in_different_sections_is_fine(tmp_path):
    # "seed" under dataset and "seeds" at the top level; max_steps once per mapping.
    p = load_profile(write(tmp_path, "dataset: {seed: 3}\nseeds: [0, 1, 2]\n"))
    assert p.dataset.seed == 3 and p.seeds == (0, 1, 2)


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    # A key given after ``<<:`` overrides the merged one on purpose: not a duplicate.
    path = write(tmp_path, "train:\n  <<: {max_steps: 4, eval_every: 2}\n  eval_every: 1\n")
    p = load_profile(path)
    assert (p.train.max_steps, p.train.eval_every) == (4, 1)


def test_duplicate_key_in_a_sweep_file(tmp_path):
    sweep = write(tmp_path, "profile: tiny\nchapters: [03_similarity]\ngrid:\n"
                            "  seeds: [[0]]\n  seeds: [[1]]\n", "sweep.yaml")
    with pytest.raises(ParamsError, match=r"sweep.yaml: grid.seeds: key given twice "
                                          r"\(lines 4 and 5\)"):
        load_sweep(sweep)


# --------------------------------------------------------------------------- 2. numbers


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "inf", "nan"])
def test_non_finite_learning_rate_through_a_profile(tmp_path, value):
    path = write(tmp_path, f"train:\n  learning_rate: {value}\n")
    refused(path, r"p.yaml: train.learning_rate: expected a finite float")


@pytest.mark.parametrize("key, text", [
    ("stats.alpha", "stats: {alpha: .nan}"),
    ("train.lora_dropout", "train: {lora_dropout: .nan}"),
    ("train.weight_decay", "train: {weight_decay: .inf}"),
])
def test_non_finite_floats_anywhere_in_a_profile(tmp_path, key, text):
    refused(write(tmp_path, text + "\n"), rf"p.yaml: {re.escape(key)}: expected a finite float")


def test_non_finite_override_says_overrides():
    refused("tiny", r"params/tiny.yaml \(overrides\): stats.alpha: expected a finite float",
            {"stats.alpha": float("nan")})


def test_typed_refuses_non_finite_unless_the_field_allows_it():
    @dataclass(frozen=True)
    class Bounds:
        lo: float = 0.0
        hi: Annotated[float, NON_FINITE] = math.inf

    assert build(Bounds, {"hi": "inf"}).hi == math.inf
    with pytest.raises(FieldError, match="lo: expected a finite float, got nan"):
        build(Bounds, {"lo": float("nan")})
    assert coerce(None, float | None, "x") is None
    with pytest.raises(FieldError, match="x: expected float"):
        coerce(float("inf"), float | None, "x")


def test_trainconfig_refuses_non_finite_directly():
    for name in ("learning_rate", "lora_dropout", "weight_decay"):
        with pytest.raises(ConfigError, match=rf"TrainConfig.{name}: expected a finite float"):
            TrainConfig(**{name: float("nan")})


@pytest.mark.parametrize("text, match", [
    ("train_per_task: 0", r"train_per_task: must be positive, got 0"),
    ("test_per_task: -2", r"test_per_task: must be positive, got -2"),
    ("split: {n_train_tasks: 0}", r"split.n_train_tasks: must be positive"),
    ("split: {n_test_tasks: -1}", r"split.n_test_tasks: must be positive"),
    ("tma: {window_starts: [0, -1]}", r"tma.window_starts\[1\]: rounds count from 0, got -1"),
    ("generate_for: [random, nearest]", r"generate_for\[1\]: unknown arrangement 'nearest'"),
    ("generate_for: [rt, Random]", r"generate_for\[1\]: unknown arrangement 'Random'"),
    ("split: {test_tasks: [a, b, a]}", r"split.test_tasks\[2\]: task 'a' is listed twice"),
    ("split: {train_tasks: [a, b], test_tasks: [c, b]}",
     r"split.test_tasks\[1\]: task 'b' is also split.train_tasks\[1\]"),
])
def test_nonsensical_numbers_and_lists_name_file_and_key(tmp_path, text, match):
    refused(write(tmp_path, text + "\n"), "p.yaml: " + match)


def test_window_starts_are_not_tied_to_the_budget(tmp_path):
    # windows select from the whole pool (no budget): whether a round exists is a data question
    p = load_profile(write(tmp_path, "tma: {budget: 4, window_size: 1, window_starts: [3, 9]}\n"))
    assert p.tma.window_starts == (3, 9)


def test_generate_at_past_max_steps_in_the_file_is_an_error(tmp_path):
    path = write(tmp_path, "train: {max_steps: 6, generate_at: [0, 6, 9]}\n")
    msg = refused(path, r"p.yaml: train.generate_at: goes past max_steps=6")
    assert "(overrides)" not in msg


def test_overriding_max_steps_still_clips_the_files_generate_at():
    p = load_profile("tiny", {"train.max_steps": 3})  # tiny.yaml: generate_at [0, 6]
    assert p.train.max_steps == 3 and p.train.generate_at == (0,)
    p = load_profile("tiny", {"train": {"max_steps": 12}})
    assert p.train.generate_at == (0, 6)


def test_generate_at_past_max_steps_in_the_overrides_is_an_error():
    refused("tiny", r"params/tiny.yaml \(overrides\): train.generate_at: goes past max_steps=6",
            {"train.generate_at": [0, 9]})
    refused("tiny", r"\(overrides\): train.generate_at: goes past max_steps=3",
            {"train.max_steps": 3, "train.generate_at": [0, 6]})


def test_trainconfig_generate_at_past_max_steps_names_the_field():
    with pytest.raises(ConfigError, match=r"TrainConfig.generate_at: goes past max_steps=2"):
        TrainConfig(generate_at=(3,), max_steps=2)


# --------------------------------------------------------------------------- 4. messages


def test_unknown_test_task_is_reported_against_its_list_position():
    p = load_profile("tiny", {"split": {"test_tasks": ["t1", "t9"], "n_test_tasks": None}})
    with pytest.raises(ParamsError, match=r"params/tiny.yaml \(overrides\): split.test_tasks\[1\]:"
                                          r" task 't9' is not in the data \(3 tasks"):
        check_split_tasks(p, ["t1", "t2", "t3"])
    check_split_tasks(p, ["t1", "t9", "t2"])  # all present: no error


def test_unknown_train_task_suggests_close_names(tmp_path):
    path = write(tmp_path, "split: {train_tasks: [add_numbers, reverse_wrd]}\n")
    p = load_profile(path)
    with pytest.raises(ParamsError, match=r"p.yaml: split.train_tasks\[1\]: task 'reverse_wrd' "
                                          r".*did you mean 'reverse_word'"):
        check_split_tasks(p, ["add_numbers", "reverse_word", "upper"])


def test_check_split_tasks_against_the_demo_data():
    from zsg_lib.data.demo_tasks import all_specs

    names = [s.name for s in all_specs()]
    p = load_profile("tiny", {"split.test_tasks": [names[0], "no_such_task"],
                              "split.n_test_tasks": None})
    with pytest.raises(ParamsError, match=r"split.test_tasks\[1\]: task 'no_such_task'"):
        check_split_tasks(p, names)


def test_folder_given_where_a_file_is_expected(tmp_path):
    folder = tmp_path / "flan"
    folder.mkdir()
    for kind in ("flan-mini", "sharegpt"):
        path = write(tmp_path, f"dataset: {{kind: {kind}, path: {folder}}}\n")
        refused(path, rf"p.yaml: dataset.path: '{re.escape(str(folder))}' is a folder; kind "
                      rf"'{kind}' reads one file")


def test_file_given_where_the_niv2_folder_is_expected(tmp_path):
    file = write(tmp_path, "{}", "niv2.json")
    refused(write(tmp_path, f"dataset: {{kind: niv2, path: {file}}}\n"),
            r"p.yaml: dataset.path: .*niv2.json' is a file; kind 'niv2' reads a folder")


def test_kinds_that_take_files_or_folders_accept_both(tmp_path):
    folder = tmp_path / "p3"
    folder.mkdir()
    file = write(tmp_path, "[]", "nr.jsonl")
    for kind, path in (("p3", folder), ("p3", file), ("norobots", folder), ("norobots", file)):
        p = load_profile(write(tmp_path, f"dataset: {{kind: {kind}, path: {path}}}\n"))
        assert check_dataset_path(p) is p


# --------------------------------------------------------------------------- issue 31


def test_judging_window_past_the_run_in_the_file_is_an_error(tmp_path):
    path = write(tmp_path, "train: {max_steps: 6}\nstats: {first_n_steps: 8}\n")
    msg = refused(path, r"p.yaml: stats.first_n_steps: a judging window of 8 steps goes past "
                        r"the comparison \(train.max_steps=6\); set it at most 6")
    assert msg.startswith(str(path))
    refused("tiny", r"tiny.yaml \(overrides\): stats.first_n_steps: a judging window of 9",
            {"stats.first_n_steps": 9})


def test_shortening_the_run_cuts_the_files_judging_window_to_it():
    p = load_profile("cpu-demo", {"train.max_steps": 12})  # the README's batch example
    assert p.stats.first_n_steps == 12 and p.judge.first_window == (9, 20)
    # and its step-resolved stretch (cpu-demo: 8 steps after an 8-step warm-up)
    short = load_profile("cpu-demo", {"train.max_steps": 6, "warmup.steps": 2})
    assert short.attribution.steps == 6 < load_profile("cpu-demo").attribution.steps
    refused("cpu-demo", r"attribution.steps: 9 steps of step-resolved scoring go past the run",
            {"train.max_steps": 6, "warmup.steps": 2, "attribution.steps": 9})
    assert load_profile("cpu-demo").stats.first_n_steps == 16
    refused("cpu-demo", r"stats.first_n_steps: a judging window of 13 steps",
            {"train.max_steps": 12, "stats.first_n_steps": 13})


def _niv2_folder(tmp_path: Path, splits: str | None) -> Path:
    root = tmp_path / "niv2"
    (root / "tasks").mkdir(parents=True)
    if splits is not None:
        (root / "splits" / splits).mkdir(parents=True)
        for side in ("train", "test"):
            (root / "splits" / splits / f"{side}_tasks.txt").write_text("t\n")
    return root


def test_niv2_folder_without_splits_names_the_profile_key(tmp_path):
    root = _niv2_folder(tmp_path, None)
    msg = refused("niv2-sample", r"niv2-sample.yaml \(overrides\): dataset.path: .* has no "
                                 r"splits/default/train_tasks.txt; kind 'niv2' reads a folder",
                  {"dataset.path": str(root)})
    assert str(root) in msg


def test_niv2_track_that_is_not_there_names_the_track_and_the_tracks_there(tmp_path):
    root = _niv2_folder(tmp_path, "xlingual")
    refused("niv2-sample", r"dataset.track: 'default' gives no splits/default/train_tasks.txt "
                           r"in .* \(folders there: xlingual\)", {"dataset.path": str(root)})
    assert load_profile("niv2-sample", {"dataset.path": str(root),
                                        "dataset.track": "xlingual"}).dataset.track == "xlingual"


def test_more_held_out_conversations_than_the_file_holds_names_the_key(tmp_path):
    from zsg_lib.study import experiment

    records = [{"id": f"c{i}", "conversations": [{"from": "human", "value": f"q{i}"},
                                                  {"from": "gpt", "value": f"a{i}"}]}
               for i in range(5)]
    data = tmp_path / "chats.json"
    data.write_text(__import__("json").dumps(records))
    p = load_profile("tiny", {"dataset.kind": "sharegpt", "dataset.path": str(data),
                              "split.n_test_instances": 5, "chapters.permutations": [],
                              "chapters.granularity": []})
    with pytest.raises(ParamsError, match=r"tiny.yaml \(overrides\): split.n_test_instances: 5 "
                                          r"held-out conversations asked, but .*chats.json "
                                          r"holds 5; at most 4"):
        experiment.load_split(p)


# --------------------------------------------------------------------------- query split


@pytest.mark.parametrize("value, match", [
    (0, r"split.query_per_task: must be at least 1 .* got 0"),
    (-2, r"split.query_per_task: must be at least 1 .* got -2"),
    (3, r"split.query_per_task: 3 query instances of each test task's test_per_task=3 leave "
        r"no evaluation instance; at most 2"),
    ("three", r"split.query_per_task: expected"),
])
def test_query_split_out_of_range_names_the_key(value, match):
    with pytest.raises(ParamsError, match=r"tiny.yaml \(overrides\): " + match):
        load_profile("tiny", {"split.query_per_task": value})
    assert load_profile("tiny", {"split.query_per_task": 2}).split.query_per_task == 2
    assert load_profile("tiny").split.query_per_task is None  # no shipped profile splits


@pytest.mark.parametrize("kind", ["sharegpt", "norobots"])
def test_query_split_on_data_without_tasks_names_the_key(tmp_path, kind):
    from user_data import overrides, write_kind

    with pytest.raises(ParamsError, match=rf"split.query_per_task: dataset.kind '{kind}' has "
                                          "no tasks to split"):
        load_profile("tiny", {**overrides(kind, write_kind(kind, tmp_path)),
                              "split.query_per_task": 1})


def test_query_split_a_task_too_small_for_it_is_named_before_any_run(tmp_path):
    """A test task with fewer instances than test_per_task (kept whole: at_most) may hold no
    evaluation instance: the data decides, so the chapter's first call refuses it."""
    import json

    from user_data import records

    from zsg_lib.study import checks

    recs = [r for r in records("flan-mini")
            if not (r["source"] == "cot_double" and int(r["id"].split("-")[1]) >= 2)]
    path = tmp_path / "flan.json"
    path.write_text(json.dumps(recs))
    over = {"dataset.kind": "flan-mini", "dataset.path": str(path), "seeds": [0],
            "split.n_train_tasks": None, "split.n_test_tasks": None,
            "split.test_tasks": ["cot_add", "cot_double"], "split.query_per_task": 2}
    with pytest.raises(ParamsError, match=r"split.query_per_task: 2 query instances leave test "
                                          r"task 'cot_double' no evaluation instance \(it has 2 "
                                          r"instance\(s\), so 2 in its test sample\); at most 1"):
        checks.setup("tiny", "03_similarity", over)
    # one query instance leaves it one evaluation instance
    assert checks.setup("tiny", "03_similarity", {**over, "split.query_per_task": 1})
