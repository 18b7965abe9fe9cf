"""Server-side SVG charts for the agreement dashboard, each with the table it draws.

Every chart is an ``<svg role="img" aria-labelledby=...>`` with a ``<title>`` and ``<desc>``,
labelled axes, and a ``Chart.table`` (caption, headers, rows) the template shows beside it, so
screen readers and screenshots both get the numbers. All text is escaped by format_html.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

VERDICT_LABELS = {"a": "A better", "b": "B better", "tie": "tie", "both_unsafe": "both unsafe"}
_BAR = "#3a6ea5"
_MARK = "#b3261e"
_MUTED = "#6b6b6b"


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    svg: SafeString
    caption: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def figure_text(figure: dict[str, Any]) -> str:
    """'72.0 % (68.1–75.6)' or 'withheld (n = 12)'."""
    if figure.get("estimate") is None:
        return f"{figure.get('withheld') or 'no data'} (n = {figure.get('n', 0)})"
    if figure.get("low") is None:
        return pct(figure["estimate"])
    return f"{pct(figure['estimate'])} ({pct(figure['low'])} to {pct(figure['high'])})"


def _svg(*, chart_id: str, title: str, desc: str, width: int, height: int, body: str) -> SafeString:
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {w} {h}" '
        'aria-labelledby="{id}-title {id}-desc" class="chart" font-family="system-ui, sans-serif" '
        'font-size="13"><title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>'
        "{body}</svg>",
        w=width,
        h=height,
        id=chart_id,
        title=title,
        desc=desc,
        body=mark_safe(body),  # built from format_html pieces only
    )


def interval_bars(
    *,
    chart_id: str,
    title: str,
    axis_label: str,
    rows: Sequence[tuple[str, dict[str, Any]]],
    reference: float | None = None,
    reference_label: str = "",
    markers: Sequence[float | None] | None = None,
    marker_label: str = "",
) -> Chart:
    """Horizontal bars (0 to 100 %) with 95 % interval whiskers; withheld rows show their n.
    ``reference`` draws a dashed line (e.g. 50 % expected); ``markers`` a tick per row."""
    left, plot, row_h, top = 210, 480, 30, 34
    height = top + row_h * max(len(rows), 1) + 46
    scale = plot / 1.0
    parts = [_axis(left=left, plot=plot, top=top, bottom=height - 40, label=axis_label)]
    for i, (label, fig) in enumerate(rows):
        y = top + i * row_h
        parts.append(
            str(
                format_html(
                    '<text x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>',
                    left - 8,
                    y + row_h / 2,
                    label[:30],
                )
            )
        )
        if fig.get("estimate") is None:
            parts.append(
                str(
                    format_html(
                        '<text x="{}" y="{}" dominant-baseline="middle" fill="{}" '
                        'font-style="italic">n = {}: too few for a figure</text>',
                        left + 6,
                        y + row_h / 2,
                        _MUTED,
                        fig.get("n", 0),
                    )
                )
            )
        else:
            parts.append(_bar(x0=left, y=y, row_h=row_h, scale=scale, fig=fig))
        if markers is not None and markers[i] is not None:
            x = left + scale * float(markers[i])  # type: ignore[arg-type]
            parts.append(
                str(
                    format_html(
                        '<path d="M{} {} v{}" stroke="{}" stroke-width="3"/>',
                        x,
                        y + 3,
                        row_h - 6,
                        _MARK,
                    )
                )
            )
    if reference is not None:
        x = left + scale * reference
        parts.append(
            str(
                format_html(
                    '<path d="M{} {} V{}" stroke="{}" stroke-dasharray="5 4"/>'
                    '<text x="{}" y="{}" text-anchor="middle" fill="{}">{}</text>',
                    x,
                    top - 4,
                    height - 40,
                    _MARK,
                    x,
                    top - 10,
                    _MARK,
                    reference_label,
                )
            )
        )
    legend = f"Bars: estimate; whiskers: 95 % interval. {marker_label}".strip()
    headers = ["", "estimate (95 % interval)", "n"] + ([marker_label] if markers else [])
    table_rows = [
        [label, figure_text(fig), str(fig.get("n", 0))]
        + ([pct(markers[i])] if markers is not None else [])
        for i, (label, fig) in enumerate(rows)
    ]
    return Chart(
        id=chart_id,
        title=title,
        svg=_svg(
            chart_id=chart_id,
            title=title,
            desc=legend,
            width=left + plot + 30,
            height=height,
            body="".join(parts),
        ),
        caption=title,
        headers=headers,
        rows=table_rows,
    )


def _axis(*, left: int, plot: int, top: int, bottom: int, label: str) -> str:
    ticks = format_html_join(
        "",
        '<path d="M{x} {top} V{bottom}" stroke="#e2e2e2"/>'
        '<text x="{x}" y="{ty}" text-anchor="middle" fill="#444">{t} %</text>',
        (
            {"x": left + plot * t / 100, "top": top, "bottom": bottom, "ty": bottom + 16, "t": t}
            for t in range(0, 101, 25)
        ),
    )
    return str(
        format_html(
            '{}<text x="{}" y="{}" text-anchor="middle" font-weight="600">{}</text>',
            ticks,
            left + plot / 2,
            bottom + 34,
            label,
        )
    )


def _bar(*, x0: int, y: int, row_h: int, scale: float, fig: dict[str, Any]) -> str:
    width = scale * fig["estimate"]
    bar = format_html(
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" rx="2"/>'
        '<text x="{}" y="{}" dominant-baseline="middle" fill="#fff" font-weight="600">{}</text>',
        x0,
        y + 6,
        max(width, 1),
        row_h - 12,
        _BAR,
        x0 + 4,
        y + row_h / 2,
        pct(fig["estimate"]) if width > 60 else "",
    )
    if fig.get("low") is None:
        return str(bar)
    lo, hi, mid = x0 + scale * fig["low"], x0 + scale * fig["high"], y + row_h / 2
    whisker = format_html(
        '<path d="M{lo} {m} H{hi} M{lo} {a} V{b} M{hi} {a} V{b}" stroke="#111" stroke-width="2"/>',
        lo=lo,
        hi=hi,
        m=mid,
        a=mid - 6,
        b=mid + 6,
    )
    return str(bar) + str(whisker)


def confusion_matrix(
    *, chart_id: str, verdicts: Sequence[str], rows: Sequence[Sequence[int]]
) -> Chart:
    """Judge (rows) against people (columns); cells shaded by their share of the judge's row."""
    cell, left, top = 92, 150, 70
    size = cell * len(verdicts)
    parts = []
    for j, verdict in enumerate(verdicts):
        label = VERDICT_LABELS.get(verdict, verdict)
        parts.append(
            str(
                format_html(
                    '<text x="{}" y="{}" text-anchor="middle">{}</text>'
                    '<text x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>',
                    left + j * cell + cell / 2,
                    top - 10,
                    label,
                    left - 8,
                    top + j * cell + cell / 2,
                    label,
                )
            )
        )
    for i, row in enumerate(rows):
        total = sum(row) or 1
        for j, count in enumerate(row):
            share = count / total
            parts.append(
                str(
                    format_html(
                        '<rect x="{}" y="{}" width="{}" height="{}" fill="rgba(58,110,165,{})" '
                        'stroke="#fff"/><text x="{}" y="{}" text-anchor="middle" '
                        'dominant-baseline="middle" fill="{}" font-weight="{}">{}</text>',
                        left + j * cell,
                        top + i * cell,
                        cell,
                        cell,
                        f"{0.08 + 0.92 * share:.3f}",
                        left + j * cell + cell / 2,
                        top + i * cell + cell / 2,
                        "#fff" if share > 0.5 else "#111",
                        700 if i == j else 400,
                        count,
                    )
                )
            )
    parts.append(
        str(
            format_html(
                '<text x="{}" y="22" text-anchor="middle" font-weight="600">people (human verdict)'
                '</text><text transform="translate(18 {}) rotate(-90)" text-anchor="middle" '
                'font-weight="600">judge</text>',
                left + size / 2,
                top + size / 2,
            )
        )
    )
    labels = [VERDICT_LABELS.get(v, v) for v in verdicts]
    title = "Judge against people: pairs per verdict"
    return Chart(
        id=chart_id,
        title=title,
        svg=_svg(
            chart_id=chart_id,
            title=title,
            desc="Rows: the judge's verdict; columns: people's. The diagonal is agreement.",
            width=left + size + 20,
            height=top + size + 20,
            body="".join(parts),
        ),
        caption=f"{title} (rows: judge, columns: people)",
        headers=["judge \\ people", *labels],
        rows=[[labels[i], *map(str, row)] for i, row in enumerate(rows)],
    )


def reliability_diagram(*, chart_id: str, bins: Sequence[dict[str, Any]]) -> Chart:
    """Agreement with people against the judge's confidence, per confidence bin (0.5 to 1)."""
    left, top, plot = 70, 20, 360
    lo, hi = 0.5, 1.0

    def x(v: float) -> float:
        return left + plot * (v - lo) / (hi - lo)

    def y(v: float) -> float:
        return top + plot * (1 - v)

    parts = [
        str(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#bbb"/>'
                '<path d="M{} {} L{} {}" stroke="{}" stroke-dasharray="5 4"/>',
                left,
                top,
                plot,
                plot,
                x(0.5),
                y(0.5),
                x(1),
                y(1),
                _MUTED,
            )
        )
    ]
    for t in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        parts.append(
            str(
                format_html(
                    '<text x="{}" y="{}" text-anchor="middle" fill="#444">{}</text>',
                    x(t),
                    top + plot + 16,
                    f"{t:.1f}",
                )
            )
        )
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            str(
                format_html(
                    '<text x="{}" y="{}" text-anchor="end" dominant-baseline="middle" '
                    'fill="#444">{} %</text>',
                    left - 6,
                    y(t),
                    int(t * 100),
                )
            )
        )
    width = plot * (bins[0]["high"] - bins[0]["low"]) / (hi - lo) if bins else 0
    for b in bins:
        if b["accuracy"] is None:
            continue
        parts.append(
            str(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" fill-opacity="0.8" '
                    'stroke="#fff"/><circle cx="{}" cy="{}" r="4" fill="{}"/>',
                    x(b["low"]),
                    y(b["accuracy"]),
                    width,
                    top + plot - y(b["accuracy"]),
                    _BAR,
                    x(b["mean_confidence"]),
                    y(b["mean_confidence"]),
                    _MARK,
                )
            )
        )
    parts.append(
        str(
            format_html(
                '<text x="{}" y="{}" text-anchor="middle" font-weight="600">judge confidence'
                '</text><text transform="translate(16 {}) rotate(-90)" text-anchor="middle" '
                'font-weight="600">agrees with people</text>',
                left + plot / 2,
                top + plot + 36,
                top + plot / 2,
            )
        )
    )
    title = "Reliability: does the judge's confidence match its agreement with people?"
    return Chart(
        id=chart_id,
        title=title,
        svg=_svg(
            chart_id=chart_id,
            title=title,
            desc="Bars: share of pairs where people agree, per confidence bin; red dots: mean "
            "confidence; the dashed diagonal is perfect calibration.",
            width=left + plot + 20,
            height=top + plot + 48,
            body="".join(parts),
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
