"""axe-core in the browser tests: check a page in its current state against WCAG 2.1 A and AA.

axe-core is vendored in tests/assets/axe-core/ (no download while the tests run; README there says which
version and how to update it). ``check_accessibility`` injects it into the page, runs it, writes the results to
artifacts/axe/<state>.json for people to read, and fails on any violation of impact serious or critical, naming
each rule, its help text and the offending elements' selectors.

The pages' Content-Security-Policy allows scripts from 'self' only, so a ``<script>`` tag with axe's text inline
(``page.add_script_tag(path=...)``) would be refused and reported as a CSP violation; the source is evaluated
through the DevTools protocol instead, which the policy does not govern.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import Page

from tests.support.browser import ARTIFACTS

AXE_JS = Path(__file__).resolve().parents[1] / "assets" / "axe-core" / "axe.min.js"
# WCAG 2.1 A and AA (2.0's rules included), and axe's best practices (landmarks, headings); only serious and
# critical findings fail a test, the rest are kept in the results file.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
FAILING_IMPACTS = frozenset({"serious", "critical"})

RUN_AXE_JS = """async (tags) => {
  const results = await window.axe.run(document, {
    runOnly: { type: "tag", values: tags },
    resultTypes: ["violations", "incomplete"],
  });
  return {
    url: results.url,
    testEngine: results.testEngine,
    violations: results.violations,
    incomplete: results.incomplete.map((r) => ({ id: r.id, impact: r.impact, help: r.help, nodes: r.nodes.length })),
    passes: results.passes.length,
  };
}"""


@cache
def axe_source() -> str:
    return AXE_JS.read_text(encoding="utf-8")


async def run_axe(page: Page) -> dict[str, Any]:
    """axe's results for the page as it is now (injected once per document)."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(f"() => {{ {axe_source()}\n}}")
    results: dict[str, Any] = await page.evaluate(RUN_AXE_JS, AXE_TAGS)
    return results


def serious(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in results["violations"] if v.get("impact") in FAILING_IMPACTS]


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']} [{violation['helpUrl']}]")
        for node in violation["nodes"]:
            target = " ".join(json.dumps(t) if not isinstance(t, str) else t for t in node["target"])
            lines.append(f"    {target}: {node.get('failureSummary', '').splitlines()[-1:]}")
    return "\n".join(lines)


async def check_accessibility(page: Page, state: str) -> None:
    """Fail unless axe finds no serious or critical violation (WCAG 2.1 A/AA, best practices) on ``page`` now;
    the results are kept in artifacts/axe/``state``.json."""
    results = await run_axe(page)
    results["state"] = state
    out = ARTIFACTS / "axe"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{state}.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    found = serious(results)
    assert not found, f"axe: {len(found)} serious or critical violation(s) in state {state!r}:\n{describe(found)}"
