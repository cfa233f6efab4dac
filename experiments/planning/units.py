"""How the report writes quantities: seconds, bytes, ratios, percentages."""

from __future__ import annotations


def seconds(x: float | None) -> str:
    """``0 s``, ``377 us``, ``25.6 ms``, ``1.36 s``, ``1,380 s``; ``-`` for none."""
    if x is None:
        return "-"
    if x == 0:
        return "0 s"
    if x >= 100:
        return f"{x:,.0f} s"
    if x >= 1:
        return f"{x:.3g} s"
    if x >= 1e-3:
        return f"{1e3 * x:.3g} ms"
    return f"{1e6 * x:.3g} us"


def gib(n: float) -> str:
    """Bytes in GiB with two decimals."""
    return f"{n / (1 << 30):,.2f} GiB"


def pct(x: float) -> str:
    """A fraction as a percentage with one decimal."""
    return f"{100 * x:.1f} %"


def times(x: float) -> str:
    """A ratio as ``0.49x``, or ``1.3e-06x`` when it is tiny."""
    return f"{x:.2f}x" if x >= 0.01 else f"{x:.2g}x"


def slower(a: float, b: float) -> str:
    """How much slower ``a`` is than ``b``: ``4.0 % slower`` or, past twice, ``1,011x slower``."""
    if b <= 0:
        return "slower"
    r = a / b
    return f"{100 * (r - 1):.1f} % slower" if r < 2 else f"{r:,.1f}x slower"


def tokens(n: float) -> str:
    """A token count, rounded, with thousands separators."""
    return f"{int(round(n)):,}"
