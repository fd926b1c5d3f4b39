"""The Pareto plot: trainable params (log axis) vs dev metric, every trial, front highlighted.

Two files from the same points: ``pareto.png`` (matplotlib) to glance at and ``pareto.html``
(plotly, self-contained so it works offline) to hover over trials in the MLflow UI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lorasearch.search.records import TrialRecord


@dataclass
class Point:
    """One finished trial as the plot draws it."""

    number: int
    variant: str
    params: int
    metric: float
    front: bool
    label: str = ""  # hyperparameters, for the hover text
    stopped: bool = False  # stopped early: its metric is the best dev value it reached


def study_points(trials: list[TrialRecord], front: set[int]) -> list[Point]:
    """The trained trials of a study as points: COMPLETE ones at their result (``front``: the
    Pareto trials' numbers), stopped ones at the best dev value they reached."""
    points = [
        Point(
            t.number,
            t.variant or "?",
            int(t.values[1]),
            t.values[0],
            t.number in front,
            ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.knobs.items()
            ),
        )  # fmt: skip
        for t in trials
        if t.state == "COMPLETE"
    ]
    return points + [
        Point(
            t.number, t.variant or "?", int(t.trainable_params), t.dev_metric, False, stopped=True
        )
        for t in trials
        if t.state == "PRUNED" and t.dev_metric is not None
    ]


def draw_pareto(points: list[Point], metric_name: str, title: str, folder: Path) -> list[Path]:
    """Write ``pareto.png`` and ``pareto.html`` into ``folder``; returns their paths."""
    return [_png(points, metric_name, title, folder), _html(points, metric_name, title, folder)]


def _png(points: list[Point], metric_name: str, title: str, folder: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5), dpi=120)
    colours = _colours(points)
    for variant, colour in colours.items():
        mine = [p for p in points if p.variant == variant and not p.stopped]
        axes.scatter(
            [p.params for p in mine], [p.metric for p in mine], color=colour, label=variant,
            s=36, alpha=0.75, edgecolors="none",
        )  # fmt: skip
        stopped = [p for p in points if p.variant == variant and p.stopped]
        axes.scatter(
            [p.params for p in stopped], [p.metric for p in stopped], color=colour, marker="x",
            s=30, alpha=0.75,
        )  # fmt: skip
    if any(p.stopped for p in points):
        axes.scatter([], [], color="grey", marker="x", label="stopped early")
    front = sorted((p for p in points if p.front), key=lambda p: p.params)
    if front:
        axes.step(
            [p.params for p in front], [p.metric for p in front], where="post", color="black",
            linewidth=1.2, label="Pareto front",
        )  # fmt: skip
        axes.scatter(
            [p.params for p in front], [p.metric for p in front], s=110, facecolors="none",
            edgecolors="black", linewidths=1.5,
        )  # fmt: skip
        for p in front:
            axes.annotate(
                f"#{p.number}", (p.params, p.metric), textcoords="offset points", xytext=(5, 5),
                fontsize=8,
            )  # fmt: skip
    axes.set_xscale("log")
    axes.set_xlabel("trainable parameters (log scale)")
    axes.set_ylabel(f"dev {metric_name}")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    if points:
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), title="variant")
    figure.tight_layout()
    path = folder / "pareto.png"
    figure.savefig(path)
    plt.close(figure)
    return path


def _html(points: list[Point], metric_name: str, title: str, folder: Path) -> Path:
    import plotly.graph_objects as go

    figure = go.Figure()
    for variant, colour in _colours(points).items():
        mine = [p for p in points if p.variant == variant]
        figure.add_trace(
            go.Scatter(
                x=[p.params for p in mine], y=[p.metric for p in mine], mode="markers",
                name=variant, marker={"color": colour, "size": 9, "opacity": 0.8},
                text=[f"trial {p.number}{' (stopped early)' if p.stopped else ''}<br>{p.label}"
                      for p in mine],
                marker_symbol=["x" if p.stopped else "circle" for p in mine],
                hovertemplate="%{text}<br>params %{x:,}<br>" + metric_name + " %{y:.4f}<extra></extra>",
            )
        )  # fmt: skip
    front = sorted((p for p in points if p.front), key=lambda p: p.params)
    if front:
        figure.add_trace(
            go.Scatter(
                x=[p.params for p in front], y=[p.metric for p in front], mode="lines+markers",
                line={"shape": "hv", "color": "black"}, name="Pareto front",
                marker={"size": 14, "symbol": "circle-open", "color": "black"},
                hoverinfo="skip",
            )
        )  # fmt: skip
    figure.update_layout(
        title=title,
        xaxis={"type": "log", "title": "trainable parameters (log scale)"},
        yaxis={"title": f"dev {metric_name}"},
        template="plotly_white",
    )
    path = folder / "pareto.html"
    figure.write_html(path, include_plotlyjs=True, full_html=True)  # offline: no CDN
    return path


def _colours(points: list[Point]) -> dict[str, str]:
    palette = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    ]  # fmt: skip
    variants = sorted({p.variant for p in points})
    return {v: palette[i % len(palette)] for i, v in enumerate(variants)}
