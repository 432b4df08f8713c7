"""The tests' own asserts must be able to fail: no check hidden in a message, no always-true test."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# A message that computes a truth value is a check nobody evaluates.
CHECK_NODES = (ast.BoolOp, ast.Compare, ast.UnaryOp, ast.NamedExpr)
LITERALS = (ast.Constant, ast.JoinedStr, ast.Tuple, ast.List, ast.Dict, ast.Set)


def unfailable_asserts(source: str, filename: str = "<test>") -> list[str]:
    """Each assert or bare comparison in ``source`` that can never fail, as ``file:line: why: code``."""
    found: list[str] = []

    def report(node: ast.stmt, why: str) -> None:
        found.append(f"{filename}:{node.lineno}: {why}: {ast.unparse(node)[:120]}")

    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Compare | ast.BoolOp):
            report(node, "a comparison that is not asserted")
        if not isinstance(node, ast.Assert):
            continue
        message = node.msg
        if isinstance(message, CHECK_NODES):
            report(node, "a check sits in the message and is never evaluated")
        if isinstance(message, ast.Tuple) and any(isinstance(e, CHECK_NODES) for e in message.elts):
            report(node, "a check sits in the message tuple and is never evaluated")
        test = node.test
        if isinstance(test, LITERALS) and not (isinstance(test, ast.Constant) and not test.value):
            report(node, "the test is a literal (a tuple or non-empty string is always true)")
        if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or):
            if any(isinstance(v, LITERALS) for v in test.values):
                report(node, "an `or` with a literal is always true")
    return found


def test_the_checker_catches_the_patterns_it_names() -> None:
    bad = """
def t(a, b):
    assert a == 1, "msg" and b == 2
    assert a, ("msg", b == 2)
    assert (a == 1, "msg")
    assert a or "msg"
    assert a, not b
    a == 1
"""
    assert [line.split(":")[1] for line in unfailable_asserts(bad)] == ["3", "4", "5", "6", "7", "8"]
    good = """
def t(a, b):
    assert a == 1, "msg"
    assert a == 1 and b == 2, ("msg", a, b)
    assert not a, f"{a}"
    assert False, "unreachable"
"""
    assert unfailable_asserts(good) == []


def test_no_test_hides_a_check_where_it_cannot_fail() -> None:
    found: list[str] = []
    for path in sorted(TESTS.rglob("*.py")):
        found += unfailable_asserts(path.read_text(encoding="utf-8"), str(path.relative_to(TESTS.parent)))
    assert found == [], "\n".join(found)
