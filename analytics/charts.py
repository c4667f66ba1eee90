"""Self-contained SVG charts for the HTML report (README, Reports): plain strings, no scripts, no network.

Every text is escaped; long series are thinned to at most `max_points` by keeping each bucket's lowest and
highest value, so a drawdown's trough or a spike survives and a year of minutes stays a small file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from html import escape

PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
)
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 64, 16, 32, 40
_FONT = 'font-family="sans-serif" font-size="11"'


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _tick_number(value: float, step: float) -> str:
    """A value tick with as many decimals as its step needs (so neighbouring ticks never print alike), grouped."""
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 2
    return f"{value:,.{decimals}f}"


def _svg_open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-family="sans-serif" font-size="14" '
        f'font-weight="bold">{escape(title)}</text>',
    ]


def _no_data(width: int, height: int, title: str) -> str:
    parts = _svg_open(width, height, title)
    parts.append(
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" {_FONT} fill="#777777">no data</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 5 x 10^k steps)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high == low:
        return [low]
    raw_step = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    first = math.ceil(low / step) * step
    ticks = []
    tick = first
    while tick <= high + step * 1e-9:
        ticks.append(0.0 if abs(tick) < step * 1e-9 else tick)
        tick += step
    return ticks


def _value_range(values: Sequence[float], *, include_zero: bool = False) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if include_zero:
        low, high = min(low, 0.0), max(high, 0.0)
    if low == high:
        pad = abs(low) * 0.05 or 1.0
        low, high = low - pad, high + pad
    return low, high


def _downsample(x: Sequence[float], y: Sequence[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most about max_points points: each bucket keeps its first, lowest and highest point, in time order."""
    if len(x) <= max_points:
        return list(x), list(y)
    buckets = max(1, max_points // 3)
    size = len(x) / buckets
    kept: list[int] = []
    for b in range(buckets):
        start, stop = int(b * size), int((b + 1) * size)
        indexes = range(start, stop)
        finite = [i for i in indexes if math.isfinite(y[i])]
        chosen = {start}
        if finite:
            chosen.add(min(finite, key=lambda i: y[i]))
            chosen.add(max(finite, key=lambda i: y[i]))
        kept.extend(sorted(chosen))
    if kept[-1] != len(x) - 1:
        kept.append(len(x) - 1)
    return [x[i] for i in kept], [y[i] for i in kept]


def _epoch(moment: datetime | date) -> float:
    if not isinstance(moment, datetime):
        # A calendar day (daily equity) is plotted at its UTC midnight.
        return datetime(moment.year, moment.month, moment.day, tzinfo=UTC).timestamp()
    if moment.tzinfo is None:
        raise ValueError(f"chart timestamp {moment.isoformat()} has no timezone")
    return moment.timestamp()


# Tick spacings a reader counts in (seconds): round minutes and hours within a day, whole days and weeks beyond.
_TIME_STEPS: tuple[int, ...] = (
    1, 2, 5, 10, 15, 30,
    60, 2 * 60, 5 * 60, 10 * 60, 15 * 60, 30 * 60,
    3_600, 2 * 3_600, 3 * 3_600, 6 * 3_600, 12 * 3_600,
    86_400, 2 * 86_400, 7 * 86_400, 14 * 86_400, 28 * 86_400, 91 * 86_400, 182 * 86_400, 364 * 86_400,
)  # fmt: skip
_DAY = 86_400
_MAX_TIME_TICKS = 6


def time_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """Ticks at `low` and at round instants in [low, high] (epoch seconds, UTC), distinct labels, format by span.

    Under two days: times of day (`%H:%M`, with seconds if the step is under a minute, and the date when the
    ticks cross midnight); from two days on: whole days, labelled as dates.
    """
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        return []
    span = high - low
    candidates = [step for step in _TIME_STEPS if span < 2 * _DAY or step >= _DAY]
    step = next(
        (s for s in candidates if math.floor(high / s) - math.ceil(low / s) + 1 <= _MAX_TIME_TICKS),
        candidates[-1],
    )
    while math.floor(high / step) - math.ceil(low / step) + 1 > _MAX_TIME_TICKS:
        step *= 2  # beyond a year of history: every second, fourth, ... year-long step
    # The axis's first instant is always labelled (where the data starts); round instants follow, none so close
    # to it that the labels would collide (a label is about a tenth of the axis wide).
    clearance = max(0.5 * step, 0.12 * span)
    rounds = range(math.ceil(low / step), math.floor(high / step) + 1)
    instants = [low, *(k * step for k in rounds if k * step >= low + clearance)]
    moments = [datetime.fromtimestamp(t, tz=UTC) for t in instants]
    if step >= _DAY:
        fmt = "%Y-%m-%d"
    else:
        clock = "%H:%M:%S" if step < 60 else "%H:%M"
        several_days = len({m.date() for m in moments}) > 1
        fmt = f"%m-%d {clock}" if several_days else clock
    return [(t, m.strftime(fmt)) for t, m in zip(instants, moments, strict=True)]


def _time_axis(parts: list[str], low: float, high: float, left: float, right: float, bottom: float) -> None:
    ticks = time_ticks(low, high)
    for seconds, label in ticks:
        x = left + (right - left) * (seconds - low) / (high - low)
        parts.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#444444"/>')
        # A label centred on a tick at the right end would run off the chart: it ends there instead.
        anchor = "end" if right - x < 4 * len(label) else "middle"
        parts.append(
            f'<text class="time-tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="{anchor}" {_FONT}>'
            f"{escape(label)}</text>"
        )
    if ticks and all(len(label) <= 8 for _, label in ticks):
        # Times of day alone: the day they fall on, once, under the axis's left end.
        day = datetime.fromtimestamp(low, tz=UTC).strftime("%Y-%m-%d")
        parts.append(
            f'<text class="time-day" x="{left}" y="{bottom + 30}" text-anchor="start" {_FONT}>{day}</text>'
        )


def _value_axis(
    parts: list[str],
    low: float,
    high: float,
    top: float,
    bottom: float,
    left: float,
    right: float,
    label: str,
) -> None:
    ticks = _nice_ticks(low, high)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else abs(ticks[0]) if ticks and ticks[0] else 1.0
    for tick in ticks:
        y = bottom - (tick - low) / (high - low) * (bottom - top)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        parts.append(
            f'<text class="value-tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>'
            f"{escape(_tick_number(tick, step))}</text>"
        )
    if label:
        middle = (top + bottom) / 2
        parts.append(
            f'<text class="axis-label" x="14" y="{middle:.1f}" transform="rotate(-90 14 {middle:.1f})" '
            f'text-anchor="middle" {_FONT}>{escape(label)}</text>'
        )


def _legend(parts: list[str], names: Sequence[str], colours: Sequence[str], left: float, y: float) -> None:
    x = left
    for name, colour in zip(names, colours, strict=True):
        parts.append(f'<rect x="{x:.1f}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14:.1f}" y="{y}" {_FONT}>{escape(name)}</text>')
        x += 24 + 7 * len(name)


def line_chart_svg(
    x: Sequence[datetime | date],
    ys: Mapping[str, Sequence[float]],
    *,
    title: str,
    y_label: str = "",
    width: int = 800,
    height: int = 260,
    max_points: int = 2_000,
    mark_lowest: Callable[[float], str] | None = None,
) -> str:
    """A time-series line chart with one line per named series; NaN values break the line.

    A point with no finite neighbour (a one-day series, or one between gaps) is drawn as a dot, so it shows.
    `mark_lowest` labels the lowest point of the first series with the text it returns (e.g. a drawdown's trough).
    """
    series = {name: list(values) for name, values in ys.items() if len(values)}
    for name, values in series.items():
        if len(values) != len(x):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(x)} timestamps")
    if not x or not series or not any(math.isfinite(v) for values in series.values() for v in values):
        return _no_data(width, height, title)
    seconds = [_epoch(moment) for moment in x]
    thinned = {name: _downsample(seconds, values, max_points) for name, values in series.items()}
    low_t, high_t = min(seconds), max(seconds)
    if low_t == high_t:
        # One instant: half a day either side of a calendar day, half an hour either side of a timestamp.
        pad = _DAY / 2 if not isinstance(x[0], datetime) else 1_800.0
        low_t, high_t = low_t - pad, high_t + pad
    low_v, high_v = _value_range([v for _, values in thinned.values() for v in values])
    left, right = _MARGIN_LEFT, width - _MARGIN_RIGHT
    top, bottom = _MARGIN_TOP + (14 if len(series) > 1 else 0), height - _MARGIN_BOTTOM

    def position(t: float, v: float) -> tuple[float, float]:
        return (
            left + (t - low_t) / (high_t - low_t) * (right - left),
            bottom - (v - low_v) / (high_v - low_v) * (bottom - top),
        )

    parts = _svg_open(width, height, title)
    _value_axis(parts, low_v, high_v, top, bottom, left, right, y_label)
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#444444"/>')
    _time_axis(parts, low_t, high_t, left, right, bottom)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(thinned))]
    for (name, (times, values)), colour in zip(thinned.items(), colours, strict=True):
        commands: list[str] = []
        dots: list[tuple[float, float]] = []
        pen_down = False
        for k, (t, v) in enumerate(zip(times, values, strict=True)):
            if not math.isfinite(v):
                pen_down = False
                continue
            px, py = position(t, v)
            commands.append(f"{'L' if pen_down else 'M'}{px:.1f},{py:.1f}")
            if not pen_down and not (k + 1 < len(values) and math.isfinite(values[k + 1])):
                dots.append((px, py))
            pen_down = True
        parts.append(
            f'<path d="{" ".join(commands)}" fill="none" stroke="{colour}" stroke-width="1.5" '
            f'data-series="{escape(name)}"/>'
        )
        parts.extend(
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}" data-series="{escape(name)}"/>'
            for px, py in dots
        )
    if mark_lowest is not None:
        # A ring on the lowest point, and what it is worth above the plot's right end, clear of the line.
        times, values = next(iter(thinned.values()))
        lowest = min((k for k, v in enumerate(values) if math.isfinite(v)), key=lambda k: values[k])
        px, py = position(times[lowest], values[lowest])
        parts.append(
            f'<circle class="lowest" cx="{px:.1f}" cy="{py:.1f}" r="4" fill="none" stroke="#444444" '
            f'data-value="{values[lowest]!r}"/>'
        )
        parts.append(
            f'<text class="lowest" x="{right}" y="{top - 4}" text-anchor="end" {_FONT} '
            f'data-value="{values[lowest]!r}">{escape(mark_lowest(values[lowest]))}</text>'
        )
    if len(thinned) > 1:
        _legend(parts, list(thinned), colours, left, _MARGIN_TOP + 6)
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart_svg(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    y_label: str = "",
    width: int = 800,
    height: int = 260,
) -> str:
    """One bar per label from a zero line: positive values above it (green), negative below (red)."""
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels for {len(values)} values")
    if not labels:
        return _no_data(width, height, title)
    low_v, high_v = _value_range(list(values), include_zero=True)
    left, right = _MARGIN_LEFT, width - _MARGIN_RIGHT
    top, bottom = _MARGIN_TOP, height - _MARGIN_BOTTOM

    def y_of(value: float) -> float:
        return bottom - (value - low_v) / (high_v - low_v) * (bottom - top)

    parts = _svg_open(width, height, title)
    _value_axis(parts, low_v, high_v, top, bottom, left, right, y_label)
    slot = (right - left) / len(labels)
    zero = y_of(0.0)
    for k, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = left + slot * k + slot * 0.15
        if math.isfinite(value):
            y = min(zero, y_of(value))
            colour = "#2ca02c" if value >= 0 else "#d62728"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{abs(y_of(value) - zero):.1f}" '
                f'fill="{colour}"><title>{escape(label)}: {escape(_number(value))}</title></rect>'
            )
        parts.append(
            f'<text x="{left + slot * (k + 0.5):.1f}" y="{bottom + 16}" text-anchor="middle" {_FONT}>'
            f"{escape(label)}</text>"
        )
    parts.append(f'<line x1="{left}" y1="{zero:.1f}" x2="{right}" y2="{zero:.1f}" stroke="#444444"/>')
    parts.append("</svg>")
    return "\n".join(parts)


def grouped_bar_chart_svg(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    y_label: str = "",
    width: int = 800,
    height: int = 260,
) -> str:
    """Per label, one bar for each series side by side from a zero line (e.g. in- and out-of-sample per fold),
    with a legend; a non-finite value leaves its slot empty."""
    names = list(series)
    if any(len(values) != len(labels) for values in series.values()):
        raise ValueError(f"every series needs {len(labels)} values")
    if not labels or not names:
        return _no_data(width, height, title)
    low_v, high_v = _value_range([v for values in series.values() for v in values], include_zero=True)
    left, right = _MARGIN_LEFT, width - _MARGIN_RIGHT
    top, bottom = _MARGIN_TOP, height - _MARGIN_BOTTOM

    def y_of(value: float) -> float:
        return bottom - (value - low_v) / (high_v - low_v) * (bottom - top)

    colours = [PALETTE[i % len(PALETTE)] for i in range(len(names))]
    parts = _svg_open(width, height, title)
    _value_axis(parts, low_v, high_v, top, bottom, left, right, y_label)
    slot = (right - left) / len(labels)
    bar = slot * 0.8 / len(names)
    zero = y_of(0.0)
    for k, label in enumerate(labels):
        for j, (name, colour) in enumerate(zip(names, colours, strict=True)):
            value = series[name][k]
            if not math.isfinite(value):
                continue
            x = left + slot * k + slot * 0.1 + bar * j
            y = min(zero, y_of(value))
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{abs(y_of(value) - zero):.1f}" '
                f'fill="{colour}"><title>{escape(label)} {escape(name)}: {escape(_number(value))}</title></rect>'
            )
        parts.append(
            f'<text x="{left + slot * (k + 0.5):.1f}" y="{bottom + 16}" text-anchor="middle" {_FONT}>'
            f"{escape(label)}</text>"
        )
    parts.append(f'<line x1="{left}" y1="{zero:.1f}" x2="{right}" y2="{zero:.1f}" stroke="#444444"/>')
    _legend(parts, names, colours, left, _MARGIN_TOP + 6)
    parts.append("</svg>")
    return "\n".join(parts)


def timeline_svg(
    segments: Sequence[tuple[datetime, datetime, str]],
    *,
    title: str,
    start: datetime | None = None,
    end: datetime | None = None,
    width: int = 800,
    height: int = 120,
) -> str:
    """Coloured bands over time, one colour per label (e.g. market regimes), with a legend.

    The axis runs from `start` to `end` when given (the period the chart covers), so a band that begins late
    leaves a visible gap; otherwise from the first band's start to the last band's end.
    """
    if not segments:
        return _no_data(width, height, title)
    spans: list[tuple[float, float, str]] = []
    for begin, finish, label in sorted(
        ((_epoch(begin), _epoch(finish), label) for begin, finish, label in segments),
        key=lambda span: span[0],
    ):
        if finish < begin:
            raise ValueError(f"segment {label!r} ends before it starts")
        if spans and spans[-1][2] == label and spans[-1][1] >= begin:
            # One band for a run of the same label keeps a year of regime changes a small file.
            spans[-1] = (spans[-1][0], max(spans[-1][1], finish), label)
        else:
            spans.append((begin, finish, label))
    low_t = min(spans[0][0], _epoch(start)) if start is not None else spans[0][0]
    high_t = max(max(finish for _, finish, _ in spans), _epoch(end) if end is not None else -math.inf)
    if low_t == high_t:
        high_t = low_t + 1.0
    labels = list(dict.fromkeys(label for _, _, label in spans))
    colour_of = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    left, right = _MARGIN_LEFT, width - _MARGIN_RIGHT
    top, bottom = _MARGIN_TOP + 14, height - _MARGIN_BOTTOM

    parts = _svg_open(width, height, title)
    for begin, finish, label in spans:
        x0 = left + (begin - low_t) / (high_t - low_t) * (right - left)
        x1 = left + (finish - low_t) / (high_t - low_t) * (right - left)
        parts.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 0.5):.1f}" height="{bottom - top}" '
            f'fill="{colour_of[label]}" data-label="{escape(label)}" data-start="{begin!r}" data-end="{finish!r}">'
            f"<title>{escape(label)}</title></rect>"
        )
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#444444"/>')
    _time_axis(parts, low_t, high_t, left, right, bottom)
    _legend(parts, labels, [colour_of[label] for label in labels], left, _MARGIN_TOP + 6)
    parts.append("</svg>")
    return "\n".join(parts)
