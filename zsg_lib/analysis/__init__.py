"""Analysis: what the score tables say, from plain tables and arrays (no profile, no runs).

===================  =========================================================================
module               job
===================  =========================================================================
``stats``            intervals and tests over seeds (means, paired tests, trends), via SciPy
``transitions``      per-task curve shapes (sudden drop, gradual, flat) and what arrived before
``findings``         each claim of the paper judged from the numbers (:class:`Judge`, ``Finding``)
``beyond``           analyses beyond the paper: OT vs WSD, nearest relatives, closeness vs gain
``maps``             a seeded 2-D UMAP map of training and test instances
``seen``             the seen-prefix distance: how close what a run has seen is to each test task
``bootstrap``        the one cluster bootstrap: resampled clusters (SciPy), percentile intervals
``compare``          two arms on the same test instances: three views, intervals, the verdict
``predictors``       per test instance: its loss changes and the similarity (embedding, gradient,
                     label) of the batches trained on between them
``predictor_stats``  which similarity predicts the loss drop: Spearman, fixed-effects slopes,
                     partial R², cluster-bootstrap intervals
===================  =========================================================================
"""
