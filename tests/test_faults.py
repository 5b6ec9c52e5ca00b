"""Fault injection: the spec syntax, what each kind of link does wrong, and event accounting: every
input event the host sends is delivered to the core or dropped with a counted reason, and every
spike the core records reaches the host or is dropped with a counted reason, under every fault mix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trio

from neurosplit.actors import FaultSpec, SystemConfig, open_system, parse_faults, wrap_links
from neurosplit.actors._faults import fault_wrapper
from neurosplit.actors._transport import memory_transport_pair
from neurosplit.chip import AnalogCore, EventLaneModel
from neurosplit.host.cli import main
from neurosplit.protocol import Ack, RunComplete, SpikeBatch, decode, encode

from helpers import FAST_CORE, poisson_playback

SAMPLE_TICKS = 40 * 125


# -- the spec ------------------------------------------------------------------------------
def test_command_line_syntax():
    specs = parse_faults("host:drop=0.01,dup=0.01,reorder=0.01,corrupt=0.001; chip:drop=0.002,delay=0.1,delay_s=0.001")
    assert specs["host"] == FaultSpec(drop=0.01, dup=0.01, reorder=0.01, corrupt=0.001)
    assert specs["chip"] == FaultSpec(drop=0.002, delay=0.1, delay_s=0.001)
    assert parse_faults("host:cut_at=40,cut_s=2.5,seed=9,direction=up")["host"] == \
        FaultSpec(cut_at=40, cut_s=2.5, seed=9, direction="up")


@pytest.mark.parametrize(("text", "match"), [
    ("hots:drop=0.1", "unknown link 'hots'"),
    ("host:dorp=0.1", "host: unknown key 'dorp'"),
    ("host:drop=1.5", "host: drop must lie in [0, 1], got 1.5"),
    ("host:drop=lots", "host: drop must be a number"),
    ("host:cut_at=2.5", "host: cut_at must be a whole number"),
    ("host:drop", "host: expected KEY=VALUE"),
    ("drop=0.1", "expected LINK:KEY=VALUE"),
    ("chip:dup=0.1", "chip: dup and reorder happen on a network"),
    ("ppu:drop=0.1", "ppu: only delay is modelled"),
    ("host:direction=sideways", "direction must be"),
])
def test_bad_specs_name_link_key_and_bound(text, match):
    with pytest.raises(ValueError, match=match.replace("[", r"\[").replace("]", r"\]")):
        parse_faults(text)


def test_config_files(tmp_path):
    toml = tmp_path / "faults.toml"
    toml.write_text('seed = 4\n[host]\ndrop = 0.05\ndup = 0.01\n[chip]\ncorrupt = 0.01\nseed = 2\n')
    specs = parse_faults(str(toml))
    assert specs == {"host": FaultSpec(drop=0.05, dup=0.01, seed=4), "chip": FaultSpec(corrupt=0.01, seed=2)}
    js = tmp_path / "faults.json"
    js.write_text(json.dumps({"host": {"reorder": 0.2}}))
    assert parse_faults(str(js)) == {"host": FaultSpec(reorder=0.2)}
    js.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_faults(str(js))
    with pytest.raises(ValueError, match="cannot read"):
        parse_faults(str(tmp_path / "missing.toml"))


# -- what a point-to-point link does -------------------------------------------------------
def _batch(run_id, n, horizon):
    return SpikeBatch(run_id=run_id, t_ticks=np.arange(n), label=np.ones(n, np.uint16), sample=np.zeros(n, np.uint32),
                      horizon_ticks=horizon)


async def test_chip_link_loses_events_but_keeps_time_and_control(autojump_clock):
    wrap, faults = fault_wrapper("chip", FaultSpec(drop=1.0), seed=0)
    router, core = wrap(*memory_transport_pair(8))
    await router.send_frame(encode(_batch(3, 5, 100)))
    await router.send_frame(encode(Ack(request_id=1, what="control passes")))
    got = decode(await core.receive_frame())
    assert got.n_events() == 0 and got.horizon_ticks == 100 and got.run_id == 3  # time goes on
    assert decode(await core.receive_frame()) == Ack(request_id=1, what="control passes")
    # the run's RunComplete, on its way back, names the loss
    await core.send_frame(encode(_batch(3, 2, 100)))
    await core.send_frame(encode(RunComplete(run_id=3, n_samples=1, events_in=0, events_out=2)))
    assert decode(await router.receive_frame()).n_events() == 0
    done = decode(await router.receive_frame())
    assert done.dropped == {"chip_down_fault_drop": 5, "chip_up_fault_drop": 2}
    assert faults.dropped_total == {"chip_down_fault_drop": 5, "chip_up_fault_drop": 2}
    assert faults.counts["down"].spared == 1 and faults.counts["down"].events_lost == 5


async def test_corruption_on_the_chip_link_is_caught_by_the_crc(autojump_clock):
    wrap, faults = fault_wrapper("chip", FaultSpec(corrupt=1.0, direction="down"), seed=1)
    router, core = wrap(*memory_transport_pair(64))
    for k in range(40):
        await router.send_frame(encode(_batch(0, 3, 10 * (k + 1))))
    horizons = [decode(await core.receive_frame()).horizon_ticks for _ in range(40)]
    assert horizons == [10 * (k + 1) for k in range(40)]
    c = faults.counts["down"]
    assert c.corrupt + c.undetected_corruption == 40 and c.undetected_corruption == 0
    assert faults.counts["up"].frames == 0


async def test_delays_keep_order_and_cost_only_time(autojump_clock):
    wrap, faults = fault_wrapper("chip", FaultSpec(delay=0.5, delay_s=1.0), seed=3)
    router, core = wrap(*memory_transport_pair(64))
    frames = [encode(_batch(0, 2, 10 * (k + 1))) for k in range(30)]
    for f in frames:
        await router.send_frame(f)
    t0 = trio.current_time()
    assert [await core.receive_frame() for _ in frames] == frames
    assert trio.current_time() - t0 == pytest.approx(faults.counts["down"].delay * 1.0)


# -- event accounting in the running system --------------------------------------------------
MIXES = {
    "chip drop and corrupt": {"chip": FaultSpec(drop=0.3, corrupt=0.2)},
    "chip cut": {"chip": FaultSpec(cut_at=3, cut_s=1000.0)},
    "chip up only": {"chip": FaultSpec(drop=0.5, direction="up")},
    "host and chip": {"host": FaultSpec(drop=0.1, dup=0.1, reorder=0.1, corrupt=0.05, delay=0.1, delay_s=0.001),
                      "chip": FaultSpec(drop=0.2, corrupt=0.1, delay=0.2, delay_s=0.001)},
}


@pytest.mark.parametrize("lanes_overflow", [False, True])
@pytest.mark.parametrize("mix", list(MIXES))
async def test_every_event_is_delivered_or_dropped_with_a_reason(small_placement, monkeypatch, mix, lanes_overflow):
    _, placement = small_placement
    received = {"in": 0, "recorded": 0}
    feed = AnalogCore.feed

    def counting_feed(self, batch):  # what really reached the core, counted apart from every counter under test
        received["in"] += batch.n_events()
        out = feed(self, batch)
        received["recorded"] += sum(m.n_events() for m in out if isinstance(m, SpikeBatch))
        return out

    monkeypatch.setattr(AnalogCore, "feed", counting_feed)
    lanes = EventLaneModel(n_lanes=2, window_ticks=64, events_per_window=1) if lanes_overflow else EventLaneModel()
    config = SystemConfig(core=FAST_CORE, chunk_events=40, lanes=lanes, seed=2)
    playback = poisson_playback(16, 4, SAMPLE_TICKS, 0.03, seed=8)
    wrapping = wrap_links(MIXES[mix], seed=11)
    with trio.fail_after(120):
        async with open_system(config, wrap=wrapping.wrap) as system:
            await system.host.configure(placement.neurons, placement.rows)
            await system.host.write_weights(placement.weight_rows, placement.weight_columns, placement.weight_block)
            result = await system.host.run(*playback, n_samples=4, sample_ticks=SAMPLE_TICKS)
            dropped_total = system.dropped()
    sent = playback[0].size
    done = result.complete
    down = {r: n for r, n in done.dropped.items() if "_up_" not in r}
    up = {r: n for r, n in done.dropped.items() if "_up_" in r}
    assert done.events_in == sent
    assert received["in"] + sum(down.values()) == sent, (received, done.dropped)
    assert done.events_out == received["recorded"]
    assert result.spike_arrays()[0].size + sum(up.values()) == done.events_out, done.dropped
    assert dropped_total == dict(done.dropped)  # one run: the system's totals are the run's
    lost = {r: n for r, n in done.dropped.items() if "_fault_" in r}
    stats = wrapping.statistics()["faults"]["chip"]
    assert sum(lost.values()) == stats["down"]["events_lost"] + stats["up"]["events_lost"]
    assert lost, "the mix was meant to lose events on the chip link"
    if lanes_overflow:
        assert done.dropped.get("chip_lane_overflow", 0) > 0


# -- command line --------------------------------------------------------------------------
def test_cli_reports_faults_and_repairs(tmp_path):
    path = tmp_path / "run.json"
    argv = ["run", "--samples", "3", "--no-calibrate", "--report", str(path),
            "--faults", "host:drop=0.2,dup=0.2,reorder=0.2,corrupt=0.1;chip:drop=0.2"]
    assert main(argv) == 0
    report = json.loads(path.read_text())
    assert set(report["faults"]) == {"host", "chip"} and "host" in report["reliable"]
    clean = tmp_path / "clean.json"
    assert main(["run", "--samples", "3", "--no-calibrate", "--report", str(clean),
                 "--faults", "host:drop=0.2,dup=0.2,reorder=0.2,corrupt=0.1"]) == 0
    plain = tmp_path / "plain.json"
    assert main(["run", "--samples", "3", "--no-calibrate", "--report", str(plain)]) == 0
    # host-link faults change nothing; the run's spikes are those of a clean link
    assert json.loads(clean.read_text())["spikes_sha256"] == json.loads(plain.read_text())["spikes_sha256"]


def test_cli_refuses_a_bad_fault_spec_in_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--faults", "host:drop=2"])
    err = capsys.readouterr().err
    assert "--faults host: drop must lie in [0, 1], got 2.0" in err and "Traceback" not in err
