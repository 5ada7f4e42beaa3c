"""The formula language: parsing, evaluation against a plain-Python reference, cycles."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.catalog.expr import FormulaError, evaluate, parse, refs, topological_order


def test_precedence_and_unary_minus():
    env = {"a.b.c.d": 2.0, "e.f.g.h": 3.0}
    assert evaluate(parse("1 + a.b.c.d * e.f.g.h"), env) == 7.0
    assert evaluate(parse("(1 + a.b.c.d) * e.f.g.h"), env) == 9.0
    assert evaluate(parse("-a.b.c.d - -e.f.g.h"), env) == 1.0
    assert evaluate(parse("a.b.c.d / e.f.g.h / 2"), env) == pytest.approx(1 / 3)
    assert evaluate(parse("max(a.b.c.d, e.f.g.h, 0) - min(1, a.b.c.d)"), env) == 2.0
    assert evaluate(parse("abs(1 - e.f.g.h)"), env) == 2.0
    assert evaluate(parse("1.5e2"), {}) == 150.0


def test_division_by_zero_is_nan_elementwise():
    out = evaluate(parse("x.a.b.c / y.a.b.c"), {"x.a.b.c": np.array([1.0, 2.0, 0.0]), "y.a.b.c": np.array([2.0, 0.0, 0.0])})
    assert out[0] == 0.5 and np.isnan(out[1]) and np.isnan(out[2])


@pytest.mark.parametrize("text, fragment", [
    ("", "empty formula"),
    ("1 +", "expected a number"),
    ("(a.b.c.d", "expected ')'"),
    ("a.b.c.d )", "unexpected ')'"),
    ("sqrt(a.b.c.d)", "unknown function 'sqrt'"),
    ("a.b.c.d $ 2", "unexpected character '$'"),
    ("abs(1, 2)", "abs() takes 1 argument"),
    ("__import__('os')", "unexpected character"),
])
def test_parse_errors_say_where(text, fragment):
    with pytest.raises(FormulaError, match=__import__("re").escape(fragment)):
        parse(text)


def test_refs():
    assert refs(parse("100 * (a.b.c.x - a.b.c.y) / a.b.c.y")) == {"a.b.c.x", "a.b.c.y"}


def test_topological_order_and_cycles():
    order, cycles = topological_order({"c": {"b", "base"}, "b": {"a"}, "a": {"base"}})
    assert order == ["a", "b", "c"] and cycles == []
    _, cycles = topological_order({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}})
    assert sorted(map(sorted, cycles)) == [["a", "b", "c"], ["d"]]


# A slow, obvious reference: build the same expression as Python source over floats.
_ops = st.sampled_from(["+", "-", "*", "/"])


@st.composite
def expressions(draw, depth=3):
    if depth == 0 or draw(st.booleans()):
        if draw(st.booleans()):
            return draw(st.sampled_from(["v.a.b.x", "v.a.b.y", "v.a.b.z"]))
        return repr(draw(st.floats(min_value=-100, max_value=100, allow_nan=False)))
    kind = draw(st.sampled_from(["bin", "neg", "call"]))
    if kind == "neg":
        return f"-({draw(expressions(depth - 1))})"
    if kind == "call":
        fn = draw(st.sampled_from(["min", "max", "abs"]))
        args = [draw(expressions(depth - 1)) for _ in range(1 if fn == "abs" else 2)]
        return f"{fn}({', '.join(args)})"
    return f"({draw(expressions(depth - 1))} {draw(_ops)} {draw(expressions(depth - 1))})"


def _reference(text, env):
    def div(a, b):
        return math.nan if b == 0 else a / b

    src = text
    for name, value in env.items():
        src = src.replace(name, repr(value))
    # route '/' through div by parsing with Python's ast on numbers only (no names remain)
    import ast

    class Div(ast.NodeTransformer):
        def visit_BinOp(self, node):
            self.generic_visit(node)
            if isinstance(node.op, ast.Div):
                return ast.Call(func=ast.Name("div", ast.Load()), args=[node.left, node.right], keywords=[])
            return node

    tree = ast.fix_missing_locations(Div().visit(ast.parse(src, mode="eval")))
    nanmin = lambda *a: min(x for x in a if not math.isnan(x)) if any(not math.isnan(x) for x in a) else math.nan
    nanmax = lambda *a: max(x for x in a if not math.isnan(x)) if any(not math.isnan(x) for x in a) else math.nan
    return eval(compile(tree, "<ref>", "eval"), {"__builtins__": {}, "div": div, "min": nanmin, "max": nanmax, "abs": abs})


@settings(max_examples=200, deadline=None)
@given(expressions(), st.lists(st.floats(-50, 50, allow_nan=False), min_size=3, max_size=3))
def test_evaluate_matches_python_reference(text, values):
    env = dict(zip(["v.a.b.x", "v.a.b.y", "v.a.b.z"], values))
    got = evaluate(parse(text), {k: np.array([v]) for k, v in env.items()})
    want = _reference(text, env)
    got = float(np.asarray(got).ravel()[0])
    if isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9, nan_ok=True)
