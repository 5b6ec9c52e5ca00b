"""Malformed frames: each class is answered with an Error naming the problem, and the board goes
on serving with everything it accepted before intact."""

from __future__ import annotations

import numpy as np

from ...protocol import Ack, WriteWeights
from ._common import configure, expect_error, read_back, small_net
from ._frames import MALFORMED
from ._scenario import scenario
from ._target import NotApplicable

_WHY = {
    "bad-crc": "A frame whose body does not match its CRC-32 (one bit flipped in the array data): the "
               "link corrupted it, and a board must not act on corrupted bytes.",
    "truncated": "A frame shorter than its header says: a sender that lost bytes, or a cut write.",
    "bad-msgpack": "A body whose header is not msgpack at all (the byte 0xc1): garbage from a peer that "
                   "does not speak the protocol.",
    "unknown-tag": "A message type the catalogue does not have (run_reqest): unknown is refused, not "
                   "ignored, so a typo or a newer peer shows at once.",
    "missing-field": "A RunRequest without its required run_id: no default may stand in for a required field.",
    "wrong-dtype": "A SpikeBatch whose t_ticks are declared int32 instead of int64: types never change, "
                   "and reading the bytes as another dtype would misplace every event.",
    "weight-out-of-range": "A WriteWeights holding the code 64, beyond the 6-bit range: the message's own "
                           "checks run on decoding, and a board must not store what the chip cannot hold.",
    "unchecked": "A well-formed frame sent without its checksum (the UNCHECKED flag of the length word): "
                 "only an ideal in-process link, which cannot flip bits, may carry those; a host link can "
                 "corrupt frames, so its receiver requires the CRC (docs/protocol.md, frame layout).",
    "oversize": "A frame header announcing a 4 GiB body: refused from the header alone, before the body "
                "is waited for or buffered, so a peer cannot make the board allocate it.",
}


def _make(name: str):
    build, field = MALFORMED[name]

    async def run(target):
        if name == "truncated" and target.byte_stream:
            raise NotApplicable("on a byte stream a frame is as long as its header says: a short frame "
                                "swallows the next frame's bytes (closing inside a frame is covered by "
                                "session.reconnect)")
        net = small_net()
        async with target.session() as s:
            peer = s.peer
            await configure(peer, net)
            await peer.send_frame(build())
            err = await expect_error(peer, mentions=field, in_reply_to="frame")
            if name == "oversize" and target.byte_stream:
                # the stream cannot be resynchronised after a refused length: the board closes it
                await peer.expect_end()
                return {"error": err.message, "closed": True}
            await read_back(peer, net, request_id=41)  # nothing accepted before was lost
            rows, cols, _ = net.block
            await peer.send(WriteWeights(request_id=42, row=rows[:1], column=cols[:1],
                                         weight=np.ones((1, 1), np.uint8)))
            await peer.expect(Ack(request_id=42, what="write_weights"))  # and it goes on serving
        return {"error": err.message}

    run.__doc__ = (f"{_WHY[name]} The board answers with an Error (fault remote, in reply to frame) whose "
                   f"text names {field}, then reads back the weights written before unchanged and confirms a "
                   f"new write: it keeps serving and loses nothing already accepted.")
    if name == "oversize":
        run.__doc__ += (" On a byte stream (a board server) the length cannot be skipped, so there the board "
                        "answers the Error and closes the connection instead; the next connection is served.")
    return run


for _name in MALFORMED:
    scenario(f"malformed.{_name}")(_make(_name))
