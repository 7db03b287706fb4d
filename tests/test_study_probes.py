"""The probes chapter's glue on the tiny profile (issue #28): per seed, the warm-up state, the
designs' batches, the probes (a design's scoring its target and a sample of the others, random
the whole test set), the frame and the analysis; read back on a rerun; the data checks."""

from __future__ import annotations

import pytest
from user_data import overrides, write_kind

from zsg_lib.analysis.probes import MEASURES
from zsg_lib.errors import ParamsError
from zsg_lib.profiles.params import load_profile
from zsg_lib.study import experiment as ex, probes

#: tiny's split with two of list_sort_descending's helpful relatives among the training tasks
#: (tiny's own 12 have none for its 3 test tasks), so same-label has a target to probe
SPLIT = {"split.n_train_tasks": None, "split.n_test_tasks": None,
         "split.test_tasks": ["language_id_month", "list_sort_descending", "numeral_to_binary"],
         "split.train_tasks": ["arith_add_2digit", "arith_divide", "arith_subtract",
                               "country_names_en_es", "currency_format_en_US_USD",
                               "currency_names_en_de", "language_names_en_nl",
                               "month_names_de_en", "number_format_es_ES", "number_words_pl",
                               "list_evens", "list_maximum"]}
DESIGNS = ["nearest-gradient", "nearest-embedding", "same-label", "farthest-embedding"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("probes-home")
    mp.setenv("ZSG_HOME", str(root))  # the probe records go to $ZSG_HOME/probes
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def tiny(home):
    return load_profile("tiny", {**SPLIT, "seeds": [0], "probes.designs": DESIGNS})


@pytest.fixture(scope="module")
def results(tiny):
    probes.check_probe_data(tiny)
    return probes.probe_runs(tiny)


def test_every_design_is_probed_and_scored_on_its_instances(tiny, results) -> None:
    frame, drawn = results.frame, results.batches
    prep = ex.prepare(tiny, 0)
    n_test, n_tasks = prep.test.num_rows, len(set(prep.test.column("task").to_pylist()))
    per_task, k = n_test // n_tasks, tiny.probes.others_per_task
    # every design has probes; same-label only the target with relatives in the sample
    assert set(frame["design"]) == {*DESIGNS, "random"}
    assert set(frame.loc[frame["design"] == "same-label", "target"]) == {"list_sort_descending"}
    assert (drawn["design"] == "random").sum() == tiny.probes.random
    for design in ("nearest-gradient", "nearest-embedding", "farthest-embedding"):
        assert (drawn["design"] == design).sum() == n_tasks * tiny.probes.replicates
    # a random probe scores the whole test set; a design's, its target's and k of each other
    scored = frame.groupby("probe")["id"].nunique()
    is_random = drawn.set_index("probe")["design"].eq("random")
    assert scored[is_random[is_random].index].eq(n_test).all()
    assert scored[is_random[~is_random].index].eq(per_task + k * (n_tasks - 1)).all()
    assert len(frame) == int(scored.sum())
    design_rows = frame[frame["design"] != "random"]
    on_target = design_rows.groupby("probe").apply(
        lambda p: (p["task"] == p["target"]).sum(), include_groups=False)
    assert on_target.eq(per_task).all()
    assert frame["seed"].eq(0).all() and frame["dloss"].notna().all()
    # the same sample of other instances for every probe of the seed
    sample = set(probes.others_sample(tiny, prep.test, 0))
    others = design_rows[design_rows["task"] != design_rows["target"]]
    assert set(others["id"]) <= sample


def test_a_rerun_reads_the_probes_back(tiny, results) -> None:
    again = probes.probe_runs(tiny)
    assert again.sets["computed"].eq(0).all() and results.sets["computed"].sum() > 0
    key = ["probe", "id"]
    a, b = (r.frame.sort_values(key).reset_index(drop=True) for r in (results, again))
    assert a[key + ["dloss", "design"]].equals(b[key + ["dloss", "design"]])


def test_the_analysis_reads_the_frame(tiny, results) -> None:
    table = probes.design_table(results)
    assert set(table["design"]) == set(DESIGNS)
    assert set(table["measure"]) == set(MEASURES)
    found = probes.finding(table)
    assert found.section == "8. probes" and found.contrasts
    dose = probes.dose_response(tiny, results)
    assert {"emb_max", "grad_max", "label"} <= set(dose["predictor"])
    cost = probes.cost_table(results)
    assert cost["probes"].tolist() == [len(results.batches)]


def test_zsg_plan_counts_the_probes_the_chapter_ran(tiny, results) -> None:
    """The plan's probes and their scoring tokens are what the probe sets did: each set's
    probes and the state's own pass over the instances it scores."""
    from zsg_lib.study.plan import DataCosts, _probe_tally
    from zsg_lib.train.shapes import load_tokenizer

    costs = DataCosts(tiny, load_tokenizer(tiny.model))
    tally = _probe_tally(tiny, costs, features_counted=True)
    assert tally.probes == len(results.batches) == results.sets["probes"].sum()
    assert tally.probe_steps == tally.probes * tiny.probes.steps
    prep = ex.prepare(tiny, 0)
    sample = probes.others_sample(tiny, prep.test, 0)
    expected = 0
    for _, s in results.sets.iterrows():
        ids = (prep.test.column("id").to_pylist() if s["target"] == probes.RANDOM
               else probes.scored_ids(tiny, prep.test, s["target"], sample))
        assert len(ids) == s["scored"]
        expected += (s["probes"] + 1) * sum(t for t, _ in costs.count(prep.test, ids))
    assert tally.score_tokens == expected
    # training: one batch a probe step, at the sample's mean length (an estimate)
    assert not tally.exact and tally.train_tokens > 0
    assert tally.feature_tokens == 0  # chapter 7 counts the gradient features it shares
    assert _probe_tally(tiny, costs, features_counted=False).feature_tokens > 0


def test_the_build_hears_of_probes_computed_not_of_probes_read_back(tiny, results,
                                                                     tmp_path) -> None:
    import json

    from zsg_lib.study import progress

    events = tmp_path / "events.jsonl"

    def work() -> list[tuple[str, str]]:
        lines = [json.loads(x) for x in events.read_text().splitlines()]
        return [(e["event"], e["label"]) for e in lines if e["event"].startswith("work")]

    with progress._Env(progress.PROGRESS_ENV, str(events)):
        probes.probe_runs(tiny)  # every probe on disk: no work line (the warm-up's read back)
        assert work() == []
        more = load_profile("tiny", {**SPLIT, "seeds": [0], "probes.designs": DESIGNS,
                                     "probes.random": tiny.probes.random + 1})
        again = probes.probe_runs(more)  # one random batch more: computed, the rest read back
    assert again.sets["computed"].sum() == 1
    assert work() == [("work_started", "probes seed 0"), ("work_finished", "probes seed 0")]
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert lines[-1]["detail"] == f"1 of {len(again.batches)} probes computed"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("extra, match", [
    ({"probes.targets": ["arith_divide"]},
     r"probes.targets\[0\]: 'arith_divide' is not a test task"),
    ({"probes.candidates": 49}, r"probes.candidates: 49 is more than seed 0's training sample"),
])
def test_targets_and_candidates_the_data_cannot_give(home, extra, match) -> None:
    with pytest.raises(ParamsError, match=match):
        probes.check_probe_data(load_profile("tiny", {"seeds": [0], **extra}))


def test_same_label_without_relatives_in_the_sample_names_the_design(home) -> None:
    p = load_profile("tiny", {"seeds": [0], "probes.designs": ["same-label"]})
    with pytest.raises(ParamsError, match=r"probes.designs\[0\]: 'same-label': no target has a "
                                          r"batch \(2\) of its relatives' instances"):
        probes.check_probe_data(p)


def test_same_label_on_data_without_labels_names_the_design(home, tmp_path) -> None:
    ov = overrides("flan-mini", write_kind("flan-mini", tmp_path))
    p = load_profile("tiny", {**ov, "probes.designs": ["nearest-embedding", "same-label"]})
    with pytest.raises(ParamsError, match=r"probes.designs\[1\]: 'same-label' draws from the "
                                          r"target's relatives, and dataset.kind 'flan-mini'"):
        probes.check_probe_data(p)


def test_no_warm_up_is_refused_before_any_work(home) -> None:
    with pytest.raises(ParamsError, match=r"warmup.steps: 0 leaves no saved state"):
        probes.probe_runs(load_profile("tiny", {"seeds": [0], "warmup.steps": 0}))


# --------------------------------------------------------------------------- the chapter


def test_the_chapter_trains_the_warm_ups_and_chapter_7_s_runs_only(home) -> None:
    from zsg_lib.study import chapter_runs

    p = load_profile("tiny", {"seeds": [0, 1]})
    jobs = chapter_runs.chapter_jobs(p, "08_probes")
    assert [(j.kind, j.seed) for j in jobs] == [("warmup", 0), ("warmup", 1),
                                                ("arrangement", 0), ("arrangement", 1)]
    # shared with chapter 7: the book trains no run more for the probes
    book = [c for c in chapter_runs.CHAPTERS if c != "08_probes"]
    assert chapter_runs.chapters_work(p, book) == chapter_runs.chapters_work(
        p, [*book, "08_probes"])
    assert chapter_runs.chapter_jobs(load_profile("tiny", {"warmup.steps": 0}),
                                     "08_probes") == []


def test_the_summary_gets_the_probes_finding_or_why_not(tiny, results) -> None:
    from zsg_lib.study import chapter_data

    found = chapter_data.probe_finding(tiny)  # the probes read back
    assert found.section == "8. probes" and found.status != "not measured"
    none = chapter_data.probe_finding(load_profile("tiny", {"seeds": [0],
                                                            "warmup.steps": 0}))
    assert none.status == "not measured" and "warmup.steps: 0" in none.measured


@pytest.mark.slow
def test_the_chapter_executes_through_zsg_batch(tmp_path, monkeypatch) -> None:
    """``zsg batch 08_probes --profile tiny`` (two seeds): every cell runs, the verdict and the
    comparison with chapter 7 are on the page."""
    import nbformat

    from zsg_lib.cli import batch

    monkeypatch.setenv("ZSG_HOME", str(tmp_path / "home"))
    ov = {"seeds": [0, 1]}
    batch.check_run("08_probes", "tiny", ov)
    out = batch.run_chapter("08_probes", {"profile": "tiny", "overrides": ov},
                            tmp_path / "out", progress=False)
    nb = nbformat.read(out, as_version=4)
    assert nb.metadata["zsg"]["complete"] is True
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for o in outputs)
    assert "Traceback" not in text
    assert "8. probes" in text and "the observation ranks" in text
    charts = sum('class="zsg-chart"' in o.get("data", {}).get("text/html", "") for o in outputs)
    assert charts == 4  # design contrasts, levels, dose-response, the two rankings
