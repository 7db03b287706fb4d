"""The ``probes:`` section of a profile (issue #28): typed, checked before any work, every
error naming the file and the dotted key."""

from __future__ import annotations

import pytest

from zsg_lib.errors import ParamsError
from zsg_lib.profiles.params import check_chapter, check_probes, load_profile
from zsg_lib.profiles.profile import ProbeParams


def refused(overrides: dict, match: str) -> str:
    with pytest.raises(ParamsError, match=match) as err:
        load_profile("tiny", overrides)
    assert str(err.value).startswith("params/tiny.yaml (overrides): ")
    return str(err.value)


def test_defaults_probe_every_design_once_with_one_step():
    p = ProbeParams()
    assert "random" not in p.designs and p.replicates == 1 and p.steps == 1
    assert p.targets is None and p.others_per_task is None


def test_the_shipped_profiles_carry_a_probes_section():
    for name in ("tiny", "cpu-demo", "niv2-sample"):
        p = load_profile(name, check_paths=False)
        assert p.probes.designs and p.probes.others_per_task == 1


@pytest.mark.parametrize("overrides, match", [
    ({"probes.designs": ["nearest"]}, r"probes.designs\[0\]: unknown design 'nearest'"),
    ({"probes.designs": ["random"]}, r"probes.designs\[0\]: 'random' is the control"),
    ({"probes.designs": ["same-label", "same-label"]},
     r"probes.designs\[1\]: 'same-label' is listed twice"),
    ({"probes.replicates": 0}, r"probes.replicates: must be positive, got 0"),
    ({"probes.random": -1}, r"probes.random: must be positive"),
    ({"probes.others_per_task": 0}, r"probes.others_per_task: must be positive"),
    ({"probes.targets": ["a", "a"]}, r"probes.targets\[1\]: task 'a' is listed twice"),
    ({"probes.targets": []}, r"probes.targets: empty"),
    ({"probes.replicates": "two"}, r"probes.replicates: expected int"),
])
def test_bad_probe_settings_name_the_key(overrides, match):
    refused(overrides, match)


@pytest.mark.parametrize("overrides, match", [
    ({"probes.candidates": 1}, r"probes.candidates: 1 candidates cannot hold a batch of 2"),
    ({"probes.steps": 7}, r"probes.steps: 7 steps go past .*train.max_steps=6"),
])
def test_what_probes_ask_of_the_runs_stops_their_chapter_only(overrides, match):
    """A batch the candidates cannot hold, or steps past the schedule, stop the probes chapter
    before any work, naming the key; the profile still loads for every other chapter."""
    p = load_profile("tiny", overrides)
    check_chapter(p, "03_similarity")
    with pytest.raises(ParamsError, match=match):
        check_chapter(p, "08_probes")


def test_same_label_alone_needs_no_candidate_pool_of_a_batch():
    """``candidates`` is what the ranked designs draw from; same-label draws from relatives."""
    p = load_profile("tiny", {"probes.designs": ["same-label"], "probes.candidates": 1})
    assert p.probes.candidates == 1


def test_probes_without_a_warm_up_are_refused_naming_the_key():
    with pytest.raises(ParamsError, match=r"warmup.steps: 0 leaves no saved state"):
        check_probes(load_profile("tiny", {"warmup.steps": 0}))


def test_no_design_and_full_fine_tuning_are_refused():
    with pytest.raises(ParamsError, match=r"probes.designs: lists no design"):
        check_probes(load_profile("tiny", {"probes.designs": []}))
    p = load_profile("tiny", {"train.method": "full", "chapters.instance": ["nft"]})
    with pytest.raises(ParamsError, match=r"probes.designs\[0\]: 'nearest-gradient' ranks by "
                                          r"LoRA gradient features"):
        check_probes(p)
