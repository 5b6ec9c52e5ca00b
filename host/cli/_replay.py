"""``neurosplit replay``: the host side of a recording against a fresh board; the first divergence."""

from __future__ import annotations

from pathlib import Path

from ...actors.testing import read_recording, replay

NAME = "replay"
HELP = "replay the host side of a --record recording against a fresh board and report the first divergence"


def add_arguments(p) -> None:
    p.add_argument("recording", metavar="PATH", help="a .nsrec file written by --record (run, train, demo)")
    p.add_argument("--partial", action="store_true",
                   help="replay the whole records of a recording cut short (its job was killed) instead of refusing it")
    p.add_argument("--ignore", action="append", default=[], metavar="FIELD",
                   help="leave this field out of the comparison (a name, tag.name or a dotted map path, e.g. "
                        "hello.software); may be repeated. Nothing is ignored by default: no message carries "
                        "wall-clock values")
    p.epilog = ("By default the board runs in this process, configured as the recorded one (its chip seed from the "
                "board's recorded Hello, the rest from the session the host's Hello asked for); --board HOST:PORT "
                "replays against a board server instead. --board-timeout S is the longest the board may stay silent "
                "while a reply is awaited. The exit status is 1 when the replies diverge from the recording.")


async def job(args) -> dict:
    path = Path(args.recording)
    recording = read_recording(path, partial=args.partial)
    report = await replay(recording, args.board or None, ignore=frozenset(args.ignore), timeout_s=args.board_timeout)
    meta = {k: recording.meta.get(k) for k in ("command", "seed", "chip_seed", "session", "board", "host_only")}
    if recording.truncated_at is not None:
        report.notes.append(f"the file was cut short at byte {recording.truncated_at}; "
                            f"the {len(recording.records)} whole records before it were replayed")
    return {"recording": str(path), "recorded": meta, "records": len(recording.records), "replay": report.as_dict(),
            "verdict": report.verdict(), "exit_status": 0 if report.ok else 1}


def summary(report: dict) -> None:
    r = report["replay"]
    recorded = report["recorded"]
    print(f"replayed {report['recording']} ({report['records']} records; recorded by "
          f"`{recorded.get('command') or '?'}`, seed {recorded.get('seed')}) against the board {r['board']}")
    print(report["verdict"])
    d = r["divergence"]
    if d is not None:
        print(f"  expected: {d['expected']}" + (f".{d['field']} = {d['expected_value']}" if d["field"] else ""))
        print(f"  received: {d['received']}" + (f".{d['field']} = {d['received_value']}" if d["field"] else ""))
    for note in r["notes"]:
        print(f"note: {note}")
