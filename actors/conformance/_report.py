"""The suite's outputs: a terminal table, a JSON-ready report, JUnit XML for CI."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ._scenario import FAIL, NOT_APPLICABLE, PASS, Result

__all__ = ["table", "report", "junit_xml", "counts"]


def counts(results: list[Result]) -> dict[str, int]:
    """{"passed", "failed", "not_applicable", "total"}."""
    by = {PASS: 0, FAIL: 0, NOT_APPLICABLE: 0}
    for r in results:
        by[r.outcome] += 1
    return {"passed": by[PASS], "failed": by[FAIL], "not_applicable": by[NOT_APPLICABLE], "total": len(results)}


def table(results: list[Result] | list[dict], width: int = 120) -> str:
    """One line per scenario: name, result, seconds, and the divergence or reason (cut to fit).
    ``results``: Results, or the ``scenarios`` list of a report."""
    results = [r if isinstance(r, Result) else _from_dict(r) for r in results]
    name_w = max([len("scenario")] + [len(r.name) for r in results])
    head = f"{'scenario':<{name_w}}  {'result':<6}  {'seconds':>7}  divergence / reason"
    lines = [head, "-" * min(len(head) + 20, width)]
    room = max(width - name_w - 21, 20)
    for r in results:
        text = r.text.replace("\n", " ")
        if len(text) > room:
            text = text[: room - 3] + "..."
        lines.append(f"{r.name:<{name_w}}  {r.outcome:<6}  {r.seconds:>7.2f}  {text}")
    c = counts(results)
    lines.append(f"{c['passed']} passed, {c['failed']} failed, {c['not_applicable']} not applicable")
    return "\n".join(lines)


def _from_dict(d: dict) -> Result:
    r = Result(d["name"], d["result"], d["seconds"], d.get("checks", ""), reason=d.get("reason", ""))
    if d.get("divergence"):
        r.reason = d["divergence"]["text"]
    return r


def report(results: list[Result], target: dict) -> dict:
    """The JSON report's fields: the target, the counts, and every scenario's result."""
    return {"target": target, **counts(results), "wall_s": round(sum(r.seconds for r in results), 3),
            "scenarios": [r.as_dict() for r in results]}


def junit_xml(results: list[Result], *, suite: str = "neurosplit-conformance", target: str = "") -> str:
    """JUnit XML: one testsuite, a testcase per scenario; ``failure`` carries the divergence,
    ``skipped`` the reason a scenario does not apply."""
    c = counts(results)
    root = ET.Element("testsuites", name=suite, tests=str(c["total"]), failures=str(c["failed"]), errors="0",
                      skipped=str(c["not_applicable"]), time=f"{sum(r.seconds for r in results):.3f}")
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(c["total"]), failures=str(c["failed"]), errors="0",
                       skipped=str(c["not_applicable"]), time=f"{sum(r.seconds for r in results):.3f}")
    if target:
        props = ET.SubElement(ts, "properties")
        ET.SubElement(props, "property", name="target", value=target)
    for r in results:
        group, _, short = r.name.partition(".")
        case = ET.SubElement(ts, "testcase", classname=f"conformance.{group}", name=r.name, time=f"{r.seconds:.3f}")
        if r.outcome == FAIL:
            failure = ET.SubElement(case, "failure", message=r.text[:500],
                                    type="divergence" if r.divergence else "check")
            body = [r.text]
            if r.divergence is not None:
                d = r.divergence.as_dict()
                body += [f"{k}: {d[k]}" for k in ("index", "expected", "received", "field", "expected_value",
                                                   "received_value", "note")]
            if r.reason and r.reason != r.text:
                body.append(f"reason: {r.reason}")
            failure.text = "\n".join(body)
        elif r.outcome == NOT_APPLICABLE:
            ET.SubElement(case, "skipped", message=r.reason[:500])
        out = ET.SubElement(case, "system-out")
        out.text = r.checks
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
