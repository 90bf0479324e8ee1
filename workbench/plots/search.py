"""Figures for choosing a backbone and for a sweep (Figure + Agg, never pyplot).

ranking_figure: each candidate's exact-head validation accuracy against its LogME score, so one can
see whether the cheap score ranks them the same. sweep_figure: every trial's metric after each
epoch; pruned trials end early with a cross, the best trial is drawn thick.
"""

from __future__ import annotations

from .core import PlotFigure

STATE_STYLE = {"complete": ("-", "o"), "pruned": ("--", "x"), "failed": (":", "x"), "stopped": (":", "s"),
               "running": ("-", ".")}


def _plain(text: str) -> str:
    """A user string as literal text: '$' would start matplotlib mathtext."""
    return str(text).replace("$", r"\$")


def ranking_figure(ranking, size: tuple[float, float] = (6.0, 3.6)) -> PlotFigure:
    """Validation accuracy of the exact head (y) against LogME (x), one labelled point per candidate."""
    fig = PlotFigure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ok = [r for r in ranking.results if r.error is None]
    for i, r in enumerate(ok):
        ax.scatter([r.logme], [r.valid_accuracy], s=36, color="#d62728" if i == 0 else "#1f77b4", zorder=3)
        ax.annotate(_plain(r.name), (r.logme, r.valid_accuracy), textcoords="offset points", xytext=(5, 4), fontsize=9)
    ax.set_xlabel("LogME (no head trained; higher = features fit the labels better)", fontsize=10)
    ax.set_ylabel("valid accuracy, exact head", fontsize=10)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=9)
    if ok:
        ax.set_title(f"{len(ok)} candidates; best: {_plain(ok[0].name)}", fontsize=11)
        ax.margins(x=0.25, y=0.15)
    return fig


def sweep_figure(sweep, size: tuple[float, float] = (7.5, 3.4)) -> PlotFigure:
    """The metric after each epoch of every trial (pruned: dashed, ending in a cross; best: thick)."""
    fig = PlotFigure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    try:
        best = sweep.best.number
    except Exception:  # no finished epoch yet
        best = None
    for t in sweep.trials:
        if not t.values:
            continue
        line, marker = STATE_STYLE.get(t.state, ("-", "."))
        x = list(range(1, len(t.values) + 1))
        ax.plot(x, t.values, linestyle=line, marker=marker, markersize=5, linewidth=2.6 if t.number == best else 1.2,
                alpha=1.0 if t.number == best else 0.75, color="#d62728" if t.number == best else None)
        ax.annotate(f"#{t.number}", (x[-1], t.values[-1]), textcoords="offset points", xytext=(4, 0), fontsize=8)
    ax.set_xlabel("epoch of the trial", fontsize=10)
    ax.set_ylabel(sweep.metric.replace("_", " "), fontsize=10)
    ax.set_xlim(0.8, sweep.epochs + 0.6)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=9)
    pruned = sum(t.state == "pruned" for t in sweep.trials)
    ax.set_title(f"{_plain(sweep.name)}: {len(sweep.trials)} trials, {pruned} pruned (dashed), "
                 f"{sweep.epochs_run} epochs" + (f"; best #{best} (thick)" if best is not None else ""), fontsize=11)
    return fig
