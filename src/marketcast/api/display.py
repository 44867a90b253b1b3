"""How results show themselves: an HTML card in Jupyter, a text summary and Figures.

Every result class mixes in :class:`Shown` and says what it has: a title, the verdict
lines, a score table and the names of its plots (the first one is shown in the card).
Figures come from :mod:`marketcast.report.plots`, the functions the HTML report uses;
nothing is written to disk.
"""

from __future__ import annotations

import base64
import html
import io

import pandas as pd

from marketcast.errors import ConfigError

# Score columns shown, in this order, where a table has them.
SHOWN = ("ticker", "model", "step", "n", "rmse", "mae", "mape", "theils_u",
         "directional_accuracy", "dm_p_value")
# Width of the plot in the card, in CSS pixels: small beside the scores.
CARD_WIDTH = 560


class Shown:
    """``_repr_html_``, ``summary()`` and ``plot(name)`` from the hooks below."""

    plots: tuple[str, ...] = ()

    def _title(self) -> str:
        raise NotImplementedError

    def _verdict(self) -> list[str]:
        return []

    def _scores(self) -> pd.DataFrame | None:
        return None

    def _figure(self, name: str):
        raise NotImplementedError

    def plot(self, name: str | None = None):
        """The plot ``name`` (one of :attr:`plots`; default: the first) as a matplotlib
        Figure, drawn without pyplot and written nowhere."""
        name = name or self.plots[0]
        if name not in self.plots:
            raise ConfigError(f"no plot {name!r} here; plots: {', '.join(self.plots)}")
        return self._figure(name)

    def summary(self) -> str:
        """The title, the verdict and the scores as plain text."""
        lines = [self._title(), *(f"- {line}" for line in self._verdict())]
        scores = shown_scores(self._scores())
        if scores is not None:
            lines += ["", scores.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
        if self.plots:
            lines += ["", f"plots: {', '.join(self.plots)} (.plot(name) gives a Figure)"]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = [f"<h4>{html.escape(self._title())}</h4>"]
        verdict = self._verdict()
        if verdict:
            parts.append("<ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in verdict)
                         + "</ul>")
        scores = shown_scores(self._scores())
        if scores is not None:
            parts.append(scores.to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                        border=0))
        if self.plots:
            uri = png_uri(self.plot(self.plots[0]))
            parts.append(f'<img src="{uri}" alt="{html.escape(self.plots[0])} plot" '
                         f'style="max-width: {CARD_WIDTH}px">')
            parts.append(f"<p><small>plots: {html.escape(', '.join(self.plots))} "
                         "(<code>.plot(name)</code>); text: <code>.summary()</code></small></p>")
        return "<div>" + "".join(parts) + "</div>"


def shown_scores(scores: pd.DataFrame | None) -> pd.DataFrame | None:
    """The columns of :data:`SHOWN` a score table has (step 1 only, when it has steps)."""
    if scores is None or scores.empty:
        return None
    if "step" in scores.columns and scores["step"].nunique() > 1:
        scores = scores[scores["step"] == 1]
    return scores[[c for c in SHOWN if c in scores.columns]]


def png_uri(fig) -> str:
    """A Figure as a PNG data URI (small: 72 dpi)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72, bbox_inches="tight",
                metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
