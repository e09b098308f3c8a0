"""The dashboard's two ratios over time, from a real Prometheus, as a PNG (for the README).

The ratios are the expressions of the chart's recording rules (charts/blocklearn/files/alerts.yaml:
`blocklearn:suggestions_acceptance:ratio_rate1h` and `blocklearn:suggestions_retrieval_hit:ratio_rate1h`),
over a shorter window than 1 h when the run is short: a 5-minute soak has no hour to average over.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from blocklearn.devtools.prometheus import Prometheus

RULES = Path(__file__).resolve().parent.parent / "charts" / "blocklearn" / "files" / "alerts.yaml"
RATIOS = {
    "acceptance ratio": "blocklearn:suggestions_acceptance:ratio_rate1h",
    "retrieval-hit ratio": "blocklearn:suggestions_retrieval_hit:ratio_rate1h",
}


def ratio_exprs(window: str) -> dict[str, str]:
    """The recording rules' expressions, by the dashboard's names, over `window` instead of 1 h."""
    rules = {
        r.get("record"): r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
    }
    return {name: rules[record].replace("[1h]", f"[{window}]") for name, record in RATIOS.items()}


def series(
    prometheus: Prometheus, expr: str, start: float, end: float, step: float
) -> list[tuple[float, float]]:
    """(minutes since start, value) of a one-series range query, NaN points left out."""
    result = prometheus.query_range(expr, start, end, step)
    points = [(float(t), float(v)) for r in result for t, v in r["values"]]
    return [((t - start) / 60, v) for t, v in points if math.isfinite(v)]


def plot(prometheus: Prometheus, start: float, end: float, window: str, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name, expr in ratio_exprs(window).items():
        points = series(prometheus, expr, start, end, step=5)
        ax.plot([p[0] for p in points], [p[1] for p in points], label=f"{name} (over {window})")
    ax.set_xlabel("minutes since the stream started")
    ax.set_ylabel("ratio")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
