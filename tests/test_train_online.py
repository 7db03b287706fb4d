"""The online arrangement (issue #29, part 2): a batch source that picks each stretch from the
scores so far; its rule, its records, its identity, and a killed run resuming to the same
records (a real subprocess, as tests/test_train_resume.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import conv, kill_and_resume

from zsg_lib.arrange import OnlinePicker, arrange
from zsg_lib.errors import ArrangementError
from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, records as runs, train_run
from zsg_lib.train.batches import BatchSource, FixedOrder, OnlineSource


def pool_and_query(n=30, m=6, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    pool = instances_from_records([{"id": f"t{i}", "task": f"k{i % 3}",
                                    "messages": conv(f"{i} times 3?", str(3 * i))}
                                   for i in range(n)])
    query = instances_from_records([{"id": f"x{i}", "task": f"k{i % 3}",
                                     "messages": conv(f"{i} times 3 is?", str(3 * i))}
                                    for i in range(m)])
    return pool, rng.normal(size=(n, dim)), query, rng.normal(size=(m, dim))


def score_rows(step, losses):
    return [{"step": step, "id": f"x{q}", "task": f"k{q % 3}", "loss": float(v), "n_tokens": 2}
            for q, v in enumerate(losses)]


def picker(budget=20, lagging=0.5, **kw):
    pool, pool_emb, query, query_emb = pool_and_query(**kw)
    return OnlinePicker(pool, pool_emb, query_emb, query.column("id").to_pylist(), budget,
                        lagging=lagging)


# --------------------------------------------------------------------------- the rule


def test_a_stretch_serves_the_most_lagging_query_instances_their_nearest_unused():
    src = picker()
    base = [2.0, 1.0, 3.0, 1.5, 2.5, 1.2]
    now = [1.0, 0.9, 2.7, 0.3, 2.5, 0.6]  # ratios .5 .9 .9 .2 1 .5: x4, then x2 (higher loss)
    fed = [{"step": 1, "instance_ids": ["t0", "t1"]}, {"step": 2, "instance_ids": ["t2", "t3"]}]
    scores = score_rows(0, base) + score_rows(2, now)
    ids, why = src.batch(3, 2, scores, fed)
    ids2, why2 = src.batch(4, 2, scores, fed + [{"step": 3, "instance_ids": ids}])
    picks = pd.DataFrame(why + why2)
    ranked = sorted(range(6), key=lambda q: (-now[q] / base[q], -now[q], q))[:3]
    assert picks["query_id"].tolist()[:3] == [f"x{q}" for q in ranked]  # in turn, most first
    assert picks["scored_at"].eq(2).all() and picks["query_rank"].tolist()[:3] == [0, 1, 2]
    np.testing.assert_allclose(picks["loss_ratio"],
                               [now[int(q[1:])] / base[int(q[1:])] for q in picks["query_id"]])
    # each pick: the query instance's nearest pool instance not fed before and not taken yet
    unit = src.unit / np.linalg.norm(src.unit, axis=1, keepdims=True)
    taken = {"t0", "t1", "t2", "t3"}
    for _, r in picks.iterrows():
        q = int(r["query_id"][1:])
        sims = unit @ src.query_unit[q]
        free = [k for k in np.argsort(-sims, kind="stable") if f"t{k}" not in taken]
        assert r["id"] == f"t{free[0]}"
        assert r["distance"] == pytest.approx(1 - sims[free[0]], abs=1e-6)
        taken.add(r["id"])


def test_the_branch_point_serves_the_highest_losses_and_the_budget_ends_the_run():
    src = picker(budget=5, lagging=1 / 6)
    scores = score_rows(0, [1.0, 4.0, 2.0, 0.5, 3.0, 1.0])
    ids, why = src.batch(1, 4, scores, [])
    assert {r["query_id"] for r in why} == {"x1"} and len(ids) == 4
    last, _ = src.batch(2, 4, scores, [{"step": 1, "instance_ids": ids}])
    assert len(last) == 1 and last[0] not in ids  # the budget's fifth instance


def test_a_fresh_picker_rebuilds_a_stretch_from_the_scores_and_the_log_alone():
    scores = score_rows(0, [2.0] * 6) + score_rows(2, [1.0, 2.0, 1.5, 0.5, 2.2, 1.9])
    fed = [{"step": 1, "instance_ids": ["t5", "t9"]}, {"step": 2, "instance_ids": ["t7", "t1"]}]
    first = picker()
    a3 = first.batch(3, 2, scores, fed)
    a4 = first.batch(4, 2, scores, fed + [{"step": 3, "instance_ids": a3[0]}])
    # resumed at step 4: another object, the log up to step 3 (step 3 mid-stretch)
    b4 = picker().batch(4, 2, scores, fed + [{"step": 3, "instance_ids": a3[0]}])
    assert a4 == b4
    # a stretch ignores what was fed after its scoring point
    assert picker().batch(3, 2, scores, fed + [{"step": 3, "instance_ids": ["t0"]}]) == a3


def test_step_resolved_scores_are_not_scoring_points():
    src = picker()
    scores = score_rows(0, [2.0] * 6) + [dict(r, step_resolved=True)
                                          for r in score_rows(1, [0.1] * 5 + [9.0])]
    assert {r["scored_at"] for r in src.batch(2, 2, scores, [
        {"step": 1, "instance_ids": ["t0"]}])[1]} == {0}


def test_bad_input_is_named():
    pool, pool_emb, query, query_emb = pool_and_query()
    qids = query.column("id").to_pylist()
    with pytest.raises(ArrangementError, match=r"^budget: 31 instances asked, but the pool"):
        OnlinePicker(pool, pool_emb, query_emb, qids, 31)
    with pytest.raises(ArrangementError, match=r"^lagging: expected a share in \(0, 1\]"):
        OnlinePicker(pool, pool_emb, query_emb, qids, 4, lagging=0)
    with pytest.raises(ArrangementError, match=r"^query_ids: 5 ids for 6 query embeddings"):
        OnlinePicker(pool, pool_emb, query_emb, qids[:5], 4)
    with pytest.raises(ArrangementError, match="no scored step before it"):
        OnlinePicker(pool, pool_emb, query_emb, qids, 4).batch(1, 2, [], [])


def test_the_preview_is_the_picker_when_no_loss_moves():
    pool, pool_emb, query, query_emb = pool_and_query()
    a = arrange("online-nft", pool, pool_emb, query_emb, budget=12, size=2, stretch=3)
    assert len(a.ids) == 12 == len(set(a.ids)) and a.params["preview"]
    assert a.table["round"].tolist() == [0] * 6 + [1] * 6  # two stretches of 3 steps x 2
    assert set(a.table["test_index"]) == {0, 1}  # a quarter of 6 query instances: the first 2


def test_sources_satisfy_the_loop_s_interface():
    src = picker()
    assert isinstance(src, BatchSource) and isinstance(src, OnlineSource)
    assert isinstance(FixedOrder(["a"], 1, 0), BatchSource)
    assert not isinstance(["a", "b"], BatchSource)


# --------------------------------------------------------------------------- a run

CFG = TrainConfig(model="tiny", bf16_autocast=False, batch_size=2, eval_every=2,
                  learning_rate=5e-3, lora_dropout=0.0)


def online_run(root, budget=10, **kw):
    pool, pool_emb, query, query_emb = pool_and_query(**kw)
    src = OnlinePicker(pool, pool_emb, query_emb, query.column("id").to_pylist(), budget,
                       lagging=0.5)
    return train_run(CFG, pool, query, src, runs_root=root, progress=False)


def test_an_online_run_records_every_pick_with_its_reason(tmp_path):
    rec = online_run(tmp_path)
    fed = [i for ids in rec.log["instance_ids"] for i in ids]
    assert rec.log["step"].tolist() == [1, 2, 3, 4, 5] and len(fed) == 10 == len(set(fed))
    assert rec.picks["id"].tolist() == fed and rec.picks["position"].tolist() == list(range(10))
    order = pd.read_parquet(rec.path / runs.ORDER)
    assert order["id"].tolist() == fed
    # each step's picks come from the latest scoring point before it
    assert (rec.picks["scored_at"] == (rec.picks["step"] - 1) // 2 * 2).all()
    # the reason's losses are the run's own scores there
    own = rec.scores.set_index(["step", "id"])["loss"]
    for _, r in rec.picks.iterrows():
        assert r["query_loss"] == pytest.approx(own[(r["scored_at"], r["query_id"])])
        assert r["query_branch_loss"] == pytest.approx(own[(0, r["query_id"])])
    assert online_run(tmp_path).reused  # the same source, data and config: one run


def test_an_online_run_is_identified_by_what_decides_its_picks(tmp_path):
    a = online_run(tmp_path)
    assert "train_online" in a.params["data"] and "train_ordered" not in a.params["data"]
    fixed = train_run(CFG, *pool_and_query()[::2], list(a.picks["id"]), runs_root=tmp_path,
                      progress=False)
    assert fixed.run_id != a.run_id  # the same ids fed as a fixed order: another run
    pool, pool_emb, query, query_emb = pool_and_query()
    other_emb = OnlinePicker(pool, pool_emb + 1e-3, query_emb, query.column("id").to_pylist(),
                             10, lagging=0.5)
    assert other_emb.identity() != OnlinePicker(
        pool, pool_emb, query_emb, query.column("id").to_pylist(), 10, lagging=0.5).identity()


# --------------------------------------------------------------------------- resume

SCRIPT = '''
import sys, time
import numpy as np
from zsg_lib.arrange import OnlinePicker
from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, train_run

def conv(q, a):
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]

# dropout on, so the resumed run must also restore the RNG to match
CFG = TrainConfig(model="tiny", bf16_autocast=False, batch_size=3, eval_every=2,
                  checkpoint_every=3, lora_dropout=0.1, learning_rate=5e-3, schedule="cosine")

def main(root, delay):
    rng = np.random.default_rng(0)
    pool = instances_from_records([{"id": f"t{i}", "task": f"k{i % 3}",
        "messages": conv(f"{i} times 3?", str(3 * i))} for i in range(40)])
    query = instances_from_records([{"id": f"x{i}", "task": f"k{i % 3}",
        "messages": conv(f"{i} times 3 is?", str(3 * i))} for i in range(6)])
    src = OnlinePicker(pool, rng.normal(size=(40, 8)), rng.normal(size=(6, 8)),
                       query.column("id").to_pylist(), budget=36, lagging=0.5)
    on_step = (lambda step, row: time.sleep(delay)) if delay else None
    train_run(CFG, pool, query, src, runs_root=root, progress=False, on_step=on_step)

if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
'''



def _tables(run_dir: Path) -> list[pd.DataFrame]:
    return [pd.read_parquet(run_dir / runs.LOG).drop(columns=["seconds"]),
            pd.read_parquet(run_dir / runs.SCORES), pd.read_parquet(run_dir / runs.PICKS),
            pd.read_parquet(run_dir / runs.ORDER)]


def test_a_killed_online_run_resumes_to_the_same_picks_and_records(tmp_path):
    # killed after the first checkpoint (step 3: mid-stretch); each resume builds a fresh
    # picker, so the picks come from the checkpoint's scores and log, not from memory
    run_dir, clean_dir = kill_and_resume(SCRIPT, tmp_path, wait_s=300, after_s=0.3)
    killed, clean = _tables(run_dir), _tables(clean_dir)
    assert killed[0]["step"].tolist() == list(range(1, 13))
    assert len(killed[2]) == 36
    for k, c in zip(killed, clean):
        pd.testing.assert_frame_equal(k, c, check_exact=False, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- the profile


def test_a_run_without_scoring_points_after_the_branch_is_refused_naming_the_key():
    from zsg_lib.errors import ParamsError
    from zsg_lib.profiles.params import check_chapter, load_profile

    # tiny: tma.budget 16 at 2 a step, at most train.max_steps 6: six steps
    p = load_profile("tiny", {"train.eval_every": 6})
    with pytest.raises(ParamsError, match=r"train\.eval_every: 6, but chapters\.tma\[5\] "
                                          r"\('online-nft'\) .* has 6 steps"):
        check_chapter(p, "05_tma")
    check_chapter(p, "03_similarity")  # the chapters that do not train it are not refused
    with pytest.raises(ParamsError, match=r"train\.eval_every: 3, but .* has 2 steps"):
        check_chapter(load_profile("tiny", {"train.eval_every": 3, "tma.budget": 4}), "05_tma")
    with pytest.raises(ParamsError, match=r"train\.eval_every: must be positive"):
        load_profile("tiny", {"train.eval_every": 0})
    check_chapter(load_profile("tiny", {"train.eval_every": 6, "chapters.tma": ["tma-nft"]}),
                  "05_tma")


def test_a_pool_smaller_than_the_budget_is_refused_before_any_run():
    from zsg_lib.errors import ParamsError
    from zsg_lib.study import experiment as ex
    from zsg_lib.study.checks import setup

    pool = ex.prepare(setup("tiny", seeds=[0]), 0).pool.num_rows
    with pytest.raises(ParamsError, match=rf"tma\.budget: {pool + 1} instances, but seed 0's "
                                          rf"training pool holds {pool}"):
        with pytest.warns(UserWarning, match="exceeds the training set"):  # TMA's, a warning
            setup("tiny", "05_tma", {"tma.budget": pool + 1, "train.max_steps": 6},
                  seeds=[0])


def test_the_plan_counts_an_online_run_at_its_budget_s_steps():
    from zsg_lib.profiles.params import load_profile
    from zsg_lib.study.chapter_runs import chapters_work

    p = load_profile("tiny", {"seeds": [0], "tma.budget": 6,
                              "chapters.tma": ["tma-nft", "online-nft"]})
    # the warm-up (2), tma-nft (6), online-nft (6 / 2 a step), random (its baseline, 6),
    # two turn windows (6 each)
    assert chapters_work(p, ["05_tma"]) == (6, 2 + 6 + 3 + 6 + 12)
