"""A small matplotlib canvas for the noise inspector: variance-vs-mean and σ-map histogram.

Plotting only: the points, the fitted curve and the σ map all come from a
:class:`~napari_diffdenoise.NoiseReport`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:  # pragma: no cover
    from napari_diffdenoise.noise.report import NoiseReport

__all__ = ["NoisePlotCanvas"]

#: at most this many σ-map pixels go into the histogram (plotting only).
_HIST_SAMPLES = 200_000

_BG = "#262930"  # napari's dark theme background
_FG = "#f0f1f2"
_ACCENT = "#7fb2ff"
_FIT = "#ff9f43"


class NoisePlotCanvas(FigureCanvasQTAgg):
    """Two stacked axes: the variance-vs-mean points with the fitted curve, and a σ histogram."""

    def __init__(self, parent=None, *, width: float = 3.6, height: float = 4.4) -> None:
        self.figure = Figure(figsize=(width, height), facecolor=_BG, layout="constrained")
        super().__init__(self.figure)
        if parent is not None:
            self.setParent(parent)
        self.ax_curve = self.figure.add_subplot(2, 1, 1)
        self.ax_hist = self.figure.add_subplot(2, 1, 2)
        self.clear()

    def _style(self, ax) -> None:
        ax.set_facecolor(_BG)
        ax.tick_params(colors=_FG, labelsize=7)
        for spine in ax.spines.values():
            spine.set_color(_FG)
        ax.xaxis.label.set_color(_FG)
        ax.yaxis.label.set_color(_FG)
        ax.title.set_color(_FG)

    def clear(self) -> None:
        """Empty axes with their labels (before the first report)."""
        for ax in (self.ax_curve, self.ax_hist):
            ax.clear()
            self._style(ax)
        self.ax_curve.set_title("variance vs mean", fontsize=8)
        self.ax_curve.set_xlabel("local mean", fontsize=7)
        self.ax_curve.set_ylabel("noise variance", fontsize=7)
        self.ax_hist.set_title("σ map histogram", fontsize=8)
        self.ax_hist.set_xlabel("σ (image units)", fontsize=7)
        self.ax_hist.set_ylabel("pixels", fontsize=7)
        self.draw_idle()

    def plot_report(self, report: NoiseReport, *, sigma_max: float | None = None) -> None:
        """Draw ``report``'s variance-vs-mean points, its fitted curve (and for Poisson noise the
        curve through the points that its σ map follows) and its σ-map histogram."""
        self.clear()
        means = np.asarray(report.curve_means, dtype=float).ravel()
        variances = np.asarray(report.curve_variances, dtype=float).ravel()
        ax = self.ax_curve
        variant = report.kind == "spatially_variant"
        if means.size:
            # spatially variant noise: the points are the σ map² averaged per level set (the
            # noise depends on the position), the line the mean σ² of the image
            points = "σ map² per level" if variant else "measured"
            ax.scatter(means, variances, s=9, color=_ACCENT, label=points, zorder=3)
            grid = np.linspace(float(means.min()), float(means.max()), 200)
            if variant:
                fitted = np.full(grid.shape, np.mean(np.square(report.sigma_map, dtype=float)))
            else:
                fitted = np.asarray(report.noise_std(grid), dtype=float) ** 2
            line = "mean σ²" if variant else "fit"
            ax.plot(grid, np.broadcast_to(fitted, grid.shape), color=_FIT, lw=1.5, label=line)
            if report.kind == "poisson":  # the σ map runs through the points, not the line
                from napari_diffdenoise.noise.poisson import curve_points

                ax.plot(
                    *curve_points(means, variances), color=_ACCENT, lw=0.8, ls=":", label="σ map"
                )
            legend = ax.legend(fontsize=7, facecolor=_BG, edgecolor=_FG, loc="best")
            for text in legend.get_texts():
                text.set_color(_FG)
        else:
            ax.text(
                0.5,
                0.5,
                "constant image: no noise" if report.kind == "none" else "no flat regions found",
                color=_FG,
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=8,
            )

        sigma = np.asarray(report.sigma_map, dtype=np.float32).ravel()
        if sigma.size > _HIST_SAMPLES:
            sigma = sigma[:: int(np.ceil(sigma.size / _HIST_SAMPLES))]
        ax = self.ax_hist
        ax.hist(sigma, bins=64, color=_ACCENT)
        if sigma_max is not None:
            label = f"σ_max = {sigma_max:.4g} (t = 1)"
            lo, hi = ax.get_xlim()
            if sigma_max <= hi + 0.5 * (hi - lo):
                ax.axvline(sigma_max, color=_FIT, lw=1.2, ls="--", label=label)
            else:  # far off scale: say so rather than squash the histogram
                ax.plot([], [], color=_FIT, lw=1.2, ls="--", label=label + " →")
            legend = ax.legend(fontsize=7, facecolor=_BG, edgecolor=_FG, loc="best")
            for text in legend.get_texts():
                text.set_color(_FG)
        self.draw_idle()
