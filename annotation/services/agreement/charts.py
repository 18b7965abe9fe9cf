"""The agreement dashboard's charts: geometry computed here, SVG drawn by the partials of
``templates/annotation/charts.html`` (one per chart kind), each chart with the table it draws.

Every chart is an ``<svg role="img" aria-labelledby=...>`` with a ``<title>`` and ``<desc>``,
labelled axes, and a ``Chart.table`` (caption, headers, rows) the template shows beside it, so
screen readers and screenshots both get the numbers. The template escapes every label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from annotation.services.agreement.results import Figure, ReliabilityBin

VERDICT_LABELS = {"a": "A better", "b": "B better", "tie": "tie", "both_unsafe": "both unsafe"}


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float


# Interval bars --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """A 0 to 100 % axis: gridlines at ``ticks`` (x, label) from top to bottom, and its label."""

    ticks: list[Text]
    top: float
    bottom: float
    label: Text


@dataclass(frozen=True)
class Whisker:
    low: float
    high: float
    mid: float
    cap_top: float
    cap_bottom: float


@dataclass(frozen=True)
class BarRow:
    label: Text
    withheld: Text | None  # "n = ...: too few" in place of the bar
    n: int
    bar: Rect | None
    bar_text: Text | None  # the estimate inside the bar, where it fits
    whisker: Whisker | None
    marker: Rect | None  # x, top and length of a reference tick for this row


@dataclass(frozen=True)
class Reference:
    """A dashed line across every row (e.g. 50 % expected), labelled above the plot."""

    x: float
    top: float
    bottom: float
    label: Text


@dataclass(frozen=True)
class Bars:
    axis: Axis
    rows: list[BarRow]
    reference: Reference | None


# Confusion matrix -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    box: Rect
    opacity: str
    count: Text
    text_fill: str
    weight: int


@dataclass(frozen=True)
class Confusion:
    column_labels: list[Text]
    row_labels: list[Text]
    cells: list[Cell]
    columns_title: Text
    rows_title: Text


# Reliability diagram --------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class BinMark:
    """One confidence bin: a bar up to its agreement, a dot at its mean confidence."""

    bar: Rect
    dot: Point


@dataclass(frozen=True)
class Reliability:
    frame: Rect
    diagonal: tuple[Point, Point]
    x_ticks: list[Text]
    y_ticks: list[Text]
    bins: list[BinMark]
    x_title: Text
    y_title: Text


@dataclass(frozen=True)
class Chart:
    id: str
    kind: str  # the partial of annotation/charts.html that draws the geometry
    title: str
    desc: str
    width: float
    height: float
    geometry: Bars | Confusion | Reliability
    caption: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    @property
    def template(self) -> str:
        return f"annotation/charts.html#{self.kind}"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def figure_text(figure: Mapping[str, object]) -> str:
    """'72.0 % (68.1 to 75.6 %)' or 'withheld (n = 12)'."""
    estimate, low, high = figure.get("estimate"), figure.get("low"), figure.get("high")
    if not isinstance(estimate, float | int):
        return f"{figure.get('withheld') or 'no data'} (n = {figure.get('n', 0)})"
    if not isinstance(low, float | int) or not isinstance(high, float | int):
        return pct(estimate)
    return f"{pct(estimate)} ({pct(low)} to {pct(high)})"


def interval_bars(
    *,
    chart_id: str,
    title: str,
    axis_label: str,
    rows: Sequence[tuple[str, Figure]],
    reference: float | None = None,
    reference_label: str = "",
    markers: Sequence[float | None] | None = None,
    marker_label: str = "",
) -> Chart:
    """Horizontal bars (0 to 100 %) with 95 % interval whiskers; withheld rows show their n.
    ``reference`` draws a dashed line (e.g. 50 % expected); ``markers`` a tick per row."""
    left, plot, row_h, top = 210, 480, 30, 34
    height = top + row_h * max(len(rows), 1) + 46
    bottom = height - 40
    scale = plot / 1.0
    axis = Axis(
        ticks=[
            Text(x=left + plot * t / 100, y=bottom + 16, label=str(t)) for t in range(0, 101, 25)
        ],
        top=top,
        bottom=bottom,
        label=Text(x=left + plot / 2, y=bottom + 34, label=axis_label),
    )
    bar_rows = []
    for i, (label, fig) in enumerate(rows):
        y = top + i * row_h
        mid = y + row_h / 2
        marker = markers[i] if markers is not None else None
        bar_rows.append(
            BarRow(
                label=Text(x=left - 8, y=mid, label=label[:30]),
                n=fig["n"],
                withheld=None
                if fig["estimate"] is not None
                else Text(x=left + 6, y=mid, label=str(fig["n"])),
                bar=_bar(x0=left, y=y, row_h=row_h, scale=scale, fig=fig),
                bar_text=_bar_text(x0=left, mid=mid, scale=scale, fig=fig),
                whisker=_whisker(x0=left, mid=mid, scale=scale, fig=fig),
                marker=None
                if marker is None
                else Rect(x=left + scale * marker, y=y + 3, width=0, height=row_h - 6),
            )
        )
    reference_line = None
    if reference is not None:
        x = left + scale * reference
        reference_line = Reference(
            x=x, top=top - 4, bottom=bottom, label=Text(x=x, y=top - 10, label=reference_label)
        )
    headers = ["", "estimate (95 % interval)", "n"] + ([marker_label] if markers else [])
    table_rows = [
        [label, figure_text(fig), str(fig["n"])]
        + ([pct(markers[i])] if markers is not None else [])
        for i, (label, fig) in enumerate(rows)
    ]
    return Chart(
        id=chart_id,
        kind="interval_bars",
        title=title,
        desc=f"Bars: estimate; whiskers: 95 % interval. {marker_label}".strip(),
        width=left + plot + 30,
        height=height,
        geometry=Bars(axis=axis, rows=bar_rows, reference=reference_line),
        caption=title,
        headers=headers,
        rows=table_rows,
    )


def _bar(*, x0: int, y: int, row_h: int, scale: float, fig: Figure) -> Rect | None:
    if fig["estimate"] is None:
        return None
    return Rect(x=x0, y=y + 6, width=max(scale * fig["estimate"], 1), height=row_h - 12)


def _bar_text(*, x0: int, mid: float, scale: float, fig: Figure) -> Text | None:
    if fig["estimate"] is None:
        return None
    fits = scale * fig["estimate"] > 60
    return Text(x=x0 + 4, y=mid, label=pct(fig["estimate"]) if fits else "")


def _whisker(*, x0: int, mid: float, scale: float, fig: Figure) -> Whisker | None:
    if fig["estimate"] is None or fig["low"] is None or fig["high"] is None:
        return None
    return Whisker(
        low=x0 + scale * fig["low"],
        high=x0 + scale * fig["high"],
        mid=mid,
        cap_top=mid - 6,
        cap_bottom=mid + 6,
    )


def confusion_matrix(
    *, chart_id: str, verdicts: Sequence[str], rows: Sequence[Sequence[int]]
) -> Chart:
    """Judge (rows) against people (columns); cells shaded by their share of the judge's row."""
    cell, left, top = 92, 150, 70
    size = cell * len(verdicts)
    labels = [VERDICT_LABELS.get(v, v) for v in verdicts]
    cells = []
    for i, row in enumerate(rows):
        total = sum(row) or 1
        for j, count in enumerate(row):
            share = count / total
            cells.append(
                Cell(
                    box=Rect(x=left + j * cell, y=top + i * cell, width=cell, height=cell),
                    opacity=f"{0.08 + 0.92 * share:.3f}",
                    count=Text(
                        x=left + j * cell + cell / 2, y=top + i * cell + cell / 2, label=str(count)
                    ),
                    text_fill="#fff" if share > 0.5 else "#111",
                    weight=700 if i == j else 400,
                )
            )
    title = "Judge against people: pairs per verdict"
    return Chart(
        id=chart_id,
        kind="confusion_matrix",
        title=title,
        desc="Rows: the judge's verdict; columns: people's. The diagonal is agreement.",
        width=left + size + 20,
        height=top + size + 20,
        geometry=Confusion(
            column_labels=[
                Text(x=left + j * cell + cell / 2, y=top - 10, label=label)
                for j, label in enumerate(labels)
            ],
            row_labels=[
                Text(x=left - 8, y=top + j * cell + cell / 2, label=label)
                for j, label in enumerate(labels)
            ],
            cells=cells,
            columns_title=Text(x=left + size / 2, y=22, label="people (human verdict)"),
            rows_title=Text(x=18, y=top + size / 2, label="judge"),
        ),
        caption=f"{title} (rows: judge, columns: people)",
        headers=["judge \\ people", *labels],
        rows=[[labels[i], *map(str, row)] for i, row in enumerate(rows)],
    )


def reliability_diagram(*, chart_id: str, bins: Sequence[ReliabilityBin]) -> Chart:
    """Agreement with people against the judge's confidence, per confidence bin (0.5 to 1)."""
    left, top, plot = 70, 20, 360
    lo, hi = 0.5, 1.0

    def x(v: float) -> float:
        return left + plot * (v - lo) / (hi - lo)

    def y(v: float) -> float:
        return top + plot * (1 - v)

    width = plot * (bins[0]["high"] - bins[0]["low"]) / (hi - lo) if bins else 0
    shown = [
        (b["low"], b["accuracy"], b["mean_confidence"])
        for b in bins
        if b["accuracy"] is not None and b["mean_confidence"] is not None
    ]
    title = "Reliability: does the judge's confidence match its agreement with people?"
    return Chart(
        id=chart_id,
        kind="reliability_diagram",
        title=title,
        desc="Bars: share of pairs where people agree, per confidence bin; red dots: mean "
        "confidence; the dashed diagonal is perfect calibration.",
        width=left + plot + 20,
        height=top + plot + 48,
        geometry=Reliability(
            frame=Rect(x=left, y=top, width=plot, height=plot),
            diagonal=(Point(x=x(0.5), y=y(0.5)), Point(x=x(1), y=y(1))),
            x_ticks=[
                Text(x=x(t), y=top + plot + 16, label=f"{t:.1f}")
                for t in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
            ],
            y_ticks=[
                Text(x=left - 6, y=y(t), label=str(int(t * 100))) for t in (0, 0.25, 0.5, 0.75, 1.0)
            ],
            bins=[
                BinMark(
                    bar=Rect(x=x(low), y=y(accuracy), width=width, height=top + plot - y(accuracy)),
                    dot=Point(x=x(confidence), y=y(confidence)),
                )
                for low, accuracy, confidence in shown
            ],
            x_title=Text(x=left + plot / 2, y=top + plot + 36, label="judge confidence"),
            y_title=Text(x=16, y=top + plot / 2, label="agrees with people"),
        ),
        caption="Reliability diagram",
        headers=["confidence", "pairs", "mean confidence", "agreement"],
        rows=[
            [
                f"{b['low']:.2f} to {b['high']:.2f}",
                str(b["n"]),
                pct(b["mean_confidence"]),
                pct(b["accuracy"]),
            ]
            for b in bins
        ],
    )
