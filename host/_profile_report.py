"""Profile and scheme-comparison reports as text tables, CSV files and PNG plots.

Everything here reads the report dictionaries (``report["profile"]`` written by ``neurosplit
profile``, ``report["compare"]`` written by ``neurosplit compare``), never live state, so a plot
can be redrawn from a JSON report at any time. matplotlib is optional (``pip install
neurosplit[plot]``): without it the plot functions return a message instead of files.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

__all__ = ["profile_text", "write_tables_csv", "plot_profile", "compare_text", "plot_compare", "load_report",
           "NO_MATPLOTLIB"]

NO_MATPLOTLIB = "plots skipped: matplotlib is not installed (pip install 'neurosplit[plot]')"


def load_report(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())


def _fmt(value, width: int, digits: int = 1) -> str:
    if value is None or value == "":
        return f"{'-':>{width}}"
    if isinstance(value, float):
        return f"{value:>{width},.{digits}f}"
    if isinstance(value, int):
        return f"{value:>{width},}"
    return f"{value:>{width}}"


def _table(rows: list[dict], columns: list[tuple[str, str, int, int]]) -> str:
    """columns: (key, heading, width, digits)."""
    head = " ".join(f"{h:>{w}}" if i else f"{h:<{w}}" for i, (_, h, w, _) in enumerate(columns))
    lines = [head]
    for row in rows:
        cells = []
        for i, (key, _, w, digits) in enumerate(columns):
            v = row.get(key)
            cells.append(f"{str(v):<{w}}" if i == 0 else _fmt(v, w, digits))
        lines.append(" ".join(cells))
    return "\n".join(lines)


def profile_text(profile: dict) -> str:
    """The profile as aligned text: hops, actors, the heaviest message types, the overhead."""
    t = profile["tables"]
    hops = [dict(r, hop=f"{r['link']}/{r['direction']}") for r in t["hops"] if r["messages"]]
    out = ["hops (wall: send -> receive in the emulator; emu: emulated hardware time, link model)",
           _table(hops, [("hop", "hop", 12, 0), ("messages", "msgs", 8, 0), ("bytes", "bytes", 13, 0),
                         ("encode_us_per_msg", "enc us/msg", 10, 1), ("decode_us_per_msg", "dec us/msg", 10, 1),
                         ("wall_p50_us", "wall p50", 9, 1), ("wall_p90_us", "p90", 9, 1),
                         ("wall_p99_us", "p99", 9, 1), ("wall_max_us", "max us", 10, 1),
                         ("emu_p50_us", "emu p50", 9, 2), ("emu_max_us", "emu max us", 11, 2),
                         ("emu_peak_queue", "emu q", 6, 0), ("emu_dropped_events", "dropped", 8, 0)])]
    actors = t["actors"]
    out += ["", "actors (busy: wall time inside handle(); loop: time its tasks held the event loop)",
            _table(actors, [("actor", "actor", 8, 0), ("handled", "handled", 9, 0), ("busy_s", "busy s", 9, 3),
                            ("busy_fraction", "busy", 6, 3), ("loop_s", "loop s", 9, 3),
                            ("loop_fraction", "loop", 6, 3), ("inbox_peak", "inbox pk", 9, 0),
                            ("inbox_wait_p50_us", "wait p50 us", 12, 1), ("inbox_wait_p99_us", "p99 us", 10, 1)])]
    heavy = sorted(t["traffic_by_type"], key=lambda r: -r["bytes"])[:8]
    out += ["", "heaviest message types",
            _table([dict(r, hop=f"{r['link']}/{r['direction']}") for r in heavy],
                   [("hop", "hop", 12, 0), ("type", "type", 18, 0), ("messages", "msgs", 8, 0),
                    ("bytes", "bytes", 13, 0), ("events", "events", 11, 0), ("bytes_per_message", "B/msg", 11, 0)])]
    ov = profile["overhead"]
    out += ["", f"profiling overhead (estimated): {ov['estimated_s'] * 1e3:.1f} ms of {profile['wall_s']:.2f} s wall "
                f"({100 * ov['fraction_of_wall']:.2f} %; {ov['hook_calls']:,} hook calls, {ov['loop_steps']:,} loop "
                f"steps, {ov['hook_cost_us']:.2f} us each)"]
    return "\n".join(out)


def write_tables_csv(tables: dict[str, list[dict]], out_dir: str | os.PathLike) -> list[Path]:
    """One CSV per table (columns: the union of the rows' keys, in first-seen order)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in tables.items():
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        path = out_dir / f"{name}.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        paths.append(path)
    return paths


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_profile(profile: dict, out_dir: str | os.PathLike) -> list[Path] | str:
    """traffic.png, latency.png, queues.png, actors.png from a profile; a message if no matplotlib."""
    plt = _pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    hops = [r for r in profile["tables"]["hops"] if r["messages"]]

    fig, ax = plt.subplots(figsize=(8, 4))
    names = [f"{r['link']}/{r['direction']}" for r in hops]
    ax.bar(names, [max(r["bytes"], 1) for r in hops], color="tab:blue")
    ax.set_yscale("log")
    ax.set_ylabel("bytes (frames, headers included)")
    ax.set_title("traffic per link and direction")
    for i, r in enumerate(hops):
        ax.annotate(f"{r['messages']:,} msgs", (i, max(r["bytes"], 1)), ha="center", va="bottom", fontsize=7)
    ax.tick_params(axis="x", rotation=30)
    paths.append(_save(fig, out_dir / "traffic.png", plt))

    hist = profile.get("histograms", {})
    panels = [(k, v) for k, v in (("wall-clock latency per hop (emulator)", hist.get("wall_latency_us", {})),
                                  ("emulated hardware latency per hop (link model)", hist.get("emulated_latency_us", {})))
              if v]
    if panels:
        fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), squeeze=False)
        for ax, (title, by_hop) in zip(axes[:, 0], panels):
            for hop, h in by_hop.items():
                ax.stairs(h["counts"], h["edges_us"], label=f"{hop} (n={h['n']:,})")
            ax.set_xscale("log")
            ax.set_xlabel("latency, us")
            ax.set_ylabel("frames")
            ax.set_title(title)
            ax.legend(fontsize=7)
        paths.append(_save(fig, out_dir / "latency.png", plt))

    series = profile.get("series", {})
    panels = [(k, series.get(k, {})) for k in ("link_buffer_depth", "inbox_depth", "emulated_queue") if series.get(k)]
    if panels:
        units = series.get("units", {})
        fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3 * len(panels)), squeeze=False)
        for ax, (key, by_name) in zip(axes[:, 0], panels):
            for name, points in by_name.items():
                if points:
                    xs, ys = zip(*points)
                    if key == "emulated_queue":  # the queue a frame found when it was sent: points
                        ax.plot(xs, ys, ".", markersize=3, label=name)
                    else:
                        ax.step(xs, ys, where="post", label=name, linewidth=0.8)
            ax.set_title(key.replace("_", " ") + " over time")
            ax.set_xlabel(units.get(key, ""))
            ax.legend(fontsize=7)
        paths.append(_save(fig, out_dir / "queues.png", plt))

    actors = profile["tables"]["actors"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    xs = range(len(actors))
    ax.bar([x - 0.2 for x in xs], [r["busy_fraction"] for r in actors], width=0.4, label="inside handle()")
    if any("loop_fraction" in r for r in actors):
        ax.bar([x + 0.2 for x in xs], [r.get("loop_fraction", 0.0) for r in actors], width=0.4,
               label="holding the event loop")
    ax.set_xticks(list(xs), [r["actor"] for r in actors])
    ax.set_ylabel("fraction of wall time")
    ax.set_title("actor busy time")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "actors.png", plt))
    return paths


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare_text(compare: dict) -> str:
    """The scheme comparison as aligned text, with the ratios of up-link information."""
    rows = compare["schemes"]
    out = [f"host-link traffic per scheme ({compare['task']}, seed {compare['seed']}, {compare['epochs']} epoch(s), "
           f"{compare['n_train']} training samples per epoch)",
           _table(rows, [("learning", "scheme", 18, 0), ("samples_per_gradient", "batch", 6, 0),
                         ("train_bytes_per_gradient", "B/grad", 11, 0),
                         ("train_up_bytes_per_gradient", "up B/grad", 11, 0),
                         ("train_down_bytes_per_gradient", "down B/grad", 12, 0),
                         ("train_messages_per_gradient", "msgs/grad", 10, 1),
                         ("train_bytes_per_sample", "B/sample", 10, 1),
                         ("train_up_bytes_per_sample", "up B/smp", 10, 1),
                         ("up_spike_events_per_sample", "up spk/smp", 11, 1),
                         ("up_membrane_values_per_sample", "up V/smp", 9, 1),
                         ("up_hardware_format_bytes_per_sample", "hw B/smp", 9, 1),
                         ("eval_bytes_per_sample", "eval B/smp", 11, 1),
                         ("test_accuracy", "test acc", 9, 3), ("train_wall_s", "train s", 8, 1),
                         ("wall_s", "job s", 7, 1)])]
    for line in compare.get("ratios", []):
        out.append(line["text"])
    return "\n".join(out)


def plot_compare(compare: dict, out_dir: str | os.PathLike) -> list[Path] | str:
    """compare.png: host-link bytes per training sample (down, up, up re-counted in hardware formats)
    and per-link traffic per training sample for each scheme; a message if matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = compare["schemes"]
    names = [r["learning"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    xs = range(len(rows))
    for off, key, label in ((-0.27, "train_down_bytes_per_sample", "down (to the chip)"),
                            (0.0, "train_up_bytes_per_sample", "up (to the host)"),
                            (0.27, "up_hardware_format_bytes_per_sample", "up, in hardware formats")):
        vals = [max(r.get(key, 0), 1) for r in rows]
        ax.bar([x + off for x in xs], vals, width=0.27, label=label)
        for x, v in zip(xs, vals):
            ax.annotate(f"{v:,.0f}", (x + off, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs), [f"{n}\n(batch {r.get('samples_per_gradient', 0):.0f})" for n, r in zip(names, rows)])
    ax.set_yscale("log")
    ax.set_ylabel("host-link bytes per training sample")
    ax.set_title("host link during training")
    ax.legend(fontsize=8)
    ax = axes[1]
    links = sorted({link for r in rows for link in r.get("link_bytes_per_training_sample", {})})
    width = 0.8 / max(len(links), 1)
    for i, link in enumerate(links):
        vals = [max(r.get("link_bytes_per_training_sample", {}).get(link, 0), 1) for r in rows]
        ax.bar([x - 0.4 + width * (i + 0.5) for x in xs], vals, width=width, label=link)
    ax.set_xticks(list(xs), names, rotation=15)
    ax.set_yscale("log")
    ax.set_ylabel("bytes per training sample (whole job)")
    ax.set_title("traffic per link and scheme")
    ax.legend(fontsize=8)
    return [_save(fig, out_dir / "compare.png", plt)]
