"""A 2-D map of training and test instances (UMAP of their sentence embeddings).

:func:`embedding_map_frame` returns one row per instance with map coordinates, the instance
text, its task, its position in a training order (training instances a run reaches) and, for
test instances, their nearest training instances: the table :func:`zsg_lib.pages.plots.embedding_map`
draws. UMAP is seeded, so the same inputs give the same map; its first fit in a process
compiles for ~15 s.

>>> import numpy as np
>>> train = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
>>> nearest_texts(train, np.array([[1.0, 0.1]]), ["east", "north", "north-east"], k=2)
['east | north-east']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..similarity import nearest


def project(embeddings: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """Seeded 2-D UMAP (cosine metric) of the rows of ``embeddings``."""
    import umap

    n = embeddings.shape[0]
    reducer = umap.UMAP(n_components=2, n_neighbors=max(2, min(n_neighbors, n - 1)),
                        metric="cosine", random_state=seed, n_jobs=1, init="random" if n < 8 else "spectral")
    return reducer.fit_transform(np.asarray(embeddings, dtype=np.float32))


def nearest_texts(train_emb: np.ndarray, test_emb: np.ndarray, train_texts: Sequence[str],
                  k: int = 3) -> list[str]:
    """For each test row, its ``k`` nearest training texts joined by `` | ``."""
    out = []
    for idx in nearest(train_emb, test_emb, k):
        out.append(" | ".join(train_texts[i][:80] for i in idx))
    return out


def embedding_map_frame(
    train_ids: Sequence[str], train_tasks: Sequence[str | None], train_texts: Sequence[str],
    train_emb: np.ndarray,
    test_tasks: Sequence[str | None], test_texts: Sequence[str], test_emb: np.ndarray,
    order: Sequence[str], consumed: int | None = None, seed: int = 0, k: int = 3,
) -> pd.DataFrame:
    """Map coordinates for train + test; ``position`` = place in ``order`` (NaN past ``consumed``).

    Columns: ``x, y, split, task, text, position, nearest``.
    """
    xy = project(np.vstack([train_emb, test_emb]), seed=seed)
    n = len(train_ids)
    pos = {i: p for p, i in enumerate(order[:consumed] if consumed else order)}
    train = pd.DataFrame({
        "x": xy[:n, 0], "y": xy[:n, 1], "split": "train", "task": list(train_tasks),
        "text": list(train_texts), "position": [pos.get(i, np.nan) for i in train_ids],
        "nearest": "",
    })
    test = pd.DataFrame({
        "x": xy[n:, 0], "y": xy[n:, 1], "split": "test", "task": list(test_tasks),
        "text": list(test_texts), "position": np.nan,
        "nearest": nearest_texts(train_emb, test_emb, list(train_texts), k),
    })
    return pd.concat([train, test], ignore_index=True)
