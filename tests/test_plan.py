"""``zsg plan``: its runs, steps and tokens against the run records of a real tiny book."""

from __future__ import annotations

import pytest

from zsg_lib.cli.main import main
from zsg_lib.profiles.chapters import CHAPTERS
from zsg_lib.profiles.params import load_profile
from zsg_lib.study import chapter_runs, experiment as ex
from zsg_lib.study.chapter_runs import chapter_jobs
from zsg_lib.study.plan import DataCosts, plan
from zsg_lib.train.shapes import load_tokenizer, shape_from_params


def _execute(profile, job):
    """Train (or read back) the run a job names, through the chapters' own calls."""
    if job.kind == "warmup":
        return ex.branch_point(profile, job.seed)
    if job.kind == "window":
        return ex.run_window(profile, job.start, job.seed)
    return ex.run(profile, job.name, job.seed, generate=job.generate, branch=job.branch)


def _computed_steps(rec):
    """The steps this run scored itself (a branch point's scores are the warm-up's)."""
    steps = set(rec.scores["step"])
    branch = rec.params["data"].get("branch")
    return steps - ({branch["step"]} if branch else set())


@pytest.mark.slow
def test_plan_is_what_the_tiny_book_trains(tmp_path) -> None:
    profile = load_profile("tiny", {"seeds": [0], "runs_root": str(tmp_path)})
    costs = DataCosts(profile, load_tokenizer(profile.model))
    jobs = list(dict.fromkeys(j for c in CHAPTERS for j in chapter_jobs(profile, c)))
    run_of_key: dict[str, set[str]] = {}
    estimated = 0
    for job in jobs:
        rec, planned = _execute(profile, job), costs.run(job)
        run_of_key.setdefault(planned.key, set()).add(rec.run_id)
        log, scored = rec.log, _computed_steps(rec)
        assert planned.steps == len(log), job
        assert planned.score_passes == len(scored), job
        at = rec.scores[rec.scores["step"] == max(scored)]
        assert planned.score_response == at["n_tokens"].sum(), job
        generated = (rec.scores.loc[rec.scores["prediction"].notna(), "step"].nunique()
                     if "prediction" in rec.scores else 0)
        assert planned.generations == generated, job
        if planned.exact:
            assert planned.tokens == log["tokens"].sum(), job
            assert planned.response_tokens == log["response_tokens"].sum(), job
        else:  # ordered by gradient features of the trained warm-up: bounds hold it
            lo, hi = planned.tokens_bounds
            assert lo <= log["tokens"].sum() <= hi, job
            estimated += 1
    # one planned run is one run on disk, and the other way round
    assert all(len(ids) == 1 for ids in run_of_key.values())
    assert len({i for ids in run_of_key.values() for i in ids}) == len(run_of_key)
    p = plan(profile, costs.count.tok, shape_from_params(1))
    assert p.total.runs == len(run_of_key) == chapter_runs.planned_runs(profile)
    assert 0 < estimated < len(jobs)  # grad-nft is estimated, the rest exact


@pytest.mark.parametrize("name,overrides", [
    ("cpu-demo", {}), ("paper-gpu", {"attribution.steps": 10}), ("tiny", {}), ("tiny", {"warmup.steps": 0}),
    ("cpu-demo", {"warmup.steps": 0, "generate_for": ["random"]}),
])
def test_plan_without_data_counts_the_runs_planned_runs_counts(name, overrides) -> None:
    profile = load_profile(name, overrides, check_paths=False)
    p = plan(profile, shape=shape_from_params(1), without_data=True)
    assert p.total.runs == chapter_runs.planned_runs(profile)
    assert p.total.steps == chapter_runs.planned_steps(profile)
    assert sum(t.runs for t in p.chapters.values()) == p.total.runs


def test_plan_counts_tiny_runs_as_the_book_does() -> None:
    profile = load_profile("tiny")
    p = plan(profile, shape=shape_from_params(1))
    assert p.total.runs == chapter_runs.planned_runs(profile)
    assert p.chapters["summary"].runs == 0 and p.chapters["summary"].used == p.total.runs


def test_missing_data_path_is_exit_2_naming_file_and_key(capsys, monkeypatch) -> None:
    monkeypatch.delenv("ZSG_FLAN_MINI", raising=False)
    assert main(["plan", "--profile", "paper-gpu", "--no-measure"]) == 2
    err = capsys.readouterr().err
    assert "params/paper-gpu.yaml: dataset.path" in err and "--without-data" in err


def test_unknown_hub_model_is_exit_2_naming_the_model_key(capsys) -> None:
    code = main(["plan", "--profile", "tiny", "--set", "model=someone/not-a-model",
                 "--no-measure"])
    assert code == 2
    err = capsys.readouterr().err
    assert "params/tiny.yaml (overrides): model: someone/not-a-model" in err
    assert "--model-config" in err


def test_paper_profile_prints_its_cost_without_data(capsys, monkeypatch) -> None:
    monkeypatch.delenv("ZSG_FLAN_MINI", raising=False)
    assert main(["plan", "--profile", "paper-gpu", "--without-data", "--no-measure"]) == 0
    out = capsys.readouterr().out
    assert "GPU-hours" in out and "estimate" in out
    # chapter 7 needs step-resolved runs, which the shipped profile does not score
    assert "07_instance_level cannot run with this profile" in out
    assert "attribution.steps" in out


def test_plan_counts_the_query_split_s_own_gradient_features() -> None:
    """Under a query split the arrangements' gradient features are a pass over the query
    instances of their own (evaluation text never reaches them): the plan counts it."""
    from zsg_lib.study.plan import DataCosts, _feature_tally
    from zsg_lib.train.shapes import load_tokenizer

    plain = load_profile("tiny", {"seeds": [0]})
    split = load_profile("tiny", {"seeds": [0], "split.query_per_task": 1})
    costs = [DataCosts(p, load_tokenizer(p.model)) for p in (plain, split)]
    query = ex.prepare(split, 0).query
    extra = sum(t for t, _ in costs[1].count(query, query.column("id").to_pylist()))
    assert _feature_tally(split, costs[1]).feature_tokens == (
        _feature_tally(plain, costs[0]).feature_tokens + extra)
