"""The conformance suite: named scenarios that check a board speaks the protocol.

Run it with ``neurosplit conformance`` (host/cli/_conformance.py) or from Python::

    results = await run_suite(InProcessTarget(chip_seed=0))
    print(table(results))
"""

from ._scenario import (FAIL, NOT_APPLICABLE, PASS, SCENARIOS, Failed, Result, Scenario, run_scenario, run_suite,
                        scenario, select)
from ._target import DEFAULT_SESSION, InProcessTarget, NotApplicable, Session, SocketTarget, Target, serving_target
from ._report import counts, junit_xml, report, table
# importing the scenario modules registers their scenarios, in catalogue order
from . import _handshake, _exchange, _malformed, _ordering, _flow, _reliable_link, _session, _training  # noqa: F401

__all__ = ["FAIL", "NOT_APPLICABLE", "PASS", "SCENARIOS", "Failed", "Result", "Scenario", "run_scenario", "run_suite",
           "scenario", "select", "DEFAULT_SESSION", "InProcessTarget", "NotApplicable", "Session", "SocketTarget",
           "Target", "serving_target", "counts", "junit_xml", "report", "table"]
