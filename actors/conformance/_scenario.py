"""Scenarios, their results, and the runner.

A scenario is a coroutine function ``run(target)`` with a name and a paragraph (its docstring)
saying what it checks and why. It passes by returning (optionally a dict of measurements), fails
by raising ExchangeFailed (the first Divergence) or Failed (a reason), and is not applicable by
raising NotApplicable. Any other exception fails it too, named by type, so one broken scenario
never stops the suite.
"""

from __future__ import annotations

import fnmatch
import inspect
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import trio

from .._system import first_actor_failure
from ..testing import Divergence, ExchangeFailed
from ._target import NotApplicable, Target

__all__ = ["Scenario", "Result", "Failed", "scenario", "SCENARIOS", "select", "run_scenario", "run_suite",
           "PASS", "FAIL", "NOT_APPLICABLE"]

PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "n/a"


class Failed(Exception):
    """A scenario's check failed; the text says which and why (use ExchangeFailed when a message
    diverged: it names the message and field)."""

    def __init__(self, reason: str, divergence: Divergence | None = None) -> None:
        self.divergence = divergence
        super().__init__(reason)


@dataclass(frozen=True)
class Scenario:
    """name: dotted, group first (``malformed.bad-crc``). checks: what it checks and why.
    timeout_s: wall seconds before it fails as hung."""

    name: str
    checks: str
    run: Callable[[Target], Awaitable[dict | None]]
    timeout_s: float = 600.0

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass
class Result:
    """outcome: PASS, FAIL or NOT_APPLICABLE. divergence: the first divergence of a failure when
    a message diverged; reason: the failure's (or non-applicability's) text; details: what the
    scenario measured."""

    name: str
    outcome: str
    seconds: float
    checks: str = ""
    divergence: Divergence | None = None
    reason: str = ""
    details: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        """One line: the reason (which names the divergence, if any), or the divergence."""
        return self.reason or (str(self.divergence) if self.divergence is not None else "")

    def as_dict(self) -> dict:
        return {"name": self.name, "result": self.outcome, "seconds": round(self.seconds, 4), "checks": self.checks,
                "divergence": self.divergence.as_dict() if self.divergence is not None else None,
                "reason": self.reason, "details": self.details}


SCENARIOS: list[Scenario] = []
"""The catalogue, in the order the suite runs it."""


def scenario(name: str, *, timeout_s: float = 600.0):
    """Register ``run(target)`` as a scenario; its docstring is the "checks / why" paragraph."""

    def register(fn):
        checks = " ".join(inspect.cleandoc(fn.__doc__ or "").split())
        if any(s.name == name for s in SCENARIOS):
            raise ValueError(f"scenario {name!r} is registered twice")
        SCENARIOS.append(Scenario(name, checks, fn, timeout_s))
        return fn

    return register


def select(pattern: str | None = None, scenarios: list[Scenario] | None = None) -> list[Scenario]:
    """Scenarios whose name matches ``pattern``: a glob (``malformed.*``) or a substring; several
    patterns separated by commas; ``not X`` excludes. None or empty: all."""
    pool = list(SCENARIOS if scenarios is None else scenarios)
    if not pattern:
        return pool
    keep, drop = [], []
    for part in (p.strip() for p in pattern.split(",")):
        if part.startswith("not "):
            drop.append(part[4:].strip())
        elif part:
            keep.append(part)

    def hit(name: str, pat: str) -> bool:
        return fnmatch.fnmatchcase(name, pat) if any(c in pat for c in "*?[") else pat in name

    return [s for s in pool
            if (not keep or any(hit(s.name, p) for p in keep)) and not any(hit(s.name, p) for p in drop)]


async def run_scenario(target: Target, sc: Scenario) -> Result:
    """Run one scenario against ``target``; never raises (but for cancellation from outside)."""
    t0 = time.perf_counter()
    result = Result(sc.name, PASS, 0.0, sc.checks)
    try:
        with trio.fail_after(sc.timeout_s):
            details = await sc.run(target)
        result.details = dict(details or {})
    except NotApplicable as exc:
        result.outcome, result.reason = NOT_APPLICABLE, str(exc)
    except (trio.Cancelled, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure of one scenario is its result
        leaf = _leaf(exc)
        if isinstance(leaf, NotApplicable):
            result.outcome, result.reason = NOT_APPLICABLE, str(leaf)
        else:
            result.outcome = FAIL
            result.divergence = getattr(leaf, "divergence", None)
            result.reason = _reason(exc, leaf, sc)
    result.seconds = time.perf_counter() - t0
    return result


def _leaf(exc: BaseException) -> BaseException:
    failed = first_actor_failure(exc)
    if failed is not None:
        return failed
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        found = next((e for e in exc.exceptions if not isinstance(e, trio.Cancelled)), exc.exceptions[0])
        exc = found
    return exc


def _reason(exc: BaseException, leaf: BaseException, sc: Scenario) -> str:
    if isinstance(leaf, trio.TooSlowError):
        return f"did not finish within {sc.timeout_s:g} s"
    if isinstance(leaf, (ExchangeFailed, Failed)):
        return str(leaf)
    if first_actor_failure(exc) is not None:
        return f"the board failed: {leaf}"
    return f"{type(leaf).__name__}: {leaf}"


async def run_suite(target: Target, scenarios: list[Scenario] | None = None, *,
                    progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Every scenario (default: the whole catalogue) against ``target``, one after another."""
    out = []
    for sc in SCENARIOS if scenarios is None else scenarios:
        result = await run_scenario(target, sc)
        out.append(result)
        if progress is not None:
            progress(result)
    return out
