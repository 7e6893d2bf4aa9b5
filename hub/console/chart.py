"""The overview's chart: requests per day, stacked by decision, as a server-rendered SVG (no script)."""

from __future__ import annotations

from datetime import date
from html import escape

COLOURS = {"allow": "#2e7d32", "deny": "#c62828", "error": "#757575"}
DECISIONS = ("allow", "deny", "error")


def bars(days: list[date], counts: dict[tuple[date, str], int], width: int = 760, height: int = 220) -> str:
    """One stacked bar per day (oldest left); ``counts`` by (day, decision)."""
    left, bottom, top = 40, 30, 10
    plot_h = height - bottom - top
    peak = max([sum(counts.get((d, k), 0) for k in DECISIONS) for d in days] + [1])
    step = (width - left - 10) / max(len(days), 1)
    bar_w = max(step * 0.7, 2)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>Requests per day 每日请求</title>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i, d in enumerate(days):
        x = left + i * step + (step - bar_w) / 2
        y = float(top + plot_h)
        for k in DECISIONS:
            n = counts.get((d, k), 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{COLOURS[k]}">'
                f"<title>{escape(d.isoformat())} {k}: {n}</title></rect>"
            )
        if len(days) <= 16 or i % 2 == 0:
            out.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 12}" text-anchor="middle" font-size="10">'
                f"{d.month:02d}-{d.day:02d}</text>"
            )
    out.append("</svg>")
    return "".join(out)
