"""Derived indicators, evaluated vectorised: one numpy evaluation per formula *shape*.

Formulas such as ``a / (b / 7)`` repeat across hundreds of indicators with different ids. Each
formula is turned into a template (indicator ids replaced by positional placeholders ``$0``,
``$1``...) and grouped with every formula of the same template and dependency depth; one group
evaluates at once over a ``(group size, regions)`` matrix gathered from the value matrix. The
catalog's 349 derived indicators make 7 groups.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from engine.catalog import expr


#: instruction codes of :meth:`DerivedPlan.program` (binary ops pop two, push one)
OPS = ("ref", "num", "+", "-", "*", "/", "neg", "abs", "min", "max")


def _template(node, refs: list):
    if isinstance(node, expr.Ref):
        refs.append(node.name)
        return expr.Ref(f"${len(refs) - 1}")
    if isinstance(node, expr.Neg):
        return expr.Neg(_template(node.arg, refs))
    if isinstance(node, expr.BinOp):
        left = _template(node.left, refs)
        return expr.BinOp(node.op, left, _template(node.right, refs))
    if isinstance(node, expr.Call):
        return expr.Call(node.func, tuple(_template(a, refs) for a in node.args))
    return node


class DerivedPlan:
    """Groups of derived indicators sharing one formula template, in dependency order.

    Parameters
    ----------
    indicators : list of dict
        The catalog's indicators (output rows in this order).

    Examples
    --------
    >>> inds = [{"id": "a", "aggregation": "count"}, {"id": "b", "aggregation": "count"},
    ...         {"id": "c", "aggregation": "derived", "formula": "a / (b / 7)"},
    ...         {"id": "d", "aggregation": "derived", "formula": "b / (a / 7)"}]
    >>> dp = DerivedPlan(inds)
    >>> len(dp.groups)
    1
    >>> V = np.array([[1.0, 2.0], [7.0, 0.0], [np.nan, np.nan], [np.nan, np.nan]])
    >>> dp.evaluate(V); V[2:]
    array([[ 1., nan],
           [49.,  0.]])
    """

    def __init__(self, indicators: list[dict]):
        row = {ind["id"]: r for r, ind in enumerate(indicators)}
        parsed = {}
        for ind in indicators:
            if ind.get("aggregation") == "derived":
                parsed[ind["id"]] = expr.parse(ind["formula"])
        for iid, node in parsed.items():
            for ref in expr.refs(node):
                if ref not in row:
                    raise ValueError(f"derived indicator {iid!r} reads unknown indicator {ref!r}")
        depth: dict[str, int] = {}

        def depth_of(iid, stack=()):
            if iid not in parsed:
                return -1
            if iid in depth:
                return depth[iid]
            if iid in stack:
                raise ValueError(f"derived indicators form a cycle: {' -> '.join(stack + (iid,))}")
            d = 1 + max([depth_of(r, stack + (iid,)) for r in expr.refs(parsed[iid])] + [-1])
            depth[iid] = d
            return d

        groups: dict = defaultdict(lambda: ([], []))
        for iid, node in parsed.items():
            refs: list[str] = []
            tmpl = _template(node, refs)
            key = (depth_of(iid), repr(tmpl))
            g = groups[key]
            g[0].append(row[iid])
            g[1].append([row[r] for r in refs])
            groups[key] = g
            self_tmpl = tmpl
            groups[key + ("tmpl",)] = self_tmpl  # remembered once per key
        self.groups = []
        for key in sorted(k for k in groups if len(k) == 2):
            rows, refrows = groups[key]
            self.groups.append((groups[key + ("tmpl",)], np.array(rows, np.int64),
                                np.array(refrows, np.int64).reshape(len(rows), -1)))
        self.rows = np.array(sorted(row[i] for i in parsed), np.int64)
        # compact matrix: only the rows formulas read and the derived rows themselves (float64),
        # so that the value kernel can write everything else straight in the output dtype
        need = set(self.rows.tolist())
        for _, rows, refrows in self.groups:
            need.update(refrows.ravel().tolist())
        self.compact_rows = np.array(sorted(need), np.int64)
        pos = np.full(len(indicators), -1, np.int64)
        pos[self.compact_rows] = np.arange(len(self.compact_rows))
        self.compact_pos = pos  # compact index of each output row, -1 when not needed
        self.compact_groups = [(t, pos[rows], pos[refrows]) for t, rows, refrows in self.groups]
        self.compact_derived = pos[self.rows]

    def program(self):
        """The derived rows as one stack program for :func:`engine.core.kernels.derived_rows`.

        Returns ``(ops, arg, consts, ptr, out_row, d_pos, depth)``: the instructions of derived
        row ``j`` (in dependency order) are ``ops[ptr[j]:ptr[j + 1]]`` (codes :data:`OPS`; ``arg``
        is a compact row for ``ref``, an index into ``consts`` for ``num``); ``out_row[j]`` /
        ``d_pos[j]`` are its output row and compact row; ``depth`` the deepest stack.

        >>> inds = [{"id": "a", "aggregation": "count"}, {"id": "c", "aggregation": "derived", "formula": "a / 7"}]
        >>> ops, arg, consts, ptr, out_row, d_pos, depth = DerivedPlan(inds).program()
        >>> [OPS[o] for o in ops], consts.tolist(), out_row.tolist(), depth
        (['ref', 'num', '/'], [7.0], [1], 2)
        """
        ops: list[int] = []
        arg: list[int] = []
        consts: list[float] = []
        ptr = [0]
        out_row: list[int] = []
        d_pos: list[int] = []
        depth = [1]
        code = {name: i for i, name in enumerate(OPS)}

        def emit(node, refpos, h):
            depth[0] = max(depth[0], h + 1)
            if isinstance(node, expr.Num):
                ops.append(code["num"])
                arg.append(len(consts))
                consts.append(float(node.value))
            elif isinstance(node, expr.Ref):
                ops.append(code["ref"])
                arg.append(int(refpos[int(node.name[1:])]))
            elif isinstance(node, expr.Neg):
                emit(node.arg, refpos, h)
                ops.append(code["neg"])
                arg.append(0)
            elif isinstance(node, expr.BinOp):
                emit(node.left, refpos, h)
                emit(node.right, refpos, h + 1)
                ops.append(code[node.op])
                arg.append(0)
            elif isinstance(node, expr.Call):
                if node.func == "abs":
                    emit(node.args[0], refpos, h)
                    ops.append(code["abs"])
                    arg.append(0)
                else:  # min / max fold left to right, like np.fmin / np.fmax in expr.evaluate
                    emit(node.args[0], refpos, h)
                    for a in node.args[1:]:
                        emit(a, refpos, h + 1)
                        ops.append(code[node.func])
                        arg.append(0)
            else:
                raise TypeError(f"not an expression node: {node!r}")

        for tmpl, rows, refrows in self.compact_groups:
            for j in range(len(rows)):
                emit(tmpl, refrows[j], 0)
                ptr.append(len(ops))
                d_pos.append(int(rows[j]))
                out_row.append(int(self.compact_rows[rows[j]]))
        i64 = lambda x: np.array(x, np.int64)  # noqa: E731
        return (i64(ops), i64(arg), np.array(consts, np.float64), i64(ptr), i64(out_row), i64(d_pos), depth[0])

    def evaluate_compact(self, D: np.ndarray, out: np.ndarray | None = None) -> None:
        """Fill the derived rows of the compact matrix ``D`` (``compact_rows`` on its second-last
        axis, float64) like :meth:`evaluate`; with ``out`` (the full matrix, any float dtype)
        also copy them into their rows of ``out``."""
        self._run(D, self.compact_groups)
        if out is not None and len(self.rows):
            out[..., self.rows, :] = D[..., self.compact_derived, :]

    def evaluate(self, V: np.ndarray) -> None:
        """Fill the derived rows of ``V`` (indicators x regions, or time x indicators x regions on
        the last two axes) in place, group by group in dependency order."""
        self._run(V, self.groups)

    @staticmethod
    def _run(V, groups) -> None:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for tmpl, rows, refrows in groups:
                env = {f"${p}": V[..., refrows[:, p], :].astype(np.float64, copy=False)
                       for p in range(refrows.shape[1])}
                out = expr.evaluate(tmpl, env)
                V[..., rows, :] = np.broadcast_to(out, V[..., rows, :].shape)
