"""The glue on the tiny profile: data per seed, arrangements, shared runs, findings."""

from __future__ import annotations

import pandas as pd
import pytest

from zsg_lib.analysis import findings
from zsg_lib.data.split import EVALUATION, QUERY, TEST_PART
from zsg_lib.errors import ParamsError
from zsg_lib.study import chapter_data, chapter_runs, checks, experiment as ex, instance
from zsg_lib.train import records


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny profile without a warm-up: runs start at step 0 (the warm-up has its own
    tests below)."""
    root = tmp_path_factory.mktemp("runs")
    return checks.setup("tiny", "03_similarity", {"runs_root": str(root), "seeds": [0, 1, 2],
                                              "warmup.steps": 0})


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """The tiny profile as shipped: comparisons branch from a 2-step shared warm-up."""
    root = tmp_path_factory.mktemp("warm-runs")
    return checks.setup("tiny", "03_similarity", {"runs_root": str(root), "seeds": [0, 1]})


def test_warm_up_instances_are_drawn_once_and_never_seen_again(warm) -> None:
    prep, again = ex.prepare(warm, 0), ex.prepare(warm, 1)
    drawn = set(prep.warmup.column("id").to_pylist())
    assert len(drawn) == warm.warmup.steps * warm.train.instances_per_step
    assert drawn != set(again.warmup.column("id").to_pylist())  # seeded per seed
    assert not drawn & set(prep.pool.column("id").to_pylist())
    assert not drawn & set(prep.train.column("id").to_pylist())
    for name in ("random", "nft", "tma-nft"):
        assert not drawn & set(ex.arrangement(warm, name, 0).ids)


def test_comparisons_branch_from_one_shared_warm_up(warm, monkeypatch) -> None:
    import zsg_lib.train.run as train_mod

    scores = ex.run_many(warm, ["nft", "fft"], seeds=[0], progress=False)
    w = warm.warmup.steps
    assert scores["step"].min() == w and scores["step"].max() == w + warm.train.max_steps
    base = scores[scores["step"] == w].pivot_table(index="id", columns="arrangement",
                                                   values="loss")
    assert (base["nft"] == base["fft"]).all()  # both start from the same state
    warm_up = ex.branch_point(warm, 0)
    assert warm_up.reused and warm_up.log["step"].tolist() == list(range(1, w + 1))
    nft = ex.run(warm, "nft", 0)
    assert nft.params["data"]["branch"] == {"run_id": warm_up.run_id, "step": w}
    early = ex.run(warm, "random", 0, branch=False)  # chapter 1: from step 0, generating
    assert early.scores["step"].min() == 0 and early.scores["rouge1"].notna().any()
    calls = []
    real = train_mod.Loop
    monkeypatch.setattr(train_mod, "Loop", lambda *a, **k: calls.append(1) or real(*a, **k))
    ex.run_many(warm, ["nft", "fft"], seeds=[0], progress=False)
    assert calls == []  # warm-up and arms read back
    # per seed: the warm-up, and chapter 1's run from step 0 no longer shared with chapter 2
    assert chapter_runs.planned_runs(warm) == chapter_runs.planned_runs(
        checks.setup("tiny", overrides={"warmup.steps": 0, "seeds": [0, 1]})) + 2 * (1 + 1)


def test_warm_up_bad_input_is_refused_before_work() -> None:
    with pytest.raises(ParamsError, match="warmup.steps: 9 is longer than"):
        checks.setup("tiny", overrides={"warmup.steps": 9})
    with pytest.raises(ParamsError, match="warmup.steps: .* the training pool holds"):
        ex.prepare(checks.setup("tiny", overrides={"warmup.steps": 6, "train.batch_size": 64,
                                               "split.n_train_tasks": 1}), 0)


def test_seeds_resample_data_and_split_is_fixed(tiny) -> None:
    a, b = ex.prepare(tiny, 0), ex.prepare(tiny, 1)
    assert a.split is b.split  # one split per profile
    assert set(a.test.column("task").to_pylist()) == set(b.test.column("task").to_pylist())
    assert a.train.column("id").to_pylist() != b.train.column("id").to_pylist()
    assert not set(a.train.column("task").to_pylist()) & set(a.test.column("task").to_pylist())
    assert a.pool.num_rows > a.train.num_rows and a.pool_emb.shape[0] == a.pool.num_rows


def test_arrangements_cover_the_right_tables(tiny) -> None:
    prep = ex.prepare(tiny, 0)
    sample = set(prep.train.column("id").to_pylist())
    for name in ("random", "round-robin", "cluster", "nft", "fft", "rt", "coarse-nft"):
        a = ex.arrangement(tiny, name, 0)
        assert a.name == name and set(a.ids) == sample
    tma = ex.arrangement(tiny, "tma-nft", 0)
    assert len(tma.ids) == tiny.tma.budget and set(tma.ids) <= set(prep.pool.column("id").to_pylist())


def test_relatives_fed_counts_what_each_order_feeds(tmp_path) -> None:
    # test tasks with helpful and mirror relatives among all the demo's training tasks
    prof = checks.setup("tiny", "03_similarity", {
        "runs_root": str(tmp_path), "split.n_train_tasks": None,
        "split.test_tasks": ["month_names_en_fr", "number_words_fr", "string_remove_vowels"]})
    fam = ex.load_split(prof).families.set_index("task")
    steps = prof.train.max_steps
    fed = chapter_data.relatives_fed(prof, ["nft", "fft"], steps=steps, seeds=[0, 1])
    test_tasks = set(ex.prepare(prof, 0).test.column("task").to_pylist())
    assert set(fed["task"]) == test_tasks and len(fed) == 2 * 2 * len(test_tasks)
    n = steps * prof.train.instances_per_step
    for row in fed.itertuples():
        first = ex.arrangement(prof, row.arrangement, row.seed).table["task"].iloc[:n]
        helpful = set(filter(None, fam.loc[row.task, "helpful"].split(", ")))
        mirror = set(filter(None, fam.loc[row.task, "mirror"].split(", ")))
        assert row.helpful == first.isin(helpful).sum() and row.mirror == first.isin(mirror).sum()
        assert row.of == n and row.relatives == fam.loc[row.task, "relatives_kind"]
    assert fed["helpful"].sum() > 0 and fed["mirror"].sum() > 0  # not a check of zeros


def test_runs_are_shared_not_retrained(tiny, monkeypatch) -> None:
    first = ex.run(tiny, "random", 0)
    assert not first.reused
    stamp = (first.path / "DONE").stat().st_mtime_ns
    # rt at fine granularity is the same seeded shuffle as random: the same run
    again = ex.run(tiny, "rt", 0)
    assert again.reused and again.run_id == first.run_id
    assert (first.path / "DONE").stat().st_mtime_ns == stamp

    import zsg_lib.train.run as train_mod

    calls = []
    real_loop = train_mod.Loop
    monkeypatch.setattr(train_mod, "Loop", lambda *a, **k: calls.append(1) or real_loop(*a, **k))
    scores = ex.run_many(tiny, ["random", "rt"], seeds=[0], progress=False)
    assert calls == []  # both read back from disk
    assert set(scores["arrangement"]) == {"random", "rt"} and scores["run_id"].nunique() == 1


def test_run_consumes_budget_only(tiny) -> None:
    rec = ex.run(tiny, "nft", 0)
    consumed = [i for ids in rec.log["instance_ids"] for i in ids]
    order = ex.arrangement(tiny, "nft", 0).ids
    assert consumed == order[: tiny.train.max_steps * tiny.train.instances_per_step]
    assert sorted(rec.scores["step"].unique()) == [0, 2, 4, 6]
    assert rec.scores["rouge1"].isna().all()  # no generation unless asked


def test_generation_where_configured_or_asked(tiny) -> None:
    assert "random" in tiny.generate_for
    rec = ex.run(tiny, "random", 1)  # chapter 1's baseline always generates, so it is shared
    gen_steps = sorted(rec.scores.dropna(subset=["rouge1"])["step"].unique())
    assert gen_steps == list(tiny.train.generate_at)
    asked = ex.run(tiny, "fft", 1, generate=True)
    plain = ex.run(tiny, "fft", 1)
    assert asked.run_id != plain.run_id and plain.scores["rouge1"].isna().all()
    assert asked.scores["rouge1"].notna().any()


def test_run_many_and_findings(tiny) -> None:
    scores = ex.run_many(tiny, ["nft", "fft", "rt"], progress=False)
    assert {"arrangement", "seed", "run_id", "step", "id", "task", "loss"} <= set(scores)
    assert scores.groupby("arrangement")["seed"].nunique().to_dict() == {"fft": 3, "nft": 3, "rt": 3}
    f = findings.similarity(tiny.judge, scores)
    from zsg_lib.analysis.compare import STATUSES

    assert f.status in STATUSES  # the words of issue 9's verdicts
    assert len(f.comparisons) == 2 and "task-balanced" in f.measured
    assert "nft" in f.measured and "p =" in f.measured


def test_windows_and_drops(tiny) -> None:
    w = ex.run_windows(tiny, seeds=[0], progress=False)
    assert set(w["window_start"]) == set(tiny.tma.window_starts)
    scores = ex.run_many(tiny, ["cluster"], seeds=[0], progress=False)
    drops = chapter_data.sudden_drops(tiny, scores, "cluster", seeds=[0])
    assert set(drops["kind"]) <= {"sudden drop", "steady fall", "rise", "flat"}
    assert drops["task"].nunique() == len(set(ex.prepare(tiny, 0).test.column("task").to_pylist()))


def test_setup_rejects_bad_overrides_before_work() -> None:
    with pytest.raises(ParamsError, match=r"tiny.yaml \(overrides\): train.max_steps: expected int"):
        checks.setup("tiny", "03_similarity", {"train.max_steps": "x"})


def test_describe_is_a_table(tiny) -> None:
    d = ex.describe(tiny)
    assert isinstance(d, pd.DataFrame) and "seeds" in set(d["setting"])
    split = ex.describe(checks.setup("tiny", overrides={"split.query_per_task": 1}))
    said = dict(zip(split["setting"], split["value"]))["test instances per task"]
    assert said.startswith("1 query (arranged toward) + 2 evaluation (never arranged toward)")
    assert "the paper's design" in dict(zip(d["setting"], d["value"]))["test instances per task"]


def test_a_query_split_is_recorded_and_both_parts_are_scored(tmp_path) -> None:
    over = {"runs_root": str(tmp_path), "seeds": [0]}
    plain = checks.setup("tiny", "07_instance_level", over)
    split = checks.setup("tiny", "07_instance_level", {**over, "split.query_per_task": 1})
    prep = ex.prepare(split, 0)
    query = prep.query.column("id").to_pylist()
    expected = {i: QUERY if i in set(query) else EVALUATION
                for i in prep.test.column("id").to_pylist()}
    assert set(expected.values()) == {QUERY, EVALUATION}

    scores = ex.run_many(split, ["nft", "random"], progress=False)
    for name, part in scores.groupby("arrangement"):  # every run scores both parts
        assert part.drop_duplicates("id").set_index("id")[TEST_PART].to_dict() == expected
    rec, warm = ex.run(split, "nft", 0), ex.branch_point(split, 0)
    # an order that read the query instances records them, read back by load_runs
    assert rec.params["data"]["query"] == sorted(query)
    assert rec.scores.set_index("id")[TEST_PART].to_dict() == expected
    assert records.load_runs(rec.path).scores.drop_duplicates("id").set_index("id")[
        TEST_PART].to_dict() == expected
    frame = instance.predictor_frame(split, progress=False)  # chapter 7's frame carries it
    assert frame.drop_duplicates("id").set_index("id")[TEST_PART].to_dict() == expected

    # no split: nothing new in the record, every instance a query one, the same test set;
    # a run whose order read the query split is never read back without it
    same = ex.run(plain, "nft", 0)
    assert "query" not in same.params["data"] and same.run_id != rec.run_id
    assert same.params["data"]["test"] == rec.params["data"]["test"]
    assert ex.run_many(plain, ["nft"], progress=False)[TEST_PART].eq(QUERY).all()
    # an order that read no test instance (the warm-up, a shuffle) is one run under any
    # split: the same computation; its scores get their part from the study's split
    assert "query" not in warm.params["data"]
    assert ex.branch_point(plain, 0).run_id == warm.run_id
    shuffle, shuffle_plain = ex.run(split, "random", 0), ex.run(plain, "random", 0)
    assert shuffle.run_id == shuffle_plain.run_id
    assert ex.run_many(plain, ["random"], progress=False)[TEST_PART].eq(QUERY).all()


def test_turn_windows_past_the_rounds_fail_when_the_chapter_starts(tmp_path) -> None:
    overrides = {"runs_root": str(tmp_path), "seeds": [0], "tma.window_starts": [0, 10_000]}
    with pytest.raises(ParamsError, match=r"tma.window_starts\[1\]: round 10000 does not exist"):
        checks.setup("tiny", "05_tma", overrides)
    assert not list(tmp_path.iterdir())  # nothing trained


def test_no_notebook_bar_in_the_site_build(tiny, monkeypatch) -> None:
    """In the site build the runs' bar is off (its widget would load a CDN script)."""
    from zsg_lib.study import experiment

    made = []
    monkeypatch.setattr(experiment, "tqdm", lambda it, **kw: made.append(kw) or it)
    monkeypatch.setenv("ZSG_SITE_BUILD", "1")
    ex.run_many(tiny, ["random"], seeds=[0], progress=True)
    monkeypatch.delenv("ZSG_SITE_BUILD")
    ex.run_many(tiny, ["random"], seeds=[0], progress=True)
    assert [kw["disable"] for kw in made] == [True, False]
