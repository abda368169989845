"""Parser for Loihi learning-engine rule strings (``dw``, ``dt``, ``dd``).

Grammar (a subset of lava-nc 0.10.0's ``symbolic_equation``, enough for every published rule)::

    expr    := ['+'|'-'] product (('+'|'-') product)*
    product := factor ('*' factor)*
    factor  := VAR | INT | '2^' ['+'|'-'] INT | '(' expr ')' | 'sgn(' expr ')'
    VAR     := x0 x1 x2 y0 y1 y2 y3 w d t u | u<k>

Whitespace is free, also inside ``2 ^ -6``, so strings written the way Lava writes them
(``(1) * 2 ^ -6 * x1 * y0`` from ``lava.magma.core.learning.utils.float_to_literal``, or
``STDPLoihi``'s ``(1) * (-1) * x0 * y1``) parse. ``2^k`` needs k in [-7, 9] (Loihi's scaling constants). Parsing gives a small tuple AST that
backends evaluate; the IR stores the string. :func:`lava_products` turns a string into the
product series Lava's fixed-point learning engine evaluates (scaling mantissa/exponent, dependency,
factors), as ``lava.magma.core.learning.product_series`` derives it.
"""
from __future__ import annotations

import re
from typing import NamedTuple, Optional, Union

from .errors import IRValidationError

VARIABLES = frozenset({"x0", "x1", "x2", "y0", "y1", "y2", "y3", "w", "d", "t", "u"})
_TOKEN = re.compile(r"\s*(?:(?P<pow>2\s*\^)|(?P<num>\d+)|(?P<sgn>sgn\()|(?P<var>[a-zA-Z]\w*)|(?P<op>[-+*()]))")

Node = Union[tuple, str, int, float]


def _tokenize(s: str, node: str, field: str) -> list[tuple[str, str]]:
    pos, out = 0, []
    s = s.rstrip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise IRValidationError(node, field, f"cannot parse {s!r} at position {pos}: {s[pos:pos + 10]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, node: str, field: str) -> None:
        self.toks = _tokenize(text, node, field)
        self.i = 0
        self.node, self.field, self.text = node, field, text

    def err(self, msg: str) -> IRValidationError:
        return IRValidationError(self.node, self.field, f"{msg} in {self.text!r}")

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise self.err("unexpected end")
        self.i += 1
        return tok

    def expr(self) -> Node:
        terms: list[tuple[int, Node]] = []
        sign = 1
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in "+-":
            self.take()
            sign = -1 if tok[1] == "-" else 1
        terms.append((sign, self.product()))
        while (tok := self.peek()) and tok[0] == "op" and tok[1] in "+-":
            self.take()
            terms.append((-1 if tok[1] == "-" else 1, self.product()))
        return ("sum", tuple(terms))

    def product(self) -> Node:
        factors = [self.factor()]
        while (tok := self.peek()) and tok == ("op", "*"):
            self.take()
            factors.append(self.factor())
        return ("prod", tuple(factors))

    def factor(self) -> Node:
        kind, val = self.take()
        if kind == "num":
            return ("const", float(int(val)))
        if kind == "pow":
            neg = False
            if self.peek() in (("op", "-"), ("op", "+")):
                neg = self.take() == ("op", "-")
            k_kind, k_val = self.take()
            if k_kind != "num":
                raise self.err("expected an integer exponent after '2^'")
            k = -int(k_val) if neg else int(k_val)
            if not -7 <= k <= 9:
                raise self.err(f"scaling constant 2^{k} out of Loihi's range 2^-7 .. 2^9")
            return ("const", float(2.0 ** k), k)  # the exponent is kept: Lava scales by 2^k, not by a mantissa
        if kind == "var":
            if val in VARIABLES or re.fullmatch(r"u\d", val):
                return ("var", val)
            raise self.err(f"unknown variable {val!r} (known: {', '.join(sorted(VARIABLES))}, u0..u9)")
        if kind == "sgn":
            inner = self.expr()
            if self.take() != ("op", ")"):
                raise self.err("missing ')' after sgn(")
            return ("sgn", inner)
        if (kind, val) == ("op", "("):
            inner = self.expr()
            if self.take() != ("op", ")"):
                raise self.err("missing ')'")
            return inner
        raise self.err(f"unexpected {val!r}")


def parse_rule(text: str, node: str = "LoihiRule", field: str = "dw") -> Node | None:
    """Parse a rule string into a tuple AST (``None`` for an empty string)."""
    if not text.strip():
        return None
    p = _Parser(text, node, field)
    tree = p.expr()
    if p.peek() is not None:
        raise p.err(f"unexpected {p.peek()[1]!r}")  # type: ignore[index]
    return tree


def variables(tree: Node | None) -> set[str]:
    """Variables a parsed rule reads."""
    if tree is None:
        return set()
    if isinstance(tree, tuple):
        tag = tree[0]
        if tag == "var":
            return {tree[1]}
        if tag == "const":
            return set()
        if tag == "sgn":
            return variables(tree[1])
        if tag == "sum":
            return set().union(*(variables(t) for _, t in tree[1]))
        if tag == "prod":
            return set().union(*(variables(f) for f in tree[1]))
    return set()


def evaluate(tree: Node | None, env: dict, *, sgn=None):  # noqa: ANN001 - generic over array types
    """Evaluate a parsed rule with ``env`` mapping variable names to numbers or arrays.

    ``sgn`` is the sign function of the array library in use (defaults to numpy's).
    """
    if tree is None:
        return 0.0
    tag = tree[0]  # type: ignore[index]
    if tag == "const":
        return tree[1]  # type: ignore[index]
    if tag == "var":
        name = tree[1]  # type: ignore[index]
        if name not in env and name.startswith("u"):
            name = "u"
        return env[name]
    if tag == "sgn":
        if sgn is None:
            import numpy as np
            sgn = np.sign
        return sgn(evaluate(tree[1], env, sgn=sgn))  # type: ignore[index]
    if tag == "prod":
        out = 1.0
        for f in tree[1]:  # type: ignore[index]
            out = out * evaluate(f, env, sgn=sgn)
        return out
    if tag == "sum":
        out = 0.0
        for s, t in tree[1]:  # type: ignore[index]
            v = evaluate(t, env, sgn=sgn)
            out = out + v if s > 0 else out - v
        return out
    raise ValueError(tag)  # pragma: no cover


class LavaFactor(NamedTuple):
    """One factor ``var [+ const]`` (``sgn(...)`` if ``sgn``) of a product, Lava's ``Factor``."""

    var: str  # x0 y0 x1 x2 y1 y2 y3 w d t
    const: Optional[int]
    sgn: bool


class LavaProduct(NamedTuple):
    """One product of a rule string as Lava's ``ProductSeries`` stores it: ``mantissa * 2^(exp - 7)
    * dependency * prod(factors)``; ``decimate`` is ``k`` of a ``u<k>`` dependency."""

    dependency: str  # "x0" | "y0" | "u"
    decimate: Optional[int]
    mantissa: int  # -8..7
    exp: int  # shifted by +7 as Lava stores it: 0..15
    factors: tuple


_DEPS = ("x0", "y0")


def _literal(node: Node) -> tuple[int, int]:
    """(mantissa, exponent) of a constant node: ``2^k`` -> (1, k), an integer n -> (n, 0)."""
    if len(node) == 3:  # type: ignore[arg-type]
        return 1, int(node[2])  # type: ignore[index]
    return int(node[1]), 0  # type: ignore[index]


def _bracket(node: Node, err) -> tuple[str, Optional[tuple[int, int]], Optional[int], int]:  # noqa: ANN001
    """A bracketed ``(c)``, ``(v)`` or ``(v +- c)``: ('const', (m, e), None, sign) or
    ('var', name, const, sign_of_var)."""
    terms = node[1]  # type: ignore[index]
    singles = []
    for sign, prod in terms:
        if prod[0] != "prod" or len(prod[1]) != 1 or prod[1][0][0] not in ("const", "var"):
            raise err("Lava's learning engine accepts only (c), (v) or (v + c) in brackets")
        singles.append((sign, prod[1][0]))
    if len(singles) == 1:
        sign, f = singles[0]
        if f[0] == "const":
            return "const", _literal(f), None, sign
        if sign < 0:
            raise err("Lava ignores the sign of a bracketed single variable '(-v)'; write -v")
        return "var", f[1], None, 1
    if len(singles) == 2:
        kinds = [f[0] for _, f in singles]
        if sorted(kinds) == ["const", "var"]:
            (sv, v), (sc, c) = singles if kinds[0] == "var" else singles[::-1]
            m, e = _literal(c)
            return "var", v[1], sc * m * 2 ** e, sv
    raise err("Lava's learning engine accepts only (c), (v) or (v + c) in brackets")


def lava_products(text: str, node: str = "LoihiRule", field: str = "dw") -> tuple:
    """The :class:`LavaProduct` series of a rule string (empty for an empty string), following
    ``ProductSeries._generate_product``: literals multiply into one scaling ``mantissa * 2^exp``
    (mantissa halved while even and > 7), the first ``x0``/``y0``/``u<k>`` is the dependency (a
    second ``x0``/``y0`` is a 1-bit factor), ``(v + c)`` is a factor with a constant."""
    tree = parse_rule(text, node, field)
    if tree is None:
        return ()

    def err(msg: str) -> IRValidationError:
        return IRValidationError(node, field, f"{msg} in {text!r}")

    out = []
    for sign, prod in tree[1]:  # type: ignore[index]
        m, e, dep, dec, facs = sign, 0, None, None, []
        items = prod[1] if prod[0] == "prod" else (prod,)
        for f in items:
            tag = f[0]
            if tag == "const":
                fm, fe = _literal(f)
                m, e = m * fm, e + fe
            elif tag == "var":
                v = f[1]
                if v in _DEPS or re.fullmatch(r"u\d", v):
                    if v.startswith("u"):
                        dec = int(v[1:])
                        dep = dep or "u"
                    elif dep is None:
                        dep = v
                    else:
                        facs.append(LavaFactor(v, None, False))
                elif v == "u":
                    raise err("write u<k> (e.g. u0) for the epoch dependency")
                else:
                    facs.append(LavaFactor(v, None, False))
            elif tag == "sum":
                kind, val, const, s = _bracket(f, err)
                if kind == "const":
                    m, e = m * s * val[0], e + val[1]  # type: ignore[index]
                else:
                    if s < 0:
                        m, const = -m, (None if const is None else -const)
                    facs.append(LavaFactor(val, const, False))  # type: ignore[arg-type]
            elif tag == "sgn":
                kind, val, const, s = _bracket(f[1], err)
                if kind != "var" or val not in ("w", "d", "t") or s < 0:
                    raise err("sgn(..) applies to w, d or t (+ a constant) only")
                facs.append(LavaFactor(val, const, True))  # type: ignore[arg-type]
        while abs(m) > 7 and m % 2 == 0 and e < 8:
            m, e = m // 2, e + 1
        if dep is None:
            raise err("every product needs a dependency x0, y0 or u<k>")
        if not -8 <= m < 8 or not -7 <= e < 9:
            raise err(f"scaling {m}*2^{e} is not a Loihi constant (mantissa -8..7, exponent -7..8)")
        out.append(LavaProduct(dep, dec, m, e + 7, tuple(facs)))
    return tuple(out)
