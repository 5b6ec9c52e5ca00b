"""Profiling: counters hold the bytes actually encoded, reports are consistent, profiling changes
no result, and the profile / compare commands write what they promise."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np

from neurosplit.actors import Profiler, SystemConfig, open_system, profiling
from neurosplit.actors._profile import TimeSeries
from neurosplit.host._report import spikes_sha256, weights_sha256
from neurosplit.host._training import TrainConfig, train
from neurosplit.host.cli import main
from neurosplit.protocol import decode

from helpers import FAST_CORE, poisson_playback

SAMPLE_TICKS = 40 * 125


class _Recording:
    """A transport that notes every frame it sends (length and message type) and passes it on."""

    def __init__(self, inner, sent: list) -> None:
        self.inner, self.sent = inner, sent

    async def send_frame(self, frame: bytes) -> None:
        self.sent.append((len(frame), decode(frame).TAG))
        await self.inner.send_frame(frame)

    async def receive_frame(self) -> bytes:
        return await self.inner.receive_frame()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def buffer_used(self) -> int:
        return self.inner.buffer_used()


async def _run(placement, playback, n_samples, *, profiler=None, wrap=None, **config):
    async with open_system(SystemConfig(core=FAST_CORE, **config), wrap=wrap, profiler=profiler) as system:
        await system.host.configure(placement.neurons, placement.rows)
        await system.host.write_weights(placement.weight_rows, placement.weight_columns, placement.weight_block)
        result = await system.host.run(*playback, n_samples=n_samples, sample_ticks=SAMPLE_TICKS)
    return result, system


async def test_counters_equal_the_bytes_actually_encoded(small_placement):
    _, placement = small_placement
    sent: dict[tuple[str, str], list] = defaultdict(list)

    def recorder(name):
        def wrap(a, b):
            return _Recording(a, sent[(name, "down")]), _Recording(b, sent[(name, "up")])
        return wrap

    wrap = {name: recorder(name) for name in ("host", "chip", "ppu", "synram")}
    playback = poisson_playback(16, 3, SAMPLE_TICKS, 0.01, seed=2)
    _, system = await _run(placement, playback, 3, wrap=wrap)
    for name, link in system.links.items():
        for d in ("down", "up"):
            frames = sent[(name, d)]
            stats = link.stats[d]
            assert stats.messages == len(frames), (name, d)
            assert stats.bytes == sum(n for n, _ in frames), (name, d)
            by_tag = defaultdict(int)
            for n, tag in frames:
                by_tag[tag] += n
            assert {t: row[1] for t, row in stats.by_tag.items()} == dict(by_tag), (name, d)
    assert sum(len(f) for f in sent.values()) > 10


async def test_profile_report_is_consistent_with_the_counters(small_placement):
    _, placement = small_placement
    playback = poisson_playback(16, 3, SAMPLE_TICKS, 0.01, seed=2)
    profiler = Profiler(detailed=True)
    _, system = await _run(placement, playback, 3, profiler=profiler)
    report = profiler.report()
    hops = {(r["link"], r["direction"]): r for r in report["tables"]["hops"]}
    for (name, d), row in hops.items():
        stats = system.links[name].stats[d]
        assert row["messages"] == stats.messages and row["bytes"] == stats.bytes
        if stats.messages:  # every frame was matched at its receiver: one wall latency per frame
            assert report["histograms"]["wall_latency_us"][f"{name}/{d}"]["n"] == stats.messages
            assert 0 < row["wall_p50_us"] <= row["wall_p90_us"] <= row["wall_p99_us"] <= row["wall_max_us"]
    assert hops[("host", "up")]["emu_p50_us"] >= 50.0  # the host link's fixed latency
    by_type = report["tables"]["traffic_by_type"]
    assert sum(r["bytes"] for r in by_type) == sum(r["bytes"] for r in hops.values())
    actors = {r["actor"]: r for r in report["tables"]["actors"]}
    received = {"core": system.links["chip"].stats["down"].messages + system.links["synram"].stats["down"].messages,
                "host": system.links["host"].stats["up"].messages}
    for name, n in received.items():
        assert actors[name]["handled"] == n
    assert actors["core"]["busy_s"] > 0 and actors["core"]["loop_s"] >= 0
    assert {r["actor"] for r in report["tables"]["handle_by_type"]} >= {"core", "router", "host"}
    assert report["overhead"]["hook_calls"] > 0 and report["overhead"]["fraction_of_wall"] < 1
    json.dumps(report)  # plain data


class _Copying(_Recording):
    """A wrapper that hands the receiver a copy of each frame (as reliable delivery does)."""

    async def receive_frame(self) -> bytes:
        return bytes(bytearray(await self.inner.receive_frame()))


async def test_frames_are_matched_through_a_wrapper_that_copies_them(small_placement):
    _, placement = small_placement
    wrap = {"host": lambda a, b: (_Copying(a, []), _Copying(b, []))}
    profiler = Profiler(detailed=True)
    _, system = await _run(placement, poisson_playback(16, 2, SAMPLE_TICKS, 0.01, seed=2), 2, wrap=wrap,
                           profiler=profiler)
    hist = profiler.report()["histograms"]["wall_latency_us"]
    for d in ("down", "up"):
        assert hist[f"host/{d}"]["n"] == system.links["host"].stats[d].messages
    # the host's next frames leave after the replies it saw: its down clock follows the up arrivals
    assert system.links["host"].timeline.counters["up"].received_arrival_ticks > 0


async def test_profiling_does_not_change_results(small_placement):
    _, placement = small_placement
    playback = poisson_playback(16, 4, SAMPLE_TICKS, 0.01, seed=3)
    plain, _ = await _run(placement, playback, 4)
    profiled, _ = await _run(placement, playback, 4, profiler=Profiler(detailed=True))
    assert spikes_sha256(*plain.spike_arrays()) == spikes_sha256(*profiled.spike_arrays())

    cfg = TrainConfig(epochs=1, n_train=60, n_test=20, n_hidden=10, batch_size=20, seed=4)
    shas = []
    for profiler in (None, Profiler(detailed=True)):
        async with open_system(SystemConfig(seed=4, core=FAST_CORE), profiler=profiler) as system:
            report = await train(system.host, cfg)
            weights = (await system.host.read_weights(np.arange(256, dtype=np.uint16),
                                                      np.arange(512, dtype=np.uint16))).weight
        shas.append((weights_sha256(weights), report["test_accuracy"], report["train_loss"]))
    assert shas[0] == shas[1]


async def test_the_active_profiler_attaches_to_systems_opened_in_its_context(small_placement):
    _, placement = small_placement
    playback = poisson_playback(16, 1, SAMPLE_TICKS, 0.01, seed=3)
    profiler = Profiler(detailed=False)
    with profiling(profiler):
        _, system = await _run(placement, playback, 1)
    assert profiler.systems == [system]
    report = profiler.report()
    assert report["detailed"] is False and report["series"] == {} and report["tables"]["hops"]


def test_time_series_thinning_keeps_the_peaks():
    series = TimeSeries(max_points=16)
    values = np.zeros(1000)
    values[[137, 555, 901]] = [7, 9, 5]
    for t, v in enumerate(values):
        series.add(float(t), float(v))
    assert len(series.t) < 16
    assert max(series.v) == 9 and 7 in series.v  # peaks survive (7 and 9 fall in different kept points)
    assert series.t == sorted(series.t)


def test_profile_command_writes_report_tables_and_plots(tmp_path, capsys):
    out = tmp_path / "prof"
    assert main(["profile", "--seed", "2", "run", "--samples", "2", "--no-calibrate", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["command"] == "profile" and report["profiled_command"] == "run" and report["seed"] == 2
    assert {"traffic", "dropped", "spikes_sha256", "profile"} <= set(report)
    for table in ("hops", "actors", "traffic_by_type", "handle_by_type"):
        assert (out / f"{table}.csv").read_text().count("\n") >= 2
    printed = capsys.readouterr().out
    assert "hops" in printed and "actors" in printed and "profiling overhead" in printed
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "plots skipped" in printed
    else:
        assert (out / "latency.png").stat().st_size > 0 and (out / "queues.png").exists()


def test_compare_command_measures_every_scheme_on_the_same_task(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "yinyang", "--epochs", "1", "--n-train", "60", "--n-test", "30", "--hidden", "10",
            "--batch-size", "20", "--no-calibrate", "--no-plots", "--out", str(out),
            "--schemes", "on-chip-eventprop", "host-eventprop"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    rows = {r["learning"]: r for r in report["compare"]["schemes"]}
    assert set(rows) == {"on-chip-eventprop", "host-eventprop"}
    for row in rows.values():
        assert row["gradient_estimates"] == 3 and row["training_samples"] == 60
        assert row["train_bytes_per_gradient"] == row["train_down_bytes_per_gradient"] + row["train_up_bytes_per_gradient"]
        assert 0 <= row["test_accuracy"] <= 1 and row["dropped"] == {}
    # spike times come up for host EventProp; on chip only the learning results do
    assert rows["host-eventprop"]["train_up_bytes_per_gradient"] > rows["on-chip-eventprop"]["train_up_bytes_per_gradient"]
    assert "spike_batch" in rows["host-eventprop"]["train_bytes_by_type"]["up"]
    assert "spike_batch" not in rows["on-chip-eventprop"]["train_bytes_by_type"]["up"]
    assert (out / "compare.csv").exists()
    assert "B/grad" in capsys.readouterr().out


def test_compare_applies_the_link_options_to_every_scheme(tmp_path):
    """--faults (and --reliable, --board) reach the systems compare opens: frames dropped on the chip link
    show up as events dropped by reason in each scheme's row."""
    out = tmp_path / "cmp"
    argv = ["compare", "yinyang", "--epochs", "1", "--n-train", "40", "--n-test", "20", "--hidden", "10",
            "--batch-size", "20", "--no-calibrate", "--no-plots", "--out", str(out),
            "--schemes", "on-chip-eventprop", "--faults", "chip:drop=0.3"]
    assert main(argv) == 0
    row = json.loads((out / "report.json").read_text())["compare"]["schemes"][0]
    assert sum(row["dropped"].values()) > 0, row["dropped"]
