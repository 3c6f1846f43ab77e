"""Plotly figures for the dashboards: pure functions from plain values to a figure dict.

The dict goes to the page through ``json_script`` (labels can be personal data or user input
and stay escaped) and is drawn by the locally served plotly.min.js.
"""

from __future__ import annotations

import plotly.graph_objects as go

COLORS = ["#417690", "#79aec8", "#f5dd5d", "#ba2121", "#5b8a3c", "#a05a2c", "#6b5b95"]
LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 50, "b": 60},
    "height": 360,
    "paper_bgcolor": "rgba(0,0,0,0)",
    "font": {"size": 12},
}


def _figure(fig: go.Figure, title: str) -> dict:
    fig.update_layout(title={"text": title}, **LAYOUT)
    return fig.to_plotly_json()


def line_chart(title: str, x: list, series: dict[str, list], *, y_title: str = "") -> dict:
    """One line per series over a shared x axis (dates as ISO strings)."""
    fig = go.Figure()
    for i, (name, values) in enumerate(series.items()):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=values,
                name=name,
                mode="lines+markers",
                line={"color": COLORS[i % len(COLORS)]},
            )
        )
    fig.update_layout(yaxis_title=y_title, showlegend=len(series) > 1)
    return _figure(fig, title)


def bar_chart(
    title: str, labels: list[str], values: list[float], *, horizontal=False, y_title=""
) -> dict:
    bar = (
        go.Bar(y=labels, x=values, orientation="h", marker_color=COLORS[0])
        if horizontal
        else go.Bar(x=labels, y=values, marker_color=COLORS[0])
    )
    fig = go.Figure(bar)
    fig.update_layout(yaxis_title=y_title)
    if horizontal:
        fig.update_layout(yaxis={"autorange": "reversed", "automargin": True})
    return _figure(fig, title)


def stacked_bar_chart(title: str, labels: list[str], stacks: dict[str, list[float]]) -> dict:
    fig = go.Figure()
    for i, (name, values) in enumerate(stacks.items()):
        fig.add_trace(go.Bar(x=labels, y=values, name=name, marker_color=COLORS[i % len(COLORS)]))
    fig.update_layout(barmode="stack")
    return _figure(fig, title)


def rfm_grid(title: str, counts: dict[tuple[int, int], float]) -> dict:
    """Recency (rows, 5 = most recent at the top) x frequency (columns) heat map of counts."""
    z = [[counts.get((r, f), 0) for f in range(1, 6)] for r in range(5, 0, -1)]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"F{f}" for f in range(1, 6)],
            y=[f"R{r}" for r in range(5, 0, -1)],
            colorscale="Blues",
            text=[[str(int(v)) for v in row] for row in z],
            texttemplate="%{text}",
            hovertemplate="%{y} %{x}: %{z} customers<extra></extra>",
        )
    )
    fig.update_layout(xaxis_title="Frequency score", yaxis_title="Recency score")
    return _figure(fig, title)


def cumulative(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for value in values:
        total += value
        out.append(total)
    return out
