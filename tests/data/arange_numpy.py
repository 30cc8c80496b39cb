#!/usr/bin/env python3
"""Writes arange_numpy.txt: NumPy's own `np.arange` values, as bits, for tests/arange.rs.

Run from anywhere with NumPy installed: `python3 tests/data/arange_numpy.py`. CI has no NumPy,
so the output is committed.

Each line is `DTYPE | ARGS | BITS`: DTYPE is f64 or f32; ARGS are the 1 to 3 arguments as Kiln
literals (for f32, the shortest decimal of the float32 value, so that Kiln's f32 literal is that
value exactly); BITS are the elements' bits in hex, space-separated. An f32 line is
`np.arange(start, stop, step, dtype=np.float32)` with the float32 arguments passed as the Python
floats they equal: the arguments of a Kiln `f32` arange are f32 values.
"""

import pathlib
import struct

import numpy as np

CASES = [
    (-1.0, 1.0, 0.3),
    (1.0, 0.0, -0.07),
    (0.0, 1.0, 0.1),
    (0.1, 0.9, 0.1),
    (0.0, 10.0, 0.7),
    (-0.0, 1.0, 0.25),
    (0.5, 100.0, 3.3),
    (0.001, 1.0, 0.01),
    (10.0, -10.0, -1.1),
    (1e15, 1e15 + 100.0, 7.5),
    (-3.0, 3.0, 1.0 / 3.0),
    (0.0, 3.0, 0.0123),
    (1e-10, 2e-09, 1.7e-11),
    (-1e10, 1e10, 3.7e8),
    (123.456, 789.012, 12.34),
    (-7.3, -2.1, 0.17),
    (0.0, 1.0, 2.0),
    (0.0, 1.0, 0.6),
    (1.0, 1.0, 0.1),
    (1.0, 0.0, 0.1),
    (2.5, 9.0),
    (2.0, 7.0),
    (5.0,),
    (0.3,),
]


def literal(x):
    """A Kiln float literal for x (repr, with a `.0` where repr has no point or exponent)."""
    s = repr(float(x))
    return s if any(c in s for c in ".e") else s + ".0"


def main():
    lines = []
    for case in CASES:
        for dtype in ("f64", "f32"):
            if dtype == "f64":
                args = [float(x) for x in case]
                out = np.arange(*args, dtype=np.float64)
                bits = [f"{struct.unpack('<Q', struct.pack('<d', v))[0]:016x}" for v in out.tolist()]
            else:
                args = [float(np.float32(x)) for x in case]
                out = np.arange(*args, dtype=np.float32)
                bits = [f"{v:08x}" for v in out.view(np.uint32).tolist()]
            shown = ", ".join(literal(a) for a in args)
            lines.append(f"{dtype} | {shown} | {' '.join(bits)}")
    path = pathlib.Path(__file__).with_name("arange_numpy.txt")
    path.write_text(f"# np.arange from NumPy {np.__version__}, written by arange_numpy.py\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
