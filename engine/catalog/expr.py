"""A small, safe expression language for derived indicators (no Python ``eval``).

Grammar::

    expr  := term (("+" | "-") term)*
    term  := unary (("*" | "/") unary)*
    unary := "-" unary | atom
    atom  := NUMBER | NAME | FUNC "(" expr ("," expr)* ")" | "(" expr ")"

``NAME`` is an indicator id (dotted). Functions: ``min``, ``max`` (element-wise, any number of
arguments) and ``abs``. Division by zero gives NaN (an undefined ratio), never ``inf``.

>>> import numpy as np
>>> f = parse("100 * a.b.c.open / a.b.c.total")
>>> sorted(refs(f))
['a.b.c.open', 'a.b.c.total']
>>> evaluate(f, {"a.b.c.open": np.array([1.0, 0.0]), "a.b.c.total": np.array([4.0, 0.0])})
array([25., nan])
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

FUNCTIONS = {"min": (1, None), "max": (1, None), "abs": (1, 1)}

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)"
    r"|(?P<op>[-+*/(),]))"
)


class FormulaError(ValueError):
    """A formula that does not parse, with the position of the problem."""


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Neg:
    arg: object


@dataclass(frozen=True)
class BinOp:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise FormulaError(f"unexpected character {text[pos:].lstrip()[:1]!r} at position {pos} in {text!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None, len(self.text))

    def take(self, value=None):
        tok = self.peek()
        if tok[0] is None or (value is not None and tok[1] != value):
            want = repr(value) if value else "more input"
            got = repr(tok[1]) if tok[0] else "end of formula"
            raise FormulaError(f"expected {want} at position {tok[2]} in {self.text!r}, got {got}")
        self.i += 1
        return tok

    def parse(self):
        if not self.tokens:
            raise FormulaError("empty formula")
        node = self.expr()
        if self.peek()[0] is not None:
            tok = self.peek()
            raise FormulaError(f"unexpected {tok[1]!r} at position {tok[2]} in {self.text!r}")
        return node

    def expr(self):
        node = self.term()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            op = self.take()[1]
            node = BinOp(op, node, self.term())
        return node

    def term(self):
        node = self.unary()
        while self.peek()[1] in ("*", "/") and self.peek()[0] == "op":
            op = self.take()[1]
            node = BinOp(op, node, self.unary())
        return node

    def unary(self):
        if self.peek()[1] == "-" and self.peek()[0] == "op":
            self.take()
            return Neg(self.unary())
        return self.atom()

    def atom(self):
        kind, value, pos = self.peek()
        if kind == "num":
            self.take()
            return Num(float(value))
        if kind == "name":
            self.take()
            if self.peek()[1] == "(":
                if value not in FUNCTIONS:
                    raise FormulaError(
                        f"unknown function {value!r} at position {pos} in {self.text!r}; "
                        f"expected one of {sorted(FUNCTIONS)}"
                    )
                self.take("(")
                args = [self.expr()]
                while self.peek()[1] == ",":
                    self.take(",")
                    args.append(self.expr())
                self.take(")")
                lo, hi = FUNCTIONS[value]
                if len(args) < lo or (hi is not None and len(args) > hi):
                    raise FormulaError(f"{value}() takes {lo if hi == lo else f'at least {lo}'} argument(s), got {len(args)}")
                return Call(value, tuple(args))
            return Ref(value)
        if value == "(":
            self.take("(")
            node = self.expr()
            self.take(")")
            return node
        got = repr(value) if kind else "end of formula"
        raise FormulaError(f"expected a number, an indicator id or '(' at position {pos} in {self.text!r}, got {got}")


def parse(text: str):
    """Parse a formula into an expression tree; raises :class:`FormulaError` with the position.

    >>> parse("2 * x.y.z.w")
    BinOp(op='*', left=Num(value=2.0), right=Ref(name='x.y.z.w'))
    """
    return _Parser(str(text)).parse()


def refs(node) -> set[str]:
    """The indicator ids a parsed formula reads.

    >>> sorted(refs(parse("max(a.b.c.d, 0) - e.f.g.h")))
    ['a.b.c.d', 'e.f.g.h']
    """
    if isinstance(node, Ref):
        return {node.name}
    if isinstance(node, Neg):
        return refs(node.arg)
    if isinstance(node, BinOp):
        return refs(node.left) | refs(node.right)
    if isinstance(node, Call):
        return set().union(*(refs(a) for a in node.args))
    return set()


def evaluate(node, env):
    """Evaluate a parsed formula over arrays; ``env`` maps indicator id -> numpy array (or scalar).

    >>> evaluate(parse("abs(-x.a.b.c) / 2"), {"x.a.b.c": 3.0})
    1.5
    """
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Ref):
        return env[node.name]
    if isinstance(node, Neg):
        return -evaluate(node.arg, env)
    if isinstance(node, BinOp):
        a, b = evaluate(node.left, env), evaluate(node.right, env)
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(b == 0, np.nan, a / np.where(b == 0, 1.0, b))
        return out if out.ndim else float(out)
    if isinstance(node, Call):
        args = [evaluate(a, env) for a in node.args]
        if node.func == "abs":
            return np.abs(args[0])
        fn = np.fmin if node.func == "min" else np.fmax
        out = args[0]
        for a in args[1:]:
            out = fn(out, a)
        return out
    raise TypeError(f"not an expression node: {node!r}")


def topological_order(deps: dict[str, set[str]]) -> tuple[list[str], list[list[str]]]:
    """Order derived ids so each comes after the derived ids it reads; also return the cycles.

    ``deps`` maps a derived id to the ids its formula reads (non-derived ids are ignored).

    >>> topological_order({"a": {"b"}, "b": {"x"}})
    (['b', 'a'], [])
    >>> topological_order({"a": {"b"}, "b": {"a"}})[1]
    [['a', 'b']]
    """
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    cycles: list[list[str]] = []
    for root in sorted(deps):
        if state.get(root):
            continue
        stack = [(root, iter(sorted(deps[root] & deps.keys())))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
                order.append(node)
            elif state.get(child) == 1:
                cycle = path[path.index(child):]
                if sorted(cycle) not in [sorted(c) for c in cycles]:
                    cycles.append(cycle)
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(deps[child] & deps.keys()))))
    return order, cycles
