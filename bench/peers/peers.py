#!/usr/bin/env python3
"""Peer systems for Kiln's benchmark: NumPy, NumExpr and Numba on Kiln's kernels.

Runs ONE system per process and prints one JSON object per line on stdout:

    {"kernel": K, "dtype": D, "n": N, "mode": M, "system": S, "median_s": s, "gbps": g}

Nothing else goes to stdout; diagnostics (versions, skipped pairs, sanity-check
warnings) go to stderr. See README.md next to this file for the exact formulas,
which must stay in step with the data and kernels on the Rust side.

    PY=$(bench/peers/setup.sh | tail -1)
    $PY bench/peers/peers.py --system numba-njit --sizes 1000,100000 --repeats 3 --threads 2
    $PY bench/peers/peers.py --system numba-njit --first-call
"""

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time

SYSTEMS = ("numpy", "numexpr", "numba-vectorize", "numba-njit")
KERNELS = ("saxpy", "poly4", "blackscholes", "transcend", "sumsq")
MODES = ("out", "alloc")
DEFAULT_SIZES = (1000, 100_000, 1_000_000, 10_000_000, 100_000_000)

# dtypes each kernel runs in, and bytes moved per element (as a multiple of the itemsize).
KERNEL_DTYPES = {
    "saxpy": ("f32", "f64"),
    "poly4": ("f64",),
    "blackscholes": ("f64",),
    "transcend": ("f64",),
    "sumsq": ("f64",),
}
KERNEL_WORDS = {"saxpy": 3, "poly4": 2, "blackscholes": 2, "transcend": 2, "sumsq": 1}
# Kernels with a scalar result have no output array: only mode `out` (skipped silently).
REDUCTIONS = ("sumsq",)

# Constants, exactly as on the Rust side.
SAXPY_A = 2.0
POLY_C0, POLY_C1, POLY_C2, POLY_C3, POLY_C4 = 1.0, 0.5, -0.25, 0.125, -0.0625
BS_K, BS_T, BS_R, BS_V = 100.0, 1.0, 0.02, 0.3
FRAC_1_SQRT_2 = 0.7071067811865476
# Scalar sub-expressions of Black-Scholes, computed in f64 the same way everywhere.
BS_SQRT_T = math.sqrt(BS_T)
BS_MU = (BS_R + 0.5 * BS_V * BS_V) * BS_T      # (r + 0.5*v*v)*t
BS_VS = BS_V * BS_SQRT_T                        # v*sqrt_t
BS_KD = BS_K * math.exp(-BS_R * BS_T)           # k*exp(-r*t)

np = None  # imported in main(), after the thread environment variables are set


def log(msg):
    print(f"peers.py: {msg}", file=sys.stderr, flush=True)


def np_dtype(d):
    return {"f32": np.float32, "f64": np.float64}[d]


# ---------------------------------------------------------------- data

def make_data(kernel, dtype, n):
    """Inputs of `kernel`, as a tuple of arrays: numpy.linspace(a, b, n, dtype=dt)."""
    dt = np_dtype(dtype)
    if kernel == "saxpy":
        return (np.linspace(0, 1, n, dtype=dt), np.linspace(1, 2, n, dtype=dt))
    if kernel == "poly4":
        return (np.linspace(-1, 1, n, dtype=dt),)
    if kernel == "blackscholes":
        return (np.linspace(50, 150, n, dtype=dt),)
    if kernel == "transcend":
        return (np.linspace(-3, 3, n, dtype=dt),)
    if kernel == "sumsq":
        return (np.linspace(-1, 1, n, dtype=dt),)
    raise ValueError(kernel)


def reference(kernel, data):
    """Plain NumPy float64 result (for the sanity check only; never timed)."""
    d = [a.astype(np.float64) for a in data]
    if kernel == "saxpy":
        x, y = d
        return SAXPY_A * x + y
    if kernel == "poly4":
        (x,) = d
        return (((POLY_C4 * x + POLY_C3) * x + POLY_C2) * x + POLY_C1) * x + POLY_C0
    if kernel == "blackscholes":
        from scipy.special import erfc
        (s,) = d
        sqrt_t = math.sqrt(BS_T)
        d1 = (np.log(s / BS_K) + (BS_R + 0.5 * BS_V * BS_V) * BS_T) / (BS_V * sqrt_t)
        d2 = d1 - BS_V * sqrt_t
        ncdf = lambda z: 0.5 * erfc(-z * FRAC_1_SQRT_2)
        return s * ncdf(d1) - BS_K * math.exp(-BS_R * BS_T) * ncdf(d2)
    if kernel == "transcend":
        (x,) = d
        return np.exp(-x * x) * np.sin(x) + np.log1p(np.abs(x))
    if kernel == "sumsq":
        (x,) = d
        return np.float64(np.sum(x * x))
    raise ValueError(kernel)


# ---------------------------------------------------------------- systems
#
# Each system's `prepare(kernel, dtype, mode, data)` returns a zero-argument callable
# that runs the kernel once (the timed unit) and returns its result, or None when the
# (kernel, mode) pair is not run by that system. Everything the call needs (output
# array, temporaries, compiled code) is created in prepare(), outside the timed region.


class NumpySystem:
    """Plain NumPy ufuncs, single-threaded.

    out: ufuncs with `out=` into the preallocated output, multi-step expressions
    through preallocated temporaries. alloc: the natural NumPy expression.
    """

    name = "numpy"

    def skip_reason(self, kernel):
        return None

    def prepare(self, kernel, dtype, mode, data):
        dt = np_dtype(dtype)
        n = data[0].shape[0]
        if kernel == "saxpy":
            x, y = data
            a = dt(SAXPY_A)
            if mode == "alloc":
                return lambda: a * x + y
            out = np.empty(n, dt)

            def saxpy_out():
                np.multiply(a, x, out=out)
                np.add(out, y, out=out)
                return out
            return saxpy_out
        if kernel == "poly4":
            (x,) = data
            if mode == "alloc":
                return lambda: (((POLY_C4 * x + POLY_C3) * x + POLY_C2) * x + POLY_C1) * x + POLY_C0
            out = np.empty(n, dt)

            def poly4_out():
                np.multiply(POLY_C4, x, out=out)
                np.add(out, POLY_C3, out=out)
                np.multiply(out, x, out=out)
                np.add(out, POLY_C2, out=out)
                np.multiply(out, x, out=out)
                np.add(out, POLY_C1, out=out)
                np.multiply(out, x, out=out)
                np.add(out, POLY_C0, out=out)
                return out
            return poly4_out
        if kernel == "blackscholes":
            from scipy.special import erfc
            (s,) = data
            if mode == "alloc":
                def bs_alloc():
                    d1 = (np.log(s / BS_K) + BS_MU) / BS_VS
                    d2 = d1 - BS_VS
                    return s * (0.5 * erfc(-d1 * FRAC_1_SQRT_2)) \
                        - BS_KD * (0.5 * erfc(-d2 * FRAC_1_SQRT_2))
                return bs_alloc
            out = np.empty(n, dt)
            t1 = np.empty(n, dt)
            t2 = np.empty(n, dt)

            def bs_out():
                np.divide(s, BS_K, out=t1)                  # s/k
                np.log(t1, out=t1)                          # log(s/k)
                np.add(t1, BS_MU, out=t1)                   # + (r + 0.5*v*v)*t
                np.divide(t1, BS_VS, out=t1)                # d1 = ... / (v*sqrt_t)
                np.subtract(t1, BS_VS, out=t2)              # d2 = d1 - v*sqrt_t
                np.multiply(t1, -FRAC_1_SQRT_2, out=t1)     # -d1 * FRAC_1_SQRT_2
                erfc(t1, out=t1)
                np.multiply(t1, 0.5, out=t1)                # ncdf(d1)
                np.multiply(t2, -FRAC_1_SQRT_2, out=t2)
                erfc(t2, out=t2)
                np.multiply(t2, 0.5, out=t2)                # ncdf(d2)
                np.multiply(s, t1, out=out)                 # s*ncdf(d1)
                np.multiply(t2, BS_KD, out=t2)              # k*exp(-r*t)*ncdf(d2)
                np.subtract(out, t2, out=out)
                return out
            return bs_out
        if kernel == "transcend":
            (x,) = data
            if mode == "alloc":
                return lambda: np.exp(-x * x) * np.sin(x) + np.log1p(np.abs(x))
            out = np.empty(n, dt)
            t1 = np.empty(n, dt)

            def transcend_out():
                np.negative(x, out=out)
                np.multiply(out, x, out=out)                # -x*x
                np.exp(out, out=out)
                np.sin(x, out=t1)
                np.multiply(out, t1, out=out)               # exp(-x*x)*sin(x)
                np.abs(x, out=t1)
                np.log1p(t1, out=t1)
                np.add(out, t1, out=out)
                return out
            return transcend_out
        if kernel == "sumsq":
            (x,) = data
            if mode == "alloc":
                return None
            # Not np.dot(x, x): that is BLAS, which may be multi-threaded (and is not
            # what a NumPy user's `sum(x*x)` costs). einsum with the default
            # optimize=False is NumPy's own single-threaded sum-of-products loop, with
            # no temporary for x*x.
            return lambda: np.einsum("i,i->", x, x)
        raise ValueError(kernel)


class NumexprSystem:
    """NumExpr's `evaluate`: multi-threaded, blocked, no temporaries."""

    name = "numexpr"

    def __init__(self, threads):
        import numexpr
        self.ne = numexpr
        if threads is not None:
            numexpr.set_num_threads(threads)
        log(f"numexpr {numexpr.__version__}, {numexpr.get_num_threads()} threads, "
            f"vml={getattr(numexpr, 'use_vml', False)}")

    def skip_reason(self, kernel):
        if kernel == "blackscholes":
            return "NumExpr has no erfc, so blackscholes cannot be written in it"
        return None

    def prepare(self, kernel, dtype, mode, data):
        ne = self.ne
        dt = np_dtype(dtype)
        n = data[0].shape[0]
        if kernel == "saxpy":
            x, y = data
            expr, env = "a*x + y", {"a": dt(SAXPY_A), "x": x, "y": y}
        elif kernel == "poly4":
            (x,) = data
            expr = "(((c4*x + c3)*x + c2)*x + c1)*x + c0"
            env = {"x": x, "c0": dt(POLY_C0), "c1": dt(POLY_C1), "c2": dt(POLY_C2),
                   "c3": dt(POLY_C3), "c4": dt(POLY_C4)}
        elif kernel == "transcend":
            (x,) = data
            expr, env = "exp(-x*x)*sin(x) + log1p(abs(x))", {"x": x}
        elif kernel == "sumsq":
            if mode == "alloc":
                return None
            (x,) = data
            # NumExpr reductions run single-threaded.
            return lambda: ne.evaluate("sum(x*x)", local_dict={"x": x})
        else:
            raise ValueError(kernel)
        if mode == "alloc":
            return lambda: ne.evaluate(expr, local_dict=env)
        out = np.empty(n, dt)
        return lambda: ne.evaluate(expr, local_dict=env, out=out)


def _numba_setup(threads):
    import numba
    if threads is not None:
        numba.set_num_threads(threads)
    return numba


def _numba_log(numba):
    try:
        layer = numba.threading_layer()  # raises until a parallel region has run
    except ValueError:
        layer = "not started"
    log(f"numba {numba.__version__}, {numba.get_num_threads()} threads, "
        f"threading layer {layer}")


def make_vectorize_kernel(kernel):
    """Numba @vectorize(target='parallel') ufunc of `kernel` (compiled eagerly)."""
    from numba import vectorize
    if kernel == "saxpy":
        @vectorize(["float32(float32, float32, float32)",
                    "float64(float64, float64, float64)"], target="parallel")
        def saxpy(a, x, y):
            return a * x + y
        return saxpy
    if kernel == "poly4":
        c0, c1, c2, c3, c4 = POLY_C0, POLY_C1, POLY_C2, POLY_C3, POLY_C4

        @vectorize(["float64(float64)"], target="parallel")
        def poly4(x):
            return (((c4 * x + c3) * x + c2) * x + c1) * x + c0
        return poly4
    if kernel == "blackscholes":
        k, t, r, v, frac = BS_K, BS_T, BS_R, BS_V, FRAC_1_SQRT_2

        @vectorize(["float64(float64)"], target="parallel")
        def blackscholes(s):
            sqrt_t = math.sqrt(t)
            d1 = (math.log(s / k) + (r + 0.5 * v * v) * t) / (v * sqrt_t)
            d2 = d1 - v * sqrt_t
            return s * (0.5 * math.erfc(-d1 * frac)) \
                - k * math.exp(-r * t) * (0.5 * math.erfc(-d2 * frac))
        return blackscholes
    if kernel == "transcend":
        @vectorize(["float64(float64)"], target="parallel")
        def transcend(x):
            return math.exp(-x * x) * math.sin(x) + math.log1p(abs(x))
        return transcend
    raise ValueError(kernel)


class NumbaVectorizeSystem:
    """Numba @vectorize(target='parallel') ufuncs, called like NumPy ufuncs."""

    name = "numba-vectorize"

    def __init__(self, threads):
        self.numba = _numba_setup(threads)
        self.ufuncs = {}

    def skip_reason(self, kernel):
        if kernel == "sumsq":
            return "a @vectorize ufunc is elementwise, not a reduction: sumsq is not run"
        return None

    def ufunc(self, kernel):
        if kernel not in self.ufuncs:
            t0 = time.perf_counter()
            self.ufuncs[kernel] = make_vectorize_kernel(kernel)
            log(f"compiled {kernel} in {time.perf_counter() - t0:.3f} s")
        return self.ufuncs[kernel]

    def prepare(self, kernel, dtype, mode, data):
        f = self.ufunc(kernel)
        dt = np_dtype(dtype)
        n = data[0].shape[0]
        args = data
        if kernel == "saxpy":
            args = (dt(SAXPY_A),) + tuple(data)
        if mode == "alloc":
            return lambda: f(*args)
        out = np.empty(n, dt)
        return lambda: f(*args, out=out)


def make_njit_kernels(kernel):
    """(out-mode, alloc-mode) @njit(parallel=True) functions of `kernel` (lazily compiled)."""
    from numba import njit, prange
    jit = njit(parallel=True, fastmath=False)
    if kernel == "saxpy":
        @jit
        def saxpy_out(a, x, y, out):
            for i in prange(x.shape[0]):
                out[i] = a * x[i] + y[i]

        @jit
        def saxpy_alloc(a, x, y):
            out = np.empty_like(x)
            for i in prange(x.shape[0]):
                out[i] = a * x[i] + y[i]
            return out
        return saxpy_out, saxpy_alloc
    if kernel == "poly4":
        c0, c1, c2, c3, c4 = POLY_C0, POLY_C1, POLY_C2, POLY_C3, POLY_C4

        @jit
        def poly4_out(x, out):
            for i in prange(x.shape[0]):
                xi = x[i]
                out[i] = (((c4 * xi + c3) * xi + c2) * xi + c1) * xi + c0

        @jit
        def poly4_alloc(x):
            out = np.empty_like(x)
            for i in prange(x.shape[0]):
                xi = x[i]
                out[i] = (((c4 * xi + c3) * xi + c2) * xi + c1) * xi + c0
            return out
        return poly4_out, poly4_alloc
    if kernel == "blackscholes":
        return make_njit_blackscholes()
    if kernel == "transcend":
        @jit
        def transcend_out(x, out):
            for i in prange(x.shape[0]):
                xi = x[i]
                out[i] = math.exp(-xi * xi) * math.sin(xi) + math.log1p(abs(xi))

        @jit
        def transcend_alloc(x):
            out = np.empty_like(x)
            for i in prange(x.shape[0]):
                xi = x[i]
                out[i] = math.exp(-xi * xi) * math.sin(xi) + math.log1p(abs(xi))
            return out
        return transcend_out, transcend_alloc
    if kernel == "sumsq":
        @jit
        def sumsq_out(x):
            acc = 0.0
            for i in prange(x.shape[0]):     # Numba turns this into a parallel reduction
                acc += x[i] * x[i]
            return acc
        return sumsq_out, None
    raise ValueError(kernel)


def make_njit_blackscholes():
    from numba import njit, prange
    jit = njit(parallel=True, fastmath=False)
    k, t, r, v, frac = BS_K, BS_T, BS_R, BS_V, FRAC_1_SQRT_2

    @jit
    def blackscholes_out(s, out):
        sqrt_t = math.sqrt(t)
        for i in prange(s.shape[0]):
            si = s[i]
            d1 = (math.log(si / k) + (r + 0.5 * v * v) * t) / (v * sqrt_t)
            d2 = d1 - v * sqrt_t
            out[i] = si * (0.5 * math.erfc(-d1 * frac)) \
                - k * math.exp(-r * t) * (0.5 * math.erfc(-d2 * frac))

    @jit
    def blackscholes_alloc(s):
        out = np.empty_like(s)
        sqrt_t = math.sqrt(t)
        for i in prange(s.shape[0]):
            si = s[i]
            d1 = (math.log(si / k) + (r + 0.5 * v * v) * t) / (v * sqrt_t)
            d2 = d1 - v * sqrt_t
            out[i] = si * (0.5 * math.erfc(-d1 * frac)) \
                - k * math.exp(-r * t) * (0.5 * math.erfc(-d2 * frac))
        return out
    return blackscholes_out, blackscholes_alloc


class NumbaNjitSystem:
    """Numba @njit(parallel=True, fastmath=False) loops over prange."""

    name = "numba-njit"

    def __init__(self, threads):
        self.numba = _numba_setup(threads)
        self.funcs = {}

    def skip_reason(self, kernel):
        return None

    def prepare(self, kernel, dtype, mode, data):
        if kernel not in self.funcs:
            self.funcs[kernel] = make_njit_kernels(kernel)
        f_out, f_alloc = self.funcs[kernel]
        dt = np_dtype(dtype)
        n = data[0].shape[0]
        if kernel == "sumsq":
            return (lambda: f_out(data[0])) if mode == "out" else None
        args = data
        if kernel == "saxpy":
            args = (dt(SAXPY_A),) + tuple(data)
        if mode == "alloc":
            return lambda: f_alloc(*args)
        out = np.empty(n, dt)

        def call_out():
            f_out(*args, out)
            return out
        return call_out


# ---------------------------------------------------------------- driver

def emit(kernel, dtype, n, mode, system, median_s, gbps):
    rec = {"kernel": kernel, "dtype": dtype, "n": n, "mode": mode, "system": system,
           "median_s": median_s, "gbps": gbps}
    sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()


def check(system, kernel, dtype, n, mode, result, ref):
    """Warns on stderr when `result` is off the float64 reference (normwise)."""
    tol = 1e-3 if dtype == "f32" else 1e-6
    if np.ndim(result) > 0 and np.asarray(result).dtype != np.dtype(np_dtype(dtype)):
        log(f"WARNING: {system} {kernel} {dtype} n={n} {mode}: result dtype "
            f"{np.asarray(result).dtype}, expected {np.dtype(np_dtype(dtype))}")
    res = np.asarray(result, dtype=np.float64)
    if res.shape != np.shape(ref):
        log(f"WARNING: {system} {kernel} {dtype} n={n} {mode}: shape {res.shape}, "
            f"expected {np.shape(ref)}")
        return
    scale = float(np.max(np.abs(ref))) if np.size(ref) else 0.0
    err = float(np.max(np.abs(res - ref))) if np.size(ref) else 0.0
    rel = err / scale if scale > 0 else err
    if not (rel < tol):  # also catches NaN
        log(f"WARNING: {system} {kernel} {dtype} n={n} {mode}: relative error {rel:.3e} "
            f"against the NumPy float64 reference exceeds {tol:g}")
    else:
        log(f"check {kernel} {dtype} n={n} {mode}: ok (relative error {rel:.2e})")


def run_benchmarks(sysobj, kernels, sizes, modes, repeats):
    for kernel in kernels:
        reason = sysobj.skip_reason(kernel)
        if reason is not None:
            log(f"skipping {kernel} for {sysobj.name}: {reason}")
            continue
        for dtype in KERNEL_DTYPES[kernel]:
            itemsize = np.dtype(np_dtype(dtype)).itemsize
            bytes_per_elem = KERNEL_WORDS[kernel] * itemsize
            for idx, n in enumerate(sizes):
                data = make_data(kernel, dtype, n)
                ref = reference(kernel, data) if idx == 0 else None
                for mode in modes:
                    fn = sysobj.prepare(kernel, dtype, mode, data)
                    if fn is None:
                        continue  # e.g. sumsq in mode alloc: no output array
                    result = fn()  # untimed warm-up (compiles, faults pages in)
                    if ref is not None:
                        check(sysobj.name, kernel, dtype, n, mode, result, ref)
                    del result
                    times = []
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        result = fn()
                        t1 = time.perf_counter()
                        del result
                        times.append(t1 - t0)
                    med = statistics.median(times)
                    emit(kernel, dtype, n, mode, sysobj.name, med,
                         bytes_per_elem * n / med / 1e9)
                    del fn
                    gc.collect()
                del data, ref
                gc.collect()


def first_call(system):
    """Time of the very first blackscholes call (n=1000), Numba compilation included.

    numba is imported and the data allocated before the timer starts; the jitted
    function is defined (and, for @vectorize with signatures, compiled) inside it.
    """
    import numba  # noqa: F401  (the import is not part of the first-call time)
    n = 1000
    (s,) = make_data("blackscholes", "f64", n)
    out = np.empty(n, np.float64)
    ref = reference("blackscholes", (s,))
    if system == "numba-njit":
        t0 = time.perf_counter()
        f_out, _ = make_njit_blackscholes()
        f_out(s, out)
        t1 = time.perf_counter()
    elif system == "numba-vectorize":
        t0 = time.perf_counter()
        f = make_vectorize_kernel("blackscholes")
        f(s, out=out)
        t1 = time.perf_counter()
    else:
        raise ValueError(system)
    check(system, "blackscholes", "f64", n, "first-call", out, ref)
    _numba_log(numba)
    emit("blackscholes", "f64", n, "first-call", system, t1 - t0, 0.0)


def comma_list(choices=None, conv=str):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("empty list")
        out = []
        for t in items:
            try:
                v = conv(t)
            except ValueError:
                raise argparse.ArgumentTypeError(f"bad value {t!r}")
            if choices is not None and v not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown {t!r} (choose from {', '.join(choices)})")
            out.append(v)
        return out
    return parse


def positive_int_conv(text):
    v = int(text)
    if v <= 0:
        raise ValueError(text)
    return v


def positive_int(text):
    v = int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return v


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Runs one peer system (NumPy, NumExpr, Numba) on Kiln's benchmark "
                    "kernels and prints one JSON object per line on stdout.")
    p.add_argument("--system", required=True, choices=SYSTEMS)
    p.add_argument("--kernels", type=comma_list(KERNELS), default=list(KERNELS),
                   help="comma list (default: %(default)s)")
    p.add_argument("--sizes", type=comma_list(conv=positive_int_conv),
                   default=list(DEFAULT_SIZES), help="comma list of n (default: %(default)s)")
    p.add_argument("--modes", type=comma_list(MODES), default=list(MODES),
                   help="comma list of out,alloc (default: both)")
    p.add_argument("--repeats", type=positive_int, default=7,
                   help="timed runs after one warm-up; the median is reported (default 7)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="numexpr/numba thread count (numpy is single-threaded)")
    p.add_argument("--first-call", action="store_true",
                   help="numba only: time the first blackscholes call (n=1000), "
                        "compilation included")
    args = p.parse_args(argv)
    if args.first_call and not args.system.startswith("numba"):
        p.error("--first-call is for numba-njit and numba-vectorize only")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads is not None:
        # Set before numexpr/numba are imported: they cap set_num_threads() at these.
        if args.system == "numexpr":
            cap = int(os.environ.get("NUMEXPR_MAX_THREADS") or 0)
            os.environ["NUMEXPR_MAX_THREADS"] = str(max(cap, args.threads))
        elif args.first_call:
            # Not numba.set_num_threads(): it starts the thread pool, which would take
            # that start-up out of the first-call time. The pool size is all we need.
            os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
        else:
            cap = int(os.environ.get("NUMBA_NUM_THREADS") or 0)
            if args.threads > max(cap, os.cpu_count() or 1):
                os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    global np
    import numpy
    np = numpy
    log(f"system {args.system}, numpy {np.__version__}, python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cpus")

    if args.first_call:
        first_call(args.system)
        return 0

    if args.system == "numpy":
        sysobj = NumpySystem()
    elif args.system == "numexpr":
        sysobj = NumexprSystem(args.threads)
    elif args.system == "numba-vectorize":
        sysobj = NumbaVectorizeSystem(args.threads)
        _numba_log(sysobj.numba)
    else:
        sysobj = NumbaNjitSystem(args.threads)
        _numba_log(sysobj.numba)
    run_benchmarks(sysobj, args.kernels, args.sizes, args.modes, args.repeats)
    if args.system.startswith("numba"):
        _numba_log(sysobj.numba)
    return 0


if __name__ == "__main__":
    sys.exit(main())
