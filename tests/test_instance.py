"""The instance-level chapter's glue on the tiny profile: step-resolved runs, the predictor
frame, grad-nft, the seen-prefix distance, and the profile checks before any work."""

from __future__ import annotations

import numpy as np
import pytest

from zsg_lib.analysis import findings
from zsg_lib.analysis.predictor_stats import predictor_test
from zsg_lib.data.split import QUERY, TEST_PART
from zsg_lib.errors import ParamsError
from zsg_lib.profiles.params import load_profile
from zsg_lib.study import chapter_data, chapter_runs, checks, experiment as ex, instance


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("instance-runs")
    return checks.setup("tiny", "07_instance_level", {"runs_root": str(root), "seeds": [0, 1]})


def test_step_resolved_rows_stay_out_of_comparisons(tiny) -> None:
    w, k = tiny.warmup.steps, tiny.attribution.steps
    resolved = ex.run_many(tiny, ["rt", "random"], progress=False, resolved=True)
    plain = ex.run_many(tiny, ["rt", "nft"], progress=False)
    # rt and random are one shared run, scored after every step of the stretch
    assert resolved.groupby("seed")["run_id"].nunique().eq(1).all()
    assert set(range(w, w + k + 1)) <= set(resolved["step"])
    assert resolved.loc[resolved["step_resolved"].eq(True), "step"].between(w + 1, w + k).all()
    # the comparisons see the same steps under every arm
    steps = plain.groupby("arrangement")["step"].apply(lambda s: tuple(sorted(set(s))))
    assert steps["rt"] == steps["nft"]
    assert not plain["step_resolved"].eq(True).any()


def test_predictor_frame_holds_every_kind_for_each_step(tiny) -> None:
    frame = instance.predictor_frame(tiny, progress=False)
    w, k = tiny.warmup.steps, tiny.attribution.steps
    assert sorted(frame["step"].unique()) == list(range(w + 1, w + k + 1))
    assert (frame["step"] - frame["prev_step"]).eq(1).all()
    n_test = ex.prepare(tiny, 0).test.num_rows
    assert len(frame) == n_test * k * len(tiny.seeds)
    for col in ("emb_max", "emb_mean", "grad_max", "grad_mean"):
        assert frame[col].between(-1 - 1e-6, 1 + 1e-6).all(), col
    assert (frame["emb_max"] >= frame["emb_mean"] - 1e-6).all()
    assert frame["label"].isin([True, False]).all()
    assert frame[TEST_PART].eq(QUERY).all()  # no query split: every instance a query one
    table = instance.predictor_table(frame)
    assert set(table["kind"]) == {"embedding", "gradient", "label"}
    found = findings.instance_level(table)
    assert found.status in (*findings.compare.STATUSES, "not measured")

    kinds = chapter_data.relatives_kinds(tiny)
    by_task = instance.per_task_table(frame, kinds)
    assert len(by_task) == 2 * frame["task"].nunique()
    for (task, name), row in by_task.set_index(["task", "predictor"]).iterrows():
        alone = predictor_test(frame[frame["task"] == task], [name],
                                  cluster=("seed", "step")).iloc[0]
        assert row["slope"] == pytest.approx(alone["slope"], nan_ok=True)
        assert row["n_clusters"] == frame.loc[frame["task"] == task,
                                              ["seed", "step"]].drop_duplicates().shape[0]
        assert row["relatives"] == kinds.get(task, "—")
    assert "of {} test tasks".format(frame["task"].nunique()) in \
        instance.per_task_sentence(by_task)
    with pytest.raises(ValueError, match="none of the predictors"):
        instance.per_task_table(frame.drop(columns=["emb_max", "grad_mean"]))


def test_grad_nft_orders_by_gradient_features(tiny) -> None:
    grad = ex.arrangement(tiny, "grad-nft", 0)
    emb = ex.arrangement(tiny, "nft", 0)
    assert sorted(grad.ids) == sorted(emb.ids)  # the same sample, another order
    assert grad.ids != emb.ids
    feats = ex.gradient_features(tiny, 0, "train")
    assert feats.shape == (ex.prepare(tiny, 0).train.num_rows, tiny.attribution.gradient_dim)
    assert np.isfinite(feats).all()


def test_seen_distance_follows_the_run(tiny) -> None:
    seen = instance.seen_distance(tiny, "nft", 0)
    first = seen[seen["step"] == seen["step"].min()]
    assert first["n_seen"].eq(0).all() and first["min"].isna().all()
    later = seen[seen["step"] > seen["step"].min()]
    assert later["min"].notna().all() and later["loss"].notna().all()
    # the nearest seen instance can only come nearer as more are seen
    for _, per_task in later.sort_values("step").groupby("task"):
        assert per_task["min"].is_monotonic_decreasing


@pytest.mark.parametrize(("overrides", "key"), [
    ({"attribution.steps": 0}, "attribution.steps"),
    ({"train.method": "full"}, "chapters.instance"),
    ({"attribution.steps": 99}, "attribution.steps"),
    ({"attribution.arrangements": ["nope"]}, r"attribution.arrangements\[0\]"),
    ({"attribution.gradient_dim": 0}, "attribution.gradient_dim"),
])
def test_bad_attribution_settings_fail_before_any_run(overrides, key, tmp_path) -> None:
    with pytest.raises(ParamsError, match=r"params/tiny.yaml|\(overrides\)"):
        try:
            checks.setup("tiny", "07_instance_level", {"runs_root": str(tmp_path), **overrides})
        except ParamsError as exc:
            assert key.replace("\\", "") in str(exc)
            raise
    assert not any(tmp_path.iterdir())


def test_planned_runs_count_the_gradient_arm() -> None:
    base = chapter_runs.planned_runs(load_profile("tiny"))
    without = chapter_runs.planned_runs(load_profile("tiny", {"chapters.instance": ["nft"]}))
    assert base - without == len(load_profile("tiny").seeds)
