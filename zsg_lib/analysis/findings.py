"""The paper's findings, each judged from this run's numbers.

One function per finding takes a :class:`Judge` (the run length and the statistics' settings,
``Profile.judge`` in the book) and the score table of its runs (from
:func:`zsg_lib.study.experiment.run_many`) and returns a :class:`Finding`: the paper's claim,
what was measured (a sentence built from the numbers), and the agreement status. Chapters show
their own finding; the summary chapter collects them all
(:func:`zsg_lib.study.chapter_data.collect_findings`). Nothing here is a hard-coded verdict.

Statuses (the same words everywhere, :data:`zsg_lib.analysis.compare.STATUSES`): ``agrees``
(as claimed, and the 95% intervals exclude no effect), ``agrees in direction only``,
``does not agree``, ``opposite, significantly``, and ``not measured`` (the profile does not
run what the claim needs). Comparisons of arrangements (§3–5) are judged by
:mod:`zsg_lib.analysis.compare`: arms paired on the same test instances, three views, cluster
bootstrap over test task × seed, after the branch point.

**Query and evaluation instances** (issue #29): a test-centric claim (chapters 3–5 and 7) is
judged by :func:`by_part` (or :func:`on_parts`) once on the query instances (those the
arrangements looked at: the paper's verdict, the finding itself) and once on the evaluation
instances (never arranged toward: :attr:`Finding.evaluation`), by the same statistic on each
part's rows; :func:`part_difference` says in words where the two verdicts differ. Chapters 1
and 2 arrange without looking at test instances and are judged on all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from ..data.demo import relatives_of
from ..data.split import EVALUATION, QUERY
from . import compare, parts, stats
from .compare import Comparison, View, verdict, worst
from .transitions import classify_tasks


@dataclass(frozen=True)
class Judge:
    """What the findings need to know of a run and how to judge it: ``max_steps`` of the
    runs, ``eval_every`` (scoring interval), the first ``first_n_steps`` compared for
    "sooner" claims, and the significance level ``alpha``.

    >>> j = Judge(max_steps=20, eval_every=4, first_n_steps=12, alpha=0.05)
    >>> j.first_window, j.last_window
    ((1, 12), (14, 20))
    >>> Judge(max_steps=48, eval_every=4, first_n_steps=12, branch_step=8).first_window
    (9, 20)
    """

    max_steps: int
    eval_every: int
    first_n_steps: int
    alpha: float = 0.05
    branch_step: int = 0  # where the compared runs start (a shared warm-up's last step)

    @property
    def first_window(self) -> tuple[int, int]:
        """The first ``first_n_steps`` steps after the branch point (for "reaches lower loss
        sooner" claims)."""
        b = self.branch_step
        return (b + 1, min(b + self.first_n_steps, self.max_steps))

    @property
    def drop_from(self) -> int:
        """Where per-task curve shapes are read from: the first evaluation after the branch
        point (the first interval is the universal early fall)."""
        return self.branch_step + self.eval_every

    @property
    def last_window(self) -> tuple[int, int]:
        """The last third of the steps after the branch point (for "ends lower" claims)."""
        b, end = self.branch_step, self.max_steps
        return (max(b + 1, end - (end - b) // 3), end)


@dataclass(frozen=True)
class Contrast:
    """The number a claim is judged on, for the summary's forest plot: ``estimate`` with its
    95% interval ``[lo, hi]`` (NaN with ``why`` when there is none), the side of ``reference``
    the claim expects it on (``claimed``: ``"below"`` or ``"above"``), what it measures
    (``measure``, the chart's axis: contrasts sharing one are drawn on one scale), how to
    show its numbers (``fmt``, a format spec) and the verdict of this contrast.

    >>> c = Contrast("nft − rt", -0.10, -0.15, -0.05, "below", "loss difference", "agrees")
    >>> c.shown(), round(c.detectable, 4)
    ('-0.1 [-0.15, -0.05]', 0.0715)
    """

    label: str
    estimate: float
    lo: float
    hi: float
    claimed: Literal["below", "above"]
    measure: str
    status: str
    reference: float = 0.0
    fmt: str = "+.3g"
    why: str = ""

    @property
    def detectable(self) -> float:
        """The smallest difference from ``reference`` this run detects with 80% power
        (:func:`zsg_lib.analysis.stats.minimum_detectable`; NaN without an interval)."""
        return stats.minimum_detectable(self.lo, self.hi)

    def shown(self) -> str:
        """``-0.100 [-0.150, -0.050]``, or the estimate and why there is no interval."""
        f = self.fmt
        est, lo, hi = (v + 0.0 for v in (self.estimate, self.lo, self.hi))  # no "-0"
        if self.why or not np.isfinite(lo):
            return f"{est:{f}} (no interval{': ' + self.why if self.why else ''})"
        return f"{est:{f}} [{lo:{f}}, {hi:{f}}]"


def view_contrast(label: str, view: View, claimed: Literal["below", "above"], measure: str,
                  status: str | None = None) -> Contrast:
    """A :class:`~zsg_lib.analysis.compare.View` as a contrast (its verdict on "below 0"
    unless ``status`` says otherwise)."""
    return Contrast(label, view.estimate, view.lo, view.hi, claimed, measure,
                    status or verdict([view]), why=view.why)


#: What an ordering's contrasts measure: the instance view of a pair (the paper's mean).
LOSS_DIFFERENCE = "difference in mean test loss, a − b (nats; instance mean)"


@dataclass(frozen=True)
class Finding:
    """A claim of the paper next to what this run measured; ``contrasts``: the numbers its
    verdict rests on, each with its interval (none where the claim has no interval).

    A test-centric finding judged part by part (:func:`by_part`) is the query instances'
    verdict, with the evaluation instances' in ``evaluation``, or, where the scores hold none
    (no query split), why not in ``no_evaluation``."""

    section: str
    claim: str
    measured: str
    status: str
    details: pd.DataFrame = field(default_factory=pd.DataFrame, compare=False, repr=False)
    comparisons: tuple[Comparison, ...] = field(default=(), compare=False, repr=False)
    contrasts: tuple[Contrast, ...] = field(default=(), compare=False, repr=False)
    evaluation: Finding | None = field(default=None, compare=False, repr=False)
    no_evaluation: str = field(default="", compare=False, repr=False)

    def row(self, parts_columns: bool = False) -> dict[str, str]:
        """One row of :func:`table`; ``parts_columns``: with the evaluation instances'
        numbers and verdict (``—`` where the finding is judged on all instances)."""
        row = {"finding": self.section, "paper": self.claim, "this run": self.measured,
               "agreement": self.status}
        if parts_columns:
            e = self.evaluation
            row["this run, evaluation instances"] = e.measured if e else "—"
            row["agreement, evaluation instances"] = (
                e.status if e else "— (judged on all test instances)")
        return row


#: The paper's claims, in its words as far as PAPER.md gives them.
CLAIMS = {
    "early": "Test loss (and every metric) moves within the first few checkpoints; then flat.",
    "stability": "Loss is the most stable metric, so the study uses test loss.",
    "permutations": "Under Cluster, a test task's loss drops suddenly when a similar task arrives.",
    "similarity": "Nearest-first training reaches lower test loss sooner; farthest-first is "
                  "worst (NFT < RT < FFT).",
    "granularity": "Fine-grained (instance) arrangement ends with lower test loss than "
                   "coarse-grained (task) arrangement.",
    "tma": "TMA-NFT keeps lowering test loss; the other settings flatten "
           "(TMA-NFT < TMA-RT < TMA-FFT).",
    "windows": "Training on earlier TMA rounds (nearer picks) gives lower test loss.",
    "instance": "Zero-shot generalization is similarity-based at the instance level: the "
                "nearer a training batch is to a test instance (sentence embeddings), the "
                "more that instance's loss falls.",
    "probes": "The same claim by experiment: from one saved state, a step on a batch similar "
              "to a test task lowers that task's loss more than a random batch does "
              "(nearest by gradient − random, on the target).",
    "gradient order": "(not the paper's; LESS) Ordering by gradient similarity beats ordering "
                      "by sentence embeddings (grad-nft < nft).",
    "online": "(not the paper's; issue #29) Feeding each stretch the data nearest the query "
              "instances whose loss lags most beats TMA-NFT's fixed order of the same budget, "
              "and random order (online-nft < tma-nft, online-nft < random).",
}


def _status(direction: bool, significant: bool) -> str:
    if direction and significant:
        return "agrees"
    return "agrees in direction only" if direction else "does not agree"


def parse_claim(claim: str) -> tuple[str, ...]:
    """``"nft < rt < fft"`` → ``("nft", "rt", "fft")`` (lowest first).

    >>> parse_claim("nft < rt<fft")
    ('nft', 'rt', 'fft')
    """
    names = tuple(part.strip() for part in claim.split("<"))
    if len(names) < 2 or not all(names):
        raise ValueError(f"a claim looks like 'a < b < c', got {claim!r}")
    return names


def _missing(section: str, claim: str, needed: list[str], have: set[str]) -> Finding | None:
    lacking = [n for n in needed if n not in have]
    if lacking:
        return Finding(section, claim, f"arrangements {lacking} were not run by this profile",
                       "not measured")
    return None


# --------------------------------------------------------------------------- §1


def early(judge: Judge, scores: pd.DataFrame) -> Finding:
    """§1: most of the fall in test loss happens early."""
    upto = max(1, judge.max_steps // 3)
    share = stats.early_share(scores, upto)
    mean, lo, hi = stats.t_interval(share["share"])
    claim = CLAIMS["early"]
    direction = mean > 0.5
    significant = bool(lo > 0.5) if not np.isnan(lo) else False
    measured = (f"by step {upto} of {judge.max_steps}, the test loss had made "
                f"{mean:.0%} of its total fall (95% CI {lo:.0%} to {hi:.0%}, "
                f"{len(share)} seeds)")
    status = _status(direction, significant)
    contrast = Contrast(f"share of the fall by step {upto}", mean, lo, hi, "above",
                        "share of the total fall in test loss (½: half of it)", status,
                        reference=0.5, fmt=".0%", why="" if np.isfinite(lo) else "one seed")
    return Finding("1. early generalization", claim, measured, status, share,
                   contrasts=(contrast,))


def steadiest_metric(judge: Judge, scores: pd.DataFrame) -> Finding:
    """§1: loss is the steadiest metric across seeds (relative to how much it moves)."""
    st = stats.metric_stability(scores)
    claim = CLAIMS["stability"]
    if len(st) < 2:
        return Finding("1. metric stability", claim, "no generation metrics were scored",
                       "not measured", st)
    st = st.sort_values("noise_to_signal")
    best = st.iloc[0]["metric"]
    ranks = ", ".join(f"{m} {v:.2f}" for m, v in zip(st["metric"], st["noise_to_signal"]))
    measured = f"seed noise ÷ movement: {ranks} (lower is steadier)"
    return Finding("1. metric stability", claim, measured,
                   "agrees" if best == "loss" else "does not agree", st)


# --------------------------------------------------------------------------- §2


def sudden_drop_shares(scores: pd.DataFrame, from_step: int = 0) -> pd.DataFrame:
    """Share of test-task curves classified ``sudden drop`` (from ``from_step`` on), per
    arrangement × seed."""
    shapes = classify_tasks(scores, from_step=from_step)
    shapes["sudden"] = (shapes["kind"] == "sudden drop").astype(float)
    out = shapes.groupby(["arrangement", "seed"], as_index=False)["sudden"].mean()
    out["step"] = 0  # one value per seed, in the layout stats.paired_test expects
    return out


def permutations(judge: Judge, scores: pd.DataFrame) -> Finding:
    """§2: under Cluster, test-task losses drop suddenly (more than under Random)."""
    claim = CLAIMS["permutations"]
    have = set(scores["arrangement"])
    missing = _missing("2. permutations", claim, ["cluster", "random"], have)
    if missing:
        return missing
    start = judge.drop_from
    shares = sudden_drop_shares(scores, from_step=start)
    test = stats.paired_test(shares, "random", "cluster", (0, 0), value="sudden")
    direction = test.mean_diff < 0
    significant = direction and test.p < judge.alpha
    by = shares.groupby("arrangement")["sudden"].mean()
    shown = ", ".join(f"{a} {by[a]:.0%}" for a in by.index)
    measured = (f"share of test-task curves with a sudden drop after step "
                f"{start}: {shown}; cluster − random "
                f"{-test.mean_diff + 0.0:+.0%} (paired over {test.n} seeds, "
                f"p = {test.p:.3g})")
    status = _status(direction, significant)
    contrast = Contrast("cluster − random", -test.mean_diff + 0.0, -test.hi, -test.lo, "above",
                        "difference in the share of test-task curves with a sudden drop",
                        status, fmt="+.0%", why="" if np.isfinite(test.lo) else "one seed")
    return Finding("2. permutations", claim, measured, status, shares, contrasts=(contrast,))


def drop_relatives(drops: pd.DataFrame, families: pd.DataFrame | None) -> pd.DataFrame:
    """For each sudden drop: did a relative of the test task arrive just before it?

    ``drops``: ``task``, ``kind`` and ``arrived`` (the training tasks that arrived before
    each drop, a list per row); ``families``: the demo's task table (``task``,
    ``relatives``); ``None`` for other data.
    """
    sel = drops[drops["kind"] == "sudden drop"].copy()
    if families is None or sel.empty:
        sel["relative_arrived"] = np.nan
        return sel
    rel = relatives_of(families)
    sel["relative_arrived"] = [bool(rel.get(t, set()) & set(a))
                               for t, a in zip(sel["task"], sel["arrived"])]
    return sel


# --------------------------------------------------------------------------- §3–5


def ordering(section: str, judge: Judge, scores: pd.DataFrame, claim_order: str,
             claim: str, window: tuple[int, int] | None = None) -> Finding:
    """A claimed ordering of test loss over ``window`` (default: the first steps after the
    branch point): each adjacent pair compared on the same test instances (three views,
    cluster-bootstrap intervals); the claim holds as far as its weakest pair."""
    order = parse_claim(claim_order)
    missing = _missing(section, claim, list(order), set(scores["arrangement"]))
    if missing:
        return missing
    window = window or judge.first_window
    pairs = tuple(compare.compare(scores, a, b, window, judge.branch_step)
                  for a, b in zip(order, order[1:]))
    shown = "; ".join(
        f"{c.a} − {c.b}: " + ", ".join(f"{k} {v.shown()}" for k, v in c.views.items())
        for c in pairs)
    agree = "the three views agree" if all(c.views_agree for c in pairs) else \
        "the views disagree in sign"
    means = stats.window_means(scores, window).groupby("arrangement")["loss"].mean()
    mean_text = ", ".join(f"{n} {means.get(n, np.nan):.3f}" for n in order)
    seed_t = "; ".join(f"{c.a} − {c.b} t = {c.seed_t[0]:.2f}, p = {c.seed_t[1]:.3g}"
                       for c in pairs)
    measured = (f"mean test loss over steps {window[0]}–{window[1]}: {mean_text}. Paired on "
                f"the same test instances (95% cluster-bootstrap intervals over test task × "
                f"seed): {shown}; {agree}. Secondary, seed-level paired t "
                f"({pairs[0].seed_t[2]} seeds): {seed_t}")
    contrasts = tuple(view_contrast(f"{c.a} − {c.b}", c.views["instance"], "below",
                                    LOSS_DIFFERENCE, c.status) for c in pairs)
    return Finding(section, claim, measured, worst([c.status for c in pairs]),
                   pd.DataFrame([c.row() for c in pairs]), pairs, contrasts)


def heaviest_tasks(found: Finding) -> str:
    """For each pair of an ordering finding: the test task that moves its instance mean most,
    how much of the mean it makes and the mean without it, and its loss at the branch point
    against the median test task's (see :func:`~zsg_lib.analysis.compare.heaviest_task`)."""
    lines = []
    for c in found.comparisons:
        if c.pairs.empty:
            continue
        h = compare.heaviest_task(c.pairs)
        lines.append(f"{c.a} − {c.b}: {h['task']} moves the instance mean most "
                     f"({h['part']:+.3f} of {h['mean']:+.3f}; without it {h['without']:+.3f}); "
                     f"its mean loss at the branch point {h['base']:.2f}, the median test "
                     f"task's {h['median_base']:.2f}")
    return "\n".join(lines)


def similarity(judge: Judge, scores: pd.DataFrame) -> Finding:
    """§3: NFT < RT < FFT in test loss."""
    return ordering("3. similarity", judge, scores, "nft < rt < fft", CLAIMS["similarity"])


def granularity(judge: Judge, scores: pd.DataFrame) -> Finding:
    """§4: fine-grained NFT ends lower than coarse-grained NFT."""
    return ordering("4. granularity", judge, scores, "nft < coarse-nft", CLAIMS["granularity"],
                    window=judge.last_window)


def tma(judge: Judge, scores: pd.DataFrame) -> Finding:
    """§5: TMA-NFT gives lower test loss than TMA-RT and TMA-FFT."""
    return ordering("5. TMA", judge, scores, "tma-nft < tma-rt < tma-fft", CLAIMS["tma"],
                    window=judge.last_window)


def online(judge: Judge, scores: pd.DataFrame) -> Finding:
    """Issue #29: the online arrangement against ``tma-nft`` (the same budget, its order fixed
    before training) and against ``random``, each pair on the same test instances over the
    last window (as §5's TMA); the claim holds as far as its weaker pair."""
    parts = [ordering("5. online", judge, scores, f"online-nft < {other}", CLAIMS["online"],
                      window=judge.last_window) for other in ("tma-nft", "random")]
    for part in parts:
        if not part.comparisons:  # an arm was not run
            return part
    return Finding("5. online", CLAIMS["online"], " ".join(p.measured for p in parts),
                   worst([p.status for p in parts]),
                   pd.concat([p.details for p in parts], ignore_index=True),
                   tuple(c for p in parts for c in p.comparisons),
                   tuple(c for p in parts for c in p.contrasts))


def windows(judge: Judge, scores: pd.DataFrame) -> Finding:
    """§5 turn windows: earlier rounds give lower test loss — the slope of loss on the window's
    rank, per test task × seed (runs of a seed stay paired), bootstrapped over those."""
    claim = CLAIMS["windows"]
    after = (judge.branch_step + 1, judge.max_steps)
    if scores["window_start"].nunique() < 2:
        return Finding("5. turn windows", claim, "fewer than two windows were run",
                       "not measured")
    slope, per = compare.trend(scores, "window_start", after)
    means = (scores[(scores["step"] >= after[0])].groupby("window_start")["loss"].mean())
    shown = ", ".join(f"rounds from {w}: {m:.3f}" for w, m in means.items())
    measured = (f"mean test loss over steps {after[0]}–{after[1]}: {shown}; slope of loss per "
                f"later window {slope.shown()} (95% cluster bootstrap over "
                f"{slope.n_clusters} test task × seed)")
    # the claim "earlier is lower" is a positive slope: judge −slope as "early − late < 0"
    flipped = View(-slope.estimate, -slope.hi, -slope.lo, slope.n_clusters, slope.why)
    status = verdict([flipped])
    contrast = view_contrast("per later window", slope, "above",
                             "slope of test loss per later turn window (nats)", status)
    return Finding("5. turn windows", claim, measured, status, per, contrasts=(contrast,))


def instance_level(table: pd.DataFrame, predictor: str = "emb_max") -> Finding:
    """The paper's central sentence, tested step by step: a ``predictor_test`` table
    (:func:`zsg_lib.analysis.predictor_stats.predictor_test`), judged on the fixed-effects slope of
    the loss change on ``predictor`` (negative: nearer batches, larger falls). The measured
    sentence compares every kind of similarity the table holds."""
    from .predictor_stats import predictor_sentence

    claim = CLAIMS["instance"]
    row = table[table["predictor"] == predictor]
    if row.empty:
        return Finding("7. instance level", claim, f"{predictor} was not measured",
                       "not measured", table)
    r = row.iloc[0]
    why = r["why"] if isinstance(r["why"], str) else ""
    view = View(r["slope"], r["slope_lo"], r["slope_hi"], int(r["n_clusters"]), why)
    slope = (f"{view.estimate:+.3g} [{view.lo:+.3g}, {view.hi:+.3g}]" if not why
             else f"{view.estimate:+.3g} (no interval: {why})")
    # the sentence's joint slopes hold the other similarities fixed; the verdict's is alone
    measured = (f"{predictor_sentence(table)} On its own (the verdict's measure: task and step "
                f"fixed effects, 95% cluster bootstrap), the slope of the loss change per SD of "
                f"{predictor} is {slope}.")
    contrast = view_contrast(f"{predictor}, per SD", view, "below",
                             "slope of the loss change per SD of similarity (nats)")
    return Finding("7. instance level", claim, measured, contrast.status, table,
                   contrasts=(contrast,))


def gradient_order(judge: Judge, scores: pd.DataFrame) -> Finding:
    """grad-nft against nft over the first steps after the branch point."""
    return ordering("7. gradient order", judge, scores, "grad-nft < nft",
                    CLAIMS["gradient order"])


def table(found: list[Finding]) -> pd.DataFrame:
    """Findings as a table: the paper's claim, this run's numbers, the agreement; with the
    evaluation instances' numbers and agreement beside where some finding has them."""
    both = any(f.evaluation is not None for f in found)
    return pd.DataFrame([f.row(both) for f in found])


# --------------------------------------------------------------------------- by part


def on_parts(judge_part: Callable[[pd.DataFrame], Finding], rows: pd.DataFrame) -> Finding:
    """``judge_part`` on the query rows of ``rows`` (a score table or chapter 7's predictor
    frame), with its verdict on the evaluation rows as :attr:`Finding.evaluation`; without
    evaluation rows, its verdict on every row with :data:`~zsg_lib.analysis.parts.NO_EVALUATION`
    (the statistic is the same on each part: only its input rows differ)."""
    by = parts.by_part(rows)
    found = judge_part(by[QUERY])
    if EVALUATION in by:
        return replace(found, evaluation=judge_part(by[EVALUATION]))
    if found.status == "not measured":  # its reason is all a page needs to say
        return found
    return replace(found, no_evaluation=parts.NO_EVALUATION)


#: The judges of test-centric claims (arrangements that look at test instances: chapters 3–5,
#: the online arrangement included, and 7), judged on each part by :func:`by_part`; the
#: others arrange without looking at the test instances and are judged on all of them.
BY_PART = frozenset({"similarity", "granularity", "tma", "windows", "online", "gradient_order"})


def by_part(judge_fn: Callable[[Judge, pd.DataFrame], Finding], judge: Judge,
            scores: pd.DataFrame) -> Finding:
    """A test-centric finding (``judge_fn``: :func:`similarity`, :func:`granularity`,
    :func:`tma`, :func:`windows`, :func:`online`, :func:`gradient_order`) judged on the query
    instances and on the evaluation instances (:func:`on_parts`).

    >>> def gain(k, s, part):  # a's extra fall: clear on the query part, none on the other
    ...     if part == "query":
    ...         return 0.3 + 0.05 * k + 0.02 * s
    ...     return 0.01 * (-1) ** (k + s) - 0.005
    >>> rows = [{"arrangement": arm, "seed": s, "task": f"t{k}", "id": f"t{k}-{i}",
    ...          "step": st, "test_part": part,
    ...          "loss": 2.0 - (gain(k, s, part) if arm == "a" and st else 0.0)}
    ...         for arm in ("a", "b") for s in (0, 1) for k in (0, 1) for st in (0, 4)
    ...         for i, part in enumerate(["query", "query", "evaluation", "evaluation"])]
    >>> judge = Judge(max_steps=4, eval_every=4, first_n_steps=4)
    >>> f = by_part(lambda j, s: ordering("3. x", j, s, "a < b", "a is lower"), judge,
    ...             pd.DataFrame(rows))
    >>> f.status, f.evaluation.status
    ('agrees', 'does not agree')
    >>> part_difference(f).split(" (")[0]
    'The verdicts differ. a − b: agrees on the query instances the arrangements looked at'
    """
    return on_parts(lambda rows: judge_fn(judge, rows), scores)


def part_difference(found: Finding, numbers: bool = True) -> str:
    """Where the evaluation instances' verdict differs from the query instances', in words:
    each contrast whose verdict differs, with both estimates unless ``numbers`` is false
    (``""`` where none differs or there is no evaluation verdict).

    >>> q = Finding("3. similarity", "c", "m", "agrees", contrasts=(
    ...     Contrast("nft − rt", -0.1, -0.15, -0.05, "below", "loss", "agrees"),))
    >>> e = Finding("3. similarity", "c", "m", "does not agree", contrasts=(
    ...     Contrast("nft − rt", 0.01, -0.04, 0.06, "below", "loss", "does not agree"),))
    >>> part_difference(replace(q, evaluation=e))  # doctest: +NORMALIZE_WHITESPACE
    'The verdicts differ. nft − rt: agrees on the query instances the arrangements looked at
    (-0.1 [-0.15, -0.05]), does not agree on the unseen evaluation instances of the same
    tasks (+0.01 [-0.04, +0.06]).'
    >>> part_difference(replace(q, evaluation=q))
    ''
    """
    e = found.evaluation
    if e is None:
        return ""
    theirs = {c.label: c for c in e.contrasts}

    def shown(c: Contrast) -> str:
        return f" ({c.shown()})" if numbers else ""

    def line(q: str, ev: str, q_shown: str = "", ev_shown: str = "") -> str:
        return (f"{q} on the query instances the arrangements looked at{q_shown}, {ev} on the "
                f"unseen evaluation instances of the same tasks{ev_shown}")

    lines = [f"{c.label}: " + line(c.status, theirs[c.label].status, shown(c),
                                   shown(theirs[c.label]))
             for c in found.contrasts
             if c.label in theirs and theirs[c.label].status != c.status]
    if not lines and e.status != found.status:  # no contrast to name (e.g. not measured)
        lines = [line(found.status, e.status)]
    return f"The verdicts differ. {'; '.join(lines)}." if lines else ""
