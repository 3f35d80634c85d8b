"""The charts of a soak run (bench/soak.py), drawn from its series.csv and summary.json with matplotlib.

uv run --frozen python bench/soak_charts.py OUT_DIR      # re-draws OUT_DIR/*.png from OUT_DIR/series.csv
"""

import csv
import json
import sys
from itertools import groupby
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

SERVICES = ("ingest", "inbox", "automation", "sender", "domains")
PHASE_COLOURS = {"ramp": "#eeeeee", "soak": "#e8f3e8", "burst": "#fbe3e3", "recovery": "#e6eefa", "drain": "#f4f0e0"}
CHARTS = ("throughput.png", "latency.png", "rss.png", "cpu.png", "connections.png", "queues.png")


def read_series(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def column(rows: list[dict], name: str) -> list[float | None]:
    return [float(r[name]) if r.get(name) not in (None, "") else None for r in rows]


def shade_phases(ax, rows: list[dict], minutes: list[float]) -> None:
    start = 0.0
    for name, group in groupby(zip(minutes, (r["phase"] for r in rows), strict=True), key=lambda pair: pair[1]):
        points = list(group)
        end = points[-1][0]
        label = name.split()[0]
        ax.axvspan(start, end, color=PHASE_COLOURS.get(label, "#ffffff"), zorder=0, lw=0)
        if end - start > 0.04 * (minutes[-1] or 1):
            ax.text((start + end) / 2, 1.0, label, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=8, color="#555555")  # fmt: skip
        start = end


def render(out: Path) -> list[Path]:
    rows = read_series(out / "series.csv")
    summary = json.loads((out / "summary.json").read_text())
    minutes = [float(r["t_s"]) / 60 for r in rows]
    title_note = f"{summary['backend'].split(',')[0]}; {summary['machine']}"
    paths = []

    def finish(fig, ax_list, name: str, title: str) -> None:
        paths.append(save_chart(fig, ax_list, rows, out / name, f"{title}\n{title_note}"))

    fig, ax = plt.subplots(figsize=(10, 4.5))
    for name, label in (("offered_per_s", "offered"), ("accepted_per_s", "accepted (250)"),
                        ("readable_per_s", "readable via gateway"), ("relayed_per_s", "replies at relay"),
                        ("refused_4xx_per_s", "4xx / dropped at SMTP (attempts)")):  # fmt: skip
        ax.plot(minutes, column(rows, name), label=label, lw=1)
    ax.set_ylabel("mails per second")
    finish(fig, [ax], "throughput.png", f"Throughput (capacity {summary['capacity_mails_per_s']} mails/s)")

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for ax, prefix, what in ((top, "readable", "250 → readable"), (bottom, "reply_relay", "reply POST → relay")):
        ax.plot(minutes, column(rows, f"{prefix}_p50_s"), label=f"{what} p50", lw=1)
        ax.plot(minutes, column(rows, f"{prefix}_p99_s"), label=f"{what} p99", lw=1)
        ax.set_ylabel("seconds")
        ax.set_yscale("log")
    finish(fig, [top, bottom], "latency.png", "Latency per sample interval")

    fig, ax = plt.subplots(figsize=(10, 4.5))
    slopes = summary.get("rss_slope_mb_per_hour_during_soak", {})
    soak = [i for i, r in enumerate(rows) if r["phase"] == "soak"]
    for name in SERVICES:
        values = column(rows, f"rss_mb_{name}")
        slope = slopes.get(name)
        label = f"{name} (soak slope {slope:+.1f} MB/h)" if slope is not None else name
        (line,) = ax.plot(minutes, values, label=label, lw=1)
        if slope is not None and soak:
            xs = [minutes[i] for i in soak if values[i] is not None]
            ys = [values[i] for i in soak if values[i] is not None]
            mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
            per_minute = slope / 60
            ax.plot([xs[0], xs[-1]], [mean_y + per_minute * (xs[0] - mean_x), mean_y + per_minute * (xs[-1] - mean_x)],
                    color=line.get_color(), ls="--", lw=1)  # fmt: skip
    ax.set_ylabel("RSS (MB)")
    finish(fig, [ax], "rss.png", "Resident memory per service (dashed: least-squares fit over the soak)")

    fig, ax = plt.subplots(figsize=(10, 4.5))
    for name in (*SERVICES, "database"):
        values = column(rows, f"cpu_pct_{name}")
        if any(v is not None for v in values):  # runs before CPU was sampled have no such column
            ax.plot(minutes, values, label=name if name != "database" else "database server", lw=1)
    ax.set_ylabel("CPU % (100 = one core)")
    if rows and rows[0].get("load_average_1m") not in (None, ""):  # on its own axis: a count, not a percentage
        load = ax.twinx()
        load.plot(minutes, column(rows, "load_average_1m"), label="load average (right)", lw=1, ls=":", color="#777")
        load.set_ylabel("1-minute load average")
        load.set_ylim(bottom=0)
        load.legend(fontsize=8, loc="upper right")
    finish(fig, [ax], "cpu.png", "CPU per process, and the machine's load average")

    fig, ax = plt.subplots(figsize=(10, 4))
    for name in SERVICES:
        ax.plot(minutes, column(rows, f"connections_{name}"), label=name, lw=1)
    ax.set_ylabel("established TCP connections")
    finish(fig, [ax], "connections.png", "Open connections per service")

    fig, ax = plt.subplots(figsize=(10, 4.5))
    queues = [k for k in rows[0] if k.startswith("queue_") and "journal" not in k] if rows else []
    busy = [q for q in queues if max((v or 0) for v in column(rows, q)) > 0]
    for name in busy:
        ax.plot(minutes, column(rows, name), label=name.removeprefix("queue_"), lw=1)
    if not busy:
        ax.plot(minutes, [0] * len(minutes), label="every queue (always 0)", lw=1)
    ax.set_ylabel("ready messages")
    finish(fig, [ax], "queues.png", "Queue depths (queues that ever held a message)")

    if (out / "database.csv").exists():  # runs before the services timed their database commands have none
        paths += database_chart(out, rows, title_note)
    return paths


def save_chart(fig, ax_list, rows: list[dict], path: Path, title: str) -> Path:
    """Every chart's finish: the phases shaded, a grid, the legend, the title, one PNG."""
    minutes = [float(r["t_s"]) / 60 for r in rows]
    for ax in ax_list:
        shade_phases(ax, rows, minutes)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    ax_list[-1].set_xlabel("minutes since start")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def database_intervals(out: Path) -> dict[tuple[str, str, str], list[tuple[float, float, float]]]:
    """Per (service, command, collection): (minute, calls, seconds) between consecutive scrapes."""
    with (out / "database.csv").open(newline="") as handle:
        scraped = list(csv.DictReader(handle))
    series: dict[tuple[str, str, str], list[tuple[float, float, float]]] = {}
    previous: dict[tuple[str, str, str], tuple[float, float]] = {}
    for row in scraped:
        key = (row["service"], row["command"], row["collection"])
        calls, seconds = float(row["calls"]), float(row["seconds"])
        before_calls, before_seconds = previous.get(key, (0.0, 0.0))
        if calls < before_calls:  # the service restarted: its counters began again
            before_calls = before_seconds = 0.0
        series.setdefault(key, []).append((float(row["t_s"]) / 60, calls - before_calls, seconds - before_seconds))
        previous[key] = (calls, seconds)
    return series


def database_chart(out: Path, rows: list[dict], title_note: str, top: int = 8) -> list[Path]:
    """The costliest database commands of the soak: mean ms per call over time, and how each changed from the
    soak's first five minutes to its last five (database_growth.md)."""
    series = database_intervals(out)
    soak_minutes = [float(r["t_s"]) / 60 for r in rows if r["phase"] == "soak"]
    if not series or not soak_minutes:
        return []
    start, end = soak_minutes[0], soak_minutes[-1]

    def in_window(points, low, high):
        calls = sum(c for m, c, _ in points if low < m <= high)
        seconds = sum(t for m, _, t in points if low < m <= high)
        return calls, seconds

    busiest = sorted(series, key=lambda k: -in_window(series[k], start, end)[1])[:top]
    fig, ax = plt.subplots(figsize=(10, 5))
    for key in busiest:
        points = [(m, 1000 * t / c) for m, c, t in series[key] if c > 0]
        ax.plot([m for m, _ in points], [v for _, v in points], label=" ".join(key), lw=1)
    ax.set_ylabel("mean ms per command")
    ax.set_yscale("log")
    title = f"The {top} database commands with the most time during the soak (all services)\n{title_note}"
    chart = save_chart(fig, [ax], rows, out / "database.png", title)

    lines = ["| service | command | collection | first 5 soak min: calls/s, ms | last 5 soak min: calls/s, ms | ms ratio |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    first_window, last_window = (start, min(start + 5, end)), (max(end - 5, start), end)
    for key in busiest:
        cells, means = [], []
        for low, high in (first_window, last_window):
            calls, seconds = in_window(series[key], low, high)
            means.append(1000 * seconds / calls if calls else None)
            cells.append(f"{calls / max((high - low) * 60, 1e-9):.2f}, {means[-1]:.1f}" if calls else "-")
        ratio = f"{means[1] / means[0]:.2f}" if means[0] and means[1] else "-"
        lines.append(f"| {' | '.join(key)} | {cells[0]} | {cells[1]} | {ratio} |")
    (out / "database_growth.md").write_text("\n".join(lines) + "\n")
    return [chart]


if __name__ == "__main__":
    for path in render(Path(sys.argv[1])):
        print(path)
