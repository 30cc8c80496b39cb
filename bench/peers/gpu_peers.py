#!/usr/bin/env python3
"""GPU peers for `kiln-bench --gpu`: CuPy and Numba CUDA on Kiln's GPU kernels.

Runs ONE system per process and prints one JSON object per line on stdout, in the schema
of peers.py:

    {"kernel": K, "dtype": D, "n": N, "mode": "out", "system": S, "median_s": s, "gbps": g}

Kernels, inputs and constants are those of peers.py and bench/kernels.kl: saxpy (f32, f64),
blackscholes (f64, k t r v broadcast scalars, erfc from CUDA's libdevice), sumsq (f64,
sum(x*x) fused). Inputs are numpy.linspace(a, b, n, dtype) copied to the device once; each
timed call writes into a preallocated device output and ends with a device synchronisation,
as Kiln's calls do. Median of --repeats calls after one warm-up.

    python3 bench/peers/gpu_peers.py --system cupy --sizes 1000000,10000000 --repeats 5
"""

import argparse
import json
import math
import statistics
import sys
import time

SAXPY_A = 2.0
BS_K, BS_T, BS_R, BS_V = 100.0, 1.0, 0.02, 0.3
FRAC_1_SQRT_2 = 0.7071067811865476
CASES = (("saxpy", "f32"), ("saxpy", "f64"), ("blackscholes", "f64"), ("sumsq", "f64"))
WORDS = {"saxpy": 3, "blackscholes": 2, "sumsq": 1}
RANGES = {"saxpy": ((0, 1), (1, 2)), "blackscholes": ((50, 150),), "sumsq": ((-1, 1),)}


def log(msg):
    print(f"gpu_peers.py: {msg}", file=sys.stderr, flush=True)


def median_time(call, sync, repeats):
    call()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cupy_system(np):
    import cupy as cp

    log(f"cupy {cp.__version__} on {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
    saxpy = cp.ElementwiseKernel("T a, T x, T y", "T z", "z = a * x + y", "kiln_saxpy")
    bs = cp.ElementwiseKernel(
        "float64 s, float64 k, float64 t, float64 r, float64 v",
        "float64 c",
        """
        double sqrt_t = sqrt(t);
        double d1 = (log(s / k) + (r + 0.5 * v * v) * t) / (v * sqrt_t);
        double d2 = d1 - v * sqrt_t;
        c = s * (0.5 * erfc(-d1 * 0.7071067811865476))
            - k * exp(-r * t) * (0.5 * erfc(-d2 * 0.7071067811865476));
        """,
        "kiln_bs",
    )
    sumsq = cp.ReductionKernel("T x", "T y", "x * x", "a + b", "y = a", "0", "kiln_sumsq")

    def prepare(kernel, dtype, inputs):
        dt = np.float32 if dtype == "f32" else np.float64
        if kernel == "saxpy":
            x, y = inputs
            out = cp.empty_like(x)
            a = dt(SAXPY_A)
            return lambda: saxpy(a, x, y, out)
        if kernel == "blackscholes":
            (s,) = inputs
            out = cp.empty_like(s)
            return lambda: bs(s, BS_K, BS_T, BS_R, BS_V, out)
        (x,) = inputs
        return lambda: sumsq(x)

    return cp, prepare, cp.cuda.Device().synchronize


def numba_system(np):
    # NumPy 2.5 removed names Numba still imports; alias them first.
    for old, new in (("row_stack", "vstack"), ("trapz", "trapezoid"), ("in1d", "isin")):
        if not hasattr(np, old) and hasattr(np, new):
            setattr(np, old, getattr(np, new))
    from numba import cuda
    import numba

    try:
        device = cuda.get_current_device().name
    except AttributeError:  # the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) has no devices
        device = "the CUDA simulator"
    log(f"numba {numba.__version__} on {device}")

    @cuda.jit
    def saxpy(a, x, y, out):
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        while i < x.shape[0]:
            out[i] = a * x[i] + y[i]
            i += stride

    @cuda.jit
    def bs(s, k, t, r, v, out):
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        sqrt_t = math.sqrt(t)
        while i < s.shape[0]:
            d1 = (math.log(s[i] / k) + (r + 0.5 * v * v) * t) / (v * sqrt_t)
            d2 = d1 - v * sqrt_t
            out[i] = s[i] * (0.5 * math.erfc(-d1 * FRAC_1_SQRT_2)) - k * math.exp(-r * t) * (
                0.5 * math.erfc(-d2 * FRAC_1_SQRT_2)
            )
            i += stride

    @cuda.jit
    def sumsq_blocks(x, partial):
        shared = cuda.shared.array(256, numba.float64)
        t = cuda.threadIdx.x
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        acc = 0.0
        while i < x.shape[0]:
            acc += x[i] * x[i]
            i += stride
        shared[t] = acc
        cuda.syncthreads()
        s = 128
        while s > 0:
            if t < s:
                shared[t] += shared[t + s]
            cuda.syncthreads()
            s //= 2
        if t == 0:
            partial[cuda.blockIdx.x] = shared[0]

    def launch(n):
        blocks = min((n + 255) // 256, 65535)
        return blocks, 256

    def prepare(kernel, dtype, inputs):
        n = inputs[0].shape[0]
        blocks, threads = launch(n)
        if kernel == "saxpy":
            x, y = inputs
            out = cuda.device_array_like(x)
            a = x.dtype.type(SAXPY_A)
            return lambda: saxpy[blocks, threads](a, x, y, out)
        if kernel == "blackscholes":
            (s,) = inputs
            out = cuda.device_array_like(s)
            return lambda: bs[blocks, threads](s, BS_K, BS_T, BS_R, BS_V, out)
        (x,) = inputs
        blocks = min(blocks, 1024)
        partial = cuda.device_array(blocks, np.float64)

        def run():
            sumsq_blocks[blocks, threads](x, partial)
            return float(partial.copy_to_host().sum())

        return run

    return cuda, prepare, cuda.synchronize


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--system", required=True, choices=("cupy", "numba-cuda"))
    p.add_argument("--sizes", default="1000000,10000000")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    import numpy as np

    lib, prepare, sync = (cupy_system if args.system == "cupy" else numba_system)(np)
    to_device = (lambda a: lib.asarray(a)) if args.system == "cupy" else (lambda a: lib.to_device(a))
    for n in (int(s) for s in args.sizes.split(",")):
        for kernel, dtype in CASES:
            dt = np.float32 if dtype == "f32" else np.float64
            try:
                inputs = [to_device(np.linspace(a, b, n, dtype=dt)) for a, b in RANGES[kernel]]
                call = prepare(kernel, dtype, inputs)
                t = median_time(call, sync, args.repeats)
            except Exception as e:  # a peer that cannot run a case skips it, loudly
                log(f"{kernel} {dtype} n={n}: skipped ({type(e).__name__}: {e})")
                continue
            size = 4 if dtype == "f32" else 8
            rec = {
                "kernel": kernel,
                "dtype": dtype,
                "n": n,
                "mode": "out",
                "system": args.system,
                "median_s": t,
                "gbps": WORDS[kernel] * size * n / t / 1e9,
            }
            print(json.dumps(rec), flush=True)
            del inputs, call


if __name__ == "__main__":
    main()
