"""``neurosplit chip serve``: one board (FPGA router, analog core, PPU) in this process, served to
one host at a time over TCP (actors._board)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import trio

from ... import actors
from ...protocol import PROTOCOL_VERSION
from ._common import common_parser

NAME = "chip"
HELP = "emulated boards in their own processes (chip serve)"
DEFAULT_LISTEN = "127.0.0.1:7557"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="chip_command", required=True)
    serve = sub.add_parser("serve", parents=[common_parser()], help="serve one board to one host at a time")
    serve.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                       help=f"where to listen (default {DEFAULT_LISTEN}: loopback only; port 0 picks a free one)")
    serve.add_argument("--handshake-timeout", type=float, default=10.0, metavar="S",
                       help="seconds a new connection may take to say hello")
    serve.add_argument("--max-sessions", type=int, default=0, metavar="N",
                       help="stop after serving N hosts (0: serve until interrupted)")
    serve.add_argument("--record", metavar="DIR",
                       help="record every frame of each admitted session (the host link at the board's end and "
                            "the board's own links) into DIR/session-NNN.nsrec; `neurosplit replay` reads them")
    serve.set_defaults(log_level="info")


async def job(args) -> dict:
    listen_host, port = actors.parse_address(args.listen)
    if args.max_sessions < 0:
        raise ValueError(f"--max-sessions must be >= 0, got {args.max_sessions}")
    server = actors.BoardServer(args.chip_seed, handshake_timeout_s=args.handshake_timeout,
                                recorder=_session_recorder(args.record, args.chip_seed) if args.record else None)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, listen_host, port)
        bound = listeners[0].socket.getsockname()
        if listen_host not in ("127.0.0.1", "::1", "localhost"):
            print(f"warning: listening on {listen_host}: any host that can reach it may drive this board "
                  f"(there is no authentication)", file=sys.stderr)
        print(f"serving chip {args.chip_seed} on {bound[0]}:{bound[1]} (protocol version "
              f"{PROTOCOL_VERSION}); stop with Ctrl-C", flush=True)
        nursery.start_soon(_until_signal, nursery.cancel_scope)
        if args.max_sessions:
            nursery.start_soon(_until_sessions, server, args.max_sessions, nursery.cancel_scope)
        await trio.sleep_forever()
    sessions = [s.__dict__ for s in server.sessions]
    return {"listen": f"{bound[0]}:{bound[1]}", "sessions": sessions,
            "hosts_served": sum(1 for s in sessions if not s["outcome"].startswith(("refused", "disconnected before")))}


def _session_recorder(directory: str, chip_seed: int):
    """A recorder per admitted session, writing DIR/session-NNN.nsrec."""
    from ...actors.testing import FrameRecorder

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    def make(index: int, peer: str, session: dict) -> FrameRecorder:
        return FrameRecorder(out / f"session-{index:03d}.nsrec",
                             meta={"command": "chip serve", "recorded_by": "chip serve", "chip_seed": chip_seed,
                                   "seed": session.get("seed"), "session": session, "peer": peer,
                                   "host_link": "the board's end"})

    return make


async def _until_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


async def _until_sessions(server: actors.BoardServer, n: int, scope: trio.CancelScope) -> None:
    while sum(1 for s in server.sessions if not s.outcome.startswith(("refused", "disconnected before"))) < n:
        await trio.sleep(0.05)
    scope.cancel()


def summary(report: dict) -> None:
    print(f"served {report['hosts_served']} host(s) on {report['listen']}")
    for s in report["sessions"]:
        print(f"  {s['peer']:<22} {s['outcome']}  ({s['wall_s']:.1f} s)")
