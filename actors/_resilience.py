"""What goes under each link: fault injection, and reliable delivery on the host link.

``wrap_links`` turns fault specs by link into the ``wrap`` argument of ``open_system`` and keeps
the counters of every wrapper, for the report (``faults`` and ``reliable``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ._faults import FaultSpec, LinkFaults, fault_wrapper
from ._reliable import ReliableConfig, ReliableStats, reliable_wrapper
from ._transport import FrameTransport

__all__ = ["LinkWrapping", "wrap_links", "RELIABLE_LINKS"]

RELIABLE_LINKS = ("host",)
"""Links that can run reliable delivery (the hardware's host transport is HostARQ over UDP)."""


@dataclass
class LinkWrapping:
    """wrap: for open_system. faults, reliable: the counters of each wrapper, by link."""

    wrap: dict = field(default_factory=dict)
    faults: dict[str, LinkFaults] = field(default_factory=dict)
    reliable: dict[str, dict[str, ReliableStats]] = field(default_factory=dict)

    def statistics(self) -> dict:
        """``{"faults": {link: {direction: counts}}, "reliable": {link: {end: counters}}}``; a part is
        empty when nothing of that kind was configured."""
        return {"faults": {link: f.statistics() for link, f in self.faults.items()},
                "reliable": {link: {end: s.as_dict() for end, s in ends.items()} for link, ends in self.reliable.items()}}


def wrap_links(faults: Mapping[str, FaultSpec] | None = None, *, seed: int = 0,
               reliable: ReliableConfig | bool | None = None) -> LinkWrapping:
    """Wrappers for ``open_system(..., wrap=result.wrap)``.

    faults: a FaultSpec per link name (specs that inject nothing are left out). seed: the seed of
    every spec that names none. reliable: reliable delivery on the host link; None turns it on
    exactly when the host link's faults can lose, duplicate or reorder frames, True or a
    ReliableConfig turns it on, False keeps it off (refused if the host link can lose frames:
    a lost frame without retransmission leaves a request unanswered for ever).
    """
    out = LinkWrapping()
    faults = {link: spec for link, spec in (faults or {}).items() if spec.active}
    host_loses = "host" in faults and faults["host"].loses_frames
    if reliable is None:
        reliable = host_loses
    if reliable is False and host_loses:
        raise ValueError("host: faults that lose, duplicate, reorder or corrupt frames need reliable delivery "
                         "on the host link")
    config = reliable if isinstance(reliable, ReliableConfig) else ReliableConfig() if reliable else None
    for link, spec in faults.items():
        wrap, counters = fault_wrapper(link, spec, seed)
        out.wrap[link] = wrap
        out.faults[link] = counters
    if config is not None:
        for link in RELIABLE_LINKS:
            rel_wrap, stats = reliable_wrapper(config, link)
            out.wrap[link] = _stack(out.wrap.get(link), rel_wrap)
            out.reliable[link] = stats
    return out


def _stack(lower, upper):
    """A wrapper that applies ``lower`` (if any) under ``upper``."""
    if lower is None:
        return upper

    def wrap(a: FrameTransport, b: FrameTransport):
        return upper(*lower(a, b))

    return wrap
