"""Chart specs carry the encodings and tooltips the book relies on (no rendering)."""

from __future__ import annotations

import json

import altair as alt
import numpy as np
import pandas as pd

from zsg_lib.arrange import ARRANGEMENTS
from zsg_lib.pages import plots


def spec(chart) -> dict:
    assert isinstance(chart, alt.TopLevelMixin)
    return chart.to_dict()


def layers(s: dict) -> list[dict]:
    return s.get("layer") or s.get("spec", {}).get("layer") or [s.get("spec", s)]


def tooltip_fields(layer: dict) -> list[str]:
    tips = layer["encoding"].get("tooltip", [])
    tips = tips if isinstance(tips, list) else [tips]
    return [t.get("field") or t.get("title") for t in tips]


def ci_frame() -> pd.DataFrame:
    return pd.DataFrame({"arrangement": ["nft", "nft", "fft", "fft"], "step": [0, 4, 0, 4],
                         "mean": [3.0, 2.0, 3.0, 2.5], "lo": [2.9, 1.8, 2.9, 2.2],
                         "hi": [3.1, 2.2, 3.1, 2.8], "n": [3] * 4})


def test_loss_curves_band_line_points_with_tooltips() -> None:
    s = spec(plots.loss_curves(ci_frame()))
    band, line, points = s["layer"]
    assert band["mark"]["type"] == "area" and band["encoding"]["y2"]["field"] == "hi"
    assert line["encoding"]["color"]["field"] == "arrangement"
    # the catalog's colours: nft is always the same blue
    assert points["encoding"]["color"]["scale"]["range"] == [ARRANGEMENTS["nft"].colour,
                                                             ARRANGEMENTS["fft"].colour]
    assert {"arrangement", "step", "mean", "lo", "hi", "n"} <= set(tooltip_fields(points))


def test_every_arrangement_has_a_colour_of_its_own() -> None:
    colours = [a.colour for a in ARRANGEMENTS.values()]
    assert all(c.startswith("#") and len(c) == 7 for c in colours)
    assert len(set(colours)) == len(colours)


def test_task_curves_annotate_drops_with_arrivals() -> None:
    curves = pd.DataFrame({"task": ["a"] * 3 + ["b"] * 3, "step": [0, 4, 8] * 2,
                           "loss": [3, 1, 1, 3, 2.5, 2.0]})
    drops = pd.DataFrame({"task": ["a", "b"], "drop_step": [4, 4], "kind": ["sudden drop", "steady fall"],
                          "arrivals": ["month_names_en_de (4)", ""]})
    s = spec(plots.task_curves(curves, drops, {"a": "Translate January to French. janvier"}))
    marks = [layer["mark"]["type"] for layer in s["layer"]]
    assert marks == ["line", "point", "rule", "text"]
    assert "example" in tooltip_fields(s["layer"][1])
    assert "arrivals" in tooltip_fields(s["layer"][2])
    text = json.dumps(s)
    assert "month_names_en_de (4)" in text and "janvier" in text
    # only the sudden drop gets a rule: the rule layer's data holds one row
    rule_data = s["datasets"][s["layer"][2]["data"]["name"]]
    assert [r["task"] for r in rule_data] == ["a"]


def test_metric_comparison_normalises_and_flips_loss() -> None:
    ci = pd.DataFrame({"metric": ["loss"] * 2 + ["rouge1"] * 2, "step": [0, 8] * 2,
                       "mean": [4.0, 2.0, 0.1, 0.3], "lo": [3.8, 1.9, 0.05, 0.2],
                       "hi": [4.2, 2.1, 0.15, 0.4], "n": [3] * 4})
    norm = plots.normalise_metrics(ci).set_index(["metric", "step"])
    assert norm.loc[("loss", 8), "mean"] == 1.0 and norm.loc[("rouge1", 8), "mean"] == 1.0
    assert norm.loc[("loss", 0), "lo"] <= norm.loc[("loss", 0), "mean"] <= norm.loc[("loss", 0), "hi"]
    s = spec(plots.metric_comparison(ci))
    assert "raw" in tooltip_fields(s["layer"][1])


def test_distance_histograms_are_binned_small() -> None:
    rng = np.random.default_rng(0)
    dist = pd.DataFrame({"ad": rng.normal(size=5000), "md": rng.normal(size=5000),
                         "wsd": rng.normal(size=5000)})
    s = spec(plots.distance_histograms(dist, bins=20))
    data = next(iter(s["datasets"].values()))
    assert len(data) == 60  # 3 measures × 20 bins, not 5000 rows
    assert s["facet"]["column"]["field"] == "measure"


def test_embedding_map_tooltips() -> None:
    pts = pd.DataFrame({"x": [0, 1, 2], "y": [0, 1, 0], "split": ["train", "train", "test"],
                        "task": ["a", "b", "c"], "text": ["t1", "t2", "q"],
                        "position": [0, np.nan, np.nan], "nearest": ["", "", "t1 | t2"]})
    s = spec(plots.embedding_map(pts))
    unseen, seen, tests = s["layer"]
    assert seen["encoding"]["color"]["field"] == "position"
    assert "nearest" in tooltip_fields(tests) and "text" in tooltip_fields(seen)


def test_interval_points_and_misc() -> None:
    summ = pd.DataFrame({"arrangement": ["nft", "fft"], "mean": [1, 2.0], "lo": [0.9, 1.8],
                         "hi": [1.1, 2.2], "n": [3, 3]})
    s = spec(plots.interval_points(summ))
    assert [layer["mark"]["type"] for layer in s["layer"]] == ["errorbar", "point"]
    win = summ.assign(window_start=[0, 2])
    s = spec(plots.interval_points(win, x="window_start"))
    assert s["layer"][1]["encoding"]["x"]["type"] == "quantitative"
    tab = pd.DataFrame({"setting": ["tma-nft"] * 3, "position": [0, 1, 2], "round": [0, 0, 1],
                        "task": ["a", "b", "a"]})
    assert spec(plots.tma_rounds(tab))["encoding"]["color"]["field"] == "round"
    sc = spec(plots.scatter(pd.DataFrame({"u": [1, 2], "v": [3, 4], "k": ["a", "b"]}), "u", "v",
                            color="k", tooltip=["k"]))
    assert sc["encoding"]["color"]["field"] == "k"


def test_named_categories_run_down_the_side():
    summ = pd.DataFrame({"arrangement": ["nft", "coarse-nft"], "mean": [1, 2.0],
                         "lo": [0.9, 1.8], "hi": [1.1, 2.2], "n": [3, 3]})
    bars, points = spec(plots.interval_points(summ))["layer"]
    assert points["encoding"]["y"]["field"] == "arrangement"  # labels read horizontally
    assert bars["encoding"]["x"]["field"] == "lo" and bars["encoding"]["x2"]["field"] == "hi"


def _lab(colour: str) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB hex colour."""
    rgb = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    rgb = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ rgb / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_arms_compared_side_by_side_are_told_apart_at_a_glance():
    """Every two arrangements one chapter draws together differ by ΔE*ab ≥ 40 (CIE76: ~2.3 is
    just noticeable; nft's blue and a paler or darker blue, 29–37, read as shades of one)."""
    from dataclasses import asdict
    from itertools import combinations

    from zsg_lib.profiles.chapters import CHAPTERS
    from zsg_lib.profiles.params import load_profile

    groups = {spec.default for spec in CHAPTERS.values() if spec.default}
    for name in ("tiny", "cpu-demo"):
        groups |= {tuple(v) for v in asdict(load_profile(name).chapters).values() if v}
    close = [(a, b, round(float(np.linalg.norm(_lab(ARRANGEMENTS[a].colour)
                                                - _lab(ARRANGEMENTS[b].colour))), 1))
             for arms in groups for a, b in combinations(arms, 2)]
    assert not [c for c in close if c[2] < 40], sorted(set(c for c in close if c[2] < 40))


def test_forest_plot_draws_each_contrast_by_verdict():
    frame = pd.DataFrame({
        "row": ["3. similarity: nft − rt", "3. similarity: rt − fft", "1. early: share"],
        "measure": ["loss", "loss", "share"], "estimate": [-0.1, 0.05, 0.7],
        "lo": [-0.2, -0.05, 0.6], "hi": [-0.02, 0.15, 0.8], "detectable": [0.13, 0.14, 0.14],
        "claimed": ["below", "below", "above"], "reference": [0.0, 0.0, 0.5],
        "status": ["agrees", "does not agree", "agrees"], "shown": ["a", "b", "c"],
        "detectable_shown": ["±0.13", "±0.14", "±14%"]})
    s = spec(plots.forest(frame))
    loss, share = s["vconcat"]
    side, zone, ref, bar, point, text = loss["layer"]
    assert point["encoding"]["color"]["field"] == "status"
    assert point["encoding"]["color"]["scale"]["range"][0] == plots.VERDICT_COLOURS["agrees"]
    assert bar["encoding"]["x"]["field"] == "lo" and bar["encoding"]["x2"]["field"] == "hi"
    assert text["encoding"]["text"]["field"] == "detectable_shown"
    # the share panel's rule sits at ½ and its claimed side runs right of it
    assert s["datasets"][share["layer"][2]["data"]["name"]] == [{"x": 0.5}]
    share_rows = s["datasets"][share["layer"][0]["data"]["name"]]
    assert share_rows[0]["edge"] > 0.5
    assert "detectable_shown" in tooltip_fields(point) or "smallest detectable (80% power)" in \
        tooltip_fields(point)
