"""Issue #29: no arrangement reads an evaluation instance.

Under a query split (``split.query_per_task``), perturbing the text of the evaluation
instances leaves everything that reads the test set to arrange (every arrangement of the
catalog, the TMA turn windows, the probes' designs, the distances the chapters describe them
by) unchanged, and perturbing a query instance changes the nearest-first ones. Everything is
asked of the catalog, so an arrangement added to it is covered here without a new test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pyarrow as pa
import pytest

from zsg_lib.arrange import ARRANGEMENTS
from zsg_lib.profiles.params import Profile
from zsg_lib.study import chapter_data, checks, experiment as ex, probes

SEED = 0


@pytest.fixture(scope="module")
def split_profile(tmp_path_factory) -> Profile:
    """The tiny profile with 1 query + 2 evaluation instances per test task (its 3 test
    tasks), one seed, its 2-step warm-up (gradient features are taken there)."""
    root = tmp_path_factory.mktemp("runs")
    return checks.setup("tiny", overrides={"runs_root": str(root), "seeds": [SEED],
                                           "split.query_per_task": 1})


def _clear_caches() -> None:
    for cached in (ex.load_split, ex.prepare, ex.gradient_features, ex.window_arrangement):
        cached.cache_clear()


def _scrambled(messages: list[dict]) -> list[dict]:
    """Other text: every turn reversed and two unrelated words added."""
    return [{**m, "content": m["content"][::-1] + " xylophone quartz"} for m in messages]


@contextlib.contextmanager
def perturbed(monkeypatch: pytest.MonkeyPatch, ids: set[str]) -> Iterator[None]:
    """The loaded data with the text of ``ids`` changed (ids, tasks and row order kept, so
    every seeded draw picks the same rows), every memo of the glue cleared around it."""
    real = ex.data.load

    def load(*args, **kwargs):
        loaded = real(*args, **kwargs)
        table = loaded.table
        col = table.schema.get_field_index("messages")
        messages = [_scrambled(m) if i in ids else m for i, m in
                    zip(table.column("id").to_pylist(), table.column("messages").to_pylist())]
        table = table.set_column(col, table.schema.field(col),
                                 pa.array(messages, type=table.schema.field(col).type))
        return type(loaded)(loaded.kind, table, loaded.own_split, loaded.families)

    _clear_caches()
    with monkeypatch.context() as m:
        m.setattr(ex.data, "load", load)
        try:
            yield
        finally:
            _clear_caches()


def what_is_arranged(profile: Profile) -> dict[str, object]:
    """Everything that reads the test set to arrange or to describe an arrangement: every
    arrangement of the catalog (ids in order), every turn window, every probe batch, and the
    chapters' distances to the test set and nearest relatives."""
    unnamed = {n for n, spec in ARRANGEMENTS.items() if not spec.by_name_alone}
    # an arrangement not defined by its name alone needs its own line below
    assert unnamed == {"tma-window"}, f"cover {unnamed - {'tma-window'}} here"
    out: dict[str, object] = {name: list(ex.arrangement(profile, name, SEED).ids)
                              for name, spec in ARRANGEMENTS.items() if spec.by_name_alone}
    for start in profile.tma.window_starts:
        out[f"tma-window {start}"] = list(ex.window_arrangement(profile, start, SEED).ids)
    batches = probes.batches(profile, SEED)
    for row in batches.itertuples():
        out[f"probe {row.design} {row.target} {row.replicate}"] = list(row.ids)
    out["distances"] = chapter_data.distances(profile, SEED).round(6).to_dict("list")
    out["nearest relatives"] = chapter_data.nearest_relatives(profile, SEED).to_dict("list")
    return out


def test_the_split_is_per_task_and_seeded(split_profile) -> None:
    prep = ex.prepare(split_profile, SEED)
    query, evaluation = prep.query, prep.evaluation
    assert prep.has_split and query.num_rows + evaluation.num_rows == prep.test.num_rows
    tasks = prep.test.column("task").to_pylist()
    assert sorted(query.column("task").to_pylist()) == sorted(set(tasks))  # 1 a task
    assert not set(query.column("id").to_pylist()) & set(evaluation.column("id").to_pylist())
    assert prep.query_emb.shape[0] == query.num_rows
    assert prep.query_emb_tma.shape[0] == query.num_rows
    # the test set is today's: the split draws from its own stream
    plain = checks.setup("tiny", overrides={"seeds": [SEED]})
    assert prep.test.column("id").to_pylist() == ex.prepare(plain, SEED).test.column(
        "id").to_pylist()
    assert ex.prepare(plain, SEED).query is ex.prepare(plain, SEED).test


def test_evaluation_text_is_never_read_and_query_text_is(split_profile, monkeypatch) -> None:
    before = what_is_arranged(split_profile)
    prep = ex.prepare(split_profile, SEED)
    query_ids = prep.query.column("id").to_pylist()
    evaluation_ids = set(prep.evaluation.column("id").to_pylist())

    with perturbed(monkeypatch, evaluation_ids):
        changed = ex.prepare(split_profile, SEED)
        assert changed.query.column("id").to_pylist() == query_ids  # same split
        assert changed.test.column("messages").to_pylist() != prep.test.column(
            "messages").to_pylist()  # the perturbation reached the data
        after_evaluation = what_is_arranged(split_profile)
    assert after_evaluation.keys() == before.keys()
    differ = [k for k in before if after_evaluation[k] != before[k]]
    assert differ == [], f"these read evaluation instances: {differ}"

    with perturbed(monkeypatch, {query_ids[0]}):
        after_query = what_is_arranged(split_profile)
    target = prep.query.column("task").to_pylist()[0]
    for key in ("nft", "grad-nft", "tma-nft", "distances",
                f"probe nearest-embedding {target} 0", f"probe nearest-gradient {target} 0"):
        assert after_query[key] != before[key], f"{key} did not read the query instances"
