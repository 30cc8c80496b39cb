//! `kiln-bench --gpu`: Kiln's GPU kernels on device arrays beside a device-to-device copy
//! (the practical bandwidth limit), CuPy and Numba CUDA on the same card in the same run,
//! and the latency from source to a launchable kernel.
//!
//! - **Throughput**: saxpy (f32, f64), blackscholes (f64) and sumsq (f64; `map sq` fused
//!   into `reduce add`) at n = 1e6, 1e7, 1e8, 2^28 (`--quick`: 1e6, 1e7), on device arrays
//!   made from the CPU benchmark's `linspace` inputs, writing into preallocated device
//!   outputs (`Gpu::map_into`, `Gpu::reduce`); every call ends with a synchronisation and
//!   the error word's read-back, as a user's call does. The median of `--repeats` calls
//!   after one warm-up. GB/s counts the bytes the kernel must move (as the CPU benchmark:
//!   3 words for saxpy, 2 for blackscholes, 1 for sumsq); `copy` is `cuMemcpyDtoD` of
//!   one array of the same dtype and n, counted as 2 words (read and write), and `%copy`
//!   is the kernel's GB/s over the copy's.
//! - **Correctness**: at the first size every kernel's result is compared with the plain
//!   Rust f64 reference (as the CPU benchmark does) before it is timed.
//! - **Latency** (needs no GPU for the first part): `ptx` is source → PTX (front end, LLVM
//!   IR, `-O3`, NVPTX) for saxpy<f32> and blackscholes, the median of 20; with a GPU, `cold`
//!   is source → the first call at n = 1000 returning, in a fresh process with Kiln's disk
//!   cache empty and the driver's cache off (`CUDA_CACHE_DISABLE=1`), and `cached` the same
//!   with both caches warm — the median of 5 processes each. Creating the CUDA context
//!   (a few hundred ms, once per process) is not included.
//! - **Peers**: `bench/peers/gpu_peers.py` (CuPy `ElementwiseKernel`/`ReductionKernel`,
//!   Numba `@cuda.jit`), with `python3` or `KILN_BENCH_PYTHON`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use kiln::{Jit, Scalar, ScalarType};
use kiln_runtime::gpu::{DeviceArg, DeviceArray, Gpu};

use crate::cases::{
    linspace, relative_error, tolerance, Kernel, Real, BS_K, BS_R, BS_T, BS_V, SAXPY_A,
};
use crate::measure::{blackscholes_source, median, KERNELS_SRC};
use crate::peers::parse_record;
use crate::report::{fmt_n, fmt_time, Record, Sink};

/// Sizes of a full run and of `--quick`.
pub const SIZES: [usize; 4] = [1_000_000, 10_000_000, 100_000_000, 1 << 28];
pub const QUICK_SIZES: [usize; 2] = [1_000_000, 10_000_000];
/// The GPU peers, in the order of the table's columns.
pub const PEERS: [&str; 2] = ["cupy", "numba-cuda"];

/// The kernels of the GPU run: (kernel, dtype).
const CASES: [(Kernel, ScalarType); 4] = [
    (Kernel::Saxpy, ScalarType::F32),
    (Kernel::Saxpy, ScalarType::F64),
    (Kernel::BlackScholes, ScalarType::F64),
    (Kernel::SumSq, ScalarType::F64),
];

fn err(what: &str) -> impl Fn(kiln_runtime::gpu::GpuError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Runs the GPU benchmark; returns the table. Without a GPU it measures what needs none
/// (source → PTX) and says why the rest was skipped.
pub fn run(
    sizes: &[usize],
    repeats: usize,
    peers: bool,
    sink: &mut Sink,
) -> Result<String, String> {
    let mut out = Vec::new();
    ptx_latency(sink)?;
    let gpu = match Gpu::new() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("kiln-bench --gpu: {e}: only the PTX latency is measured");
            out.push(format!(
                "GPU: none ({e}); throughput and driver latency not measured."
            ));
            return Ok(table(sink, &out));
        }
    };
    eprintln!(
        "kiln-bench --gpu: {} ({}), n = {}",
        gpu.name(),
        gpu.arch(),
        sizes
            .iter()
            .map(|&n| fmt_n(n))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.push(format!("GPU: {} ({})", gpu.name(), gpu.arch()));
    let jit = Jit::gpu().map_err(|e| e.to_string())?;
    let m = jit
        .compile("kernels.kl", KERNELS_SRC)
        .map_err(|e| e.to_string())?;
    let c = m.compiled();
    for (i, &n) in sizes.iter().enumerate() {
        for (kernel, dtype) in CASES {
            let words = kernel.words();
            let size = if dtype == ScalarType::F32 { 4 } else { 8 };
            let (t, check) = match dtype {
                ScalarType::F32 => measure::<f32>(&gpu, c, kernel, n, repeats)?,
                _ => measure::<f64>(&gpu, c, kernel, n, repeats)?,
            };
            if i == 0 {
                let tol = tolerance(dtype);
                if check.is_nan() || check >= tol {
                    return Err(format!(
                        "CORRECTNESS CHECK FAILED: {} {dtype} n={n}: relative error {check:e} (tolerance {tol:e})",
                        kernel.name()
                    ));
                }
                eprintln!(
                    "  check {} {dtype}: ok (relative error {check:.1e})",
                    kernel.name()
                );
            }
            eprintln!(
                "kiln {} {dtype} n={}: {}",
                kernel.name(),
                fmt_n(n),
                fmt_time(t)
            );
            sink.push(Record::new(
                kernel.name(),
                dtype.name(),
                n,
                "out",
                "kiln",
                t,
                words * size,
            ))?;
        }
        for dtype in [ScalarType::F32, ScalarType::F64] {
            let size = if dtype == ScalarType::F32 { 4 } else { 8 };
            let src = gpu.zeros(dtype, &[n]).map_err(err("copy source"))?;
            let mut dst = gpu.zeros(dtype, &[n]).map_err(err("copy destination"))?;
            gpu.copy(&src, &mut dst).map_err(err("copy"))?;
            let t = time(repeats, || gpu.copy(&src, &mut dst).map_err(err("copy")))?;
            sink.push(Record::new(
                "copy",
                dtype.name(),
                n,
                "out",
                "copy",
                t,
                2 * size,
            ))?;
        }
    }
    driver_latency(sink)?;
    if peers {
        run_peers(sizes, repeats, sink, &mut out);
    }
    Ok(table(sink, &out))
}

fn time(repeats: usize, mut call: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let mut v = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t0 = Instant::now();
        call()?;
        v.push(t0.elapsed().as_secs_f64());
    }
    Ok(median(v))
}

/// Times `kernel` at `n` on device arrays; returns the median and the relative error of
/// the result against the plain-Rust reference.
fn measure<T: Real + kiln::Element>(
    gpu: &Gpu,
    c: &kiln::Compiled,
    kernel: Kernel,
    n: usize,
    repeats: usize,
) -> Result<(f64, f64), String> {
    let dtype = T::DTYPE;
    let module = &c.optimized;
    let id = |name: &str, t: &[ScalarType]| {
        c.kernel(name, t)
            .ok_or_else(|| format!("kernels.kl has no {name}{t:?}"))
    };
    let inputs: Vec<ndarray::Array1<T>> = kernel
        .ranges()
        .iter()
        .map(|&(a, b)| linspace::<T>(a, b, n))
        .collect();
    let dev: Vec<DeviceArray> = inputs
        .iter()
        .map(|a| gpu.to_device(T::wrap_view(a.view().into_dyn())))
        .collect::<Result<_, _>>()
        .map_err(err("to_device"))?;
    let scalar = |v: f64| DeviceArg::Scalar(T::from_f64(v).to_scalar());
    let as_f64 = |a: &DeviceArray| -> Result<Vec<f64>, String> {
        let h = a.to_host().map_err(err("to_host"))?;
        Ok(h.to_scalars()
            .iter()
            .map(|s| match *s {
                Scalar::F32(v) => f64::from(v),
                Scalar::F64(v) => v,
                _ => f64::NAN,
            })
            .collect())
    };
    let reference = |k: Kernel| -> Vec<f64> {
        let f: Vec<Vec<f64>> = inputs
            .iter()
            .map(|a| a.iter().map(|v| v.to_f64()).collect())
            .collect();
        k.reference(&f)
    };
    match kernel {
        Kernel::SumSq => {
            let sq = id("sq", &[])?;
            let add = id("add", &[])?;
            let run = || {
                gpu.reduce(module, Some(sq), add, Scalar::F64(0.0), &[&dev[0]])
                    .map_err(err("sumsq"))
            };
            let v = run()?;
            let t = time(repeats, || run().map(|_| ()))?;
            let Scalar::F64(v) = v else {
                return Err("sumsq: not an f64".into());
            };
            Ok((t, relative_error(std::iter::once(v), &reference(kernel))))
        }
        _ => {
            let (k, args): (kiln::KernelId, Vec<DeviceArg>) = match kernel {
                Kernel::Saxpy => (
                    id("saxpy", &[dtype])?,
                    vec![
                        scalar(SAXPY_A),
                        DeviceArg::Array(&dev[0]),
                        DeviceArg::Array(&dev[1]),
                    ],
                ),
                _ => (
                    id(kernel.ufunc(), &[])?,
                    vec![
                        DeviceArg::Array(&dev[0]),
                        scalar(BS_K),
                        scalar(BS_T),
                        scalar(BS_R),
                        scalar(BS_V),
                    ],
                ),
            };
            let mut out = gpu.zeros(dtype, &[n]).map_err(err("output"))?;
            gpu.map_into(module, k, &args, &mut [&mut out])
                .map_err(err(kernel.name()))?;
            let check = relative_error(as_f64(&out)?.into_iter(), &reference(kernel));
            let t = time(repeats, || {
                gpu.map_into(module, k, &args, &mut [&mut out])
                    .map_err(err(kernel.name()))
            })?;
            Ok((t, check))
        }
    }
}

/// Source → PTX, no GPU needed: saxpy<f32> and blackscholes, median of 20 each.
fn ptx_latency(sink: &mut Sink) -> Result<(), String> {
    let saxpy = "ufunc saxpy<T: float>(a: T, x: T, y: T) -> T { a * x + y }";
    let bs = blackscholes_source()?;
    for (kernel, dtype, src, name, types) in [
        ("saxpy", "f32", saxpy, "saxpy", vec![ScalarType::F32]),
        ("blackscholes", "f64", bs, "blackscholes", vec![]),
    ] {
        let mut total = Vec::new();
        let mut front = Vec::new();
        for _ in 0..20 {
            let t0 = Instant::now();
            let c = kiln::compile("k.kl", src).map_err(|e| e.to_string())?;
            let t1 = Instant::now();
            let id = c.kernel(name, &types).ok_or("no kernel")?;
            kiln_nvptx::compile(
                &c.optimized,
                kiln_nvptx::Entry::Map {
                    kernel: id,
                    uniform: 0,
                },
                kiln_nvptx::Arch::NEWEST,
            )
            .map_err(|e| e.to_string())?;
            total.push(t0.elapsed().as_secs_f64());
            front.push((t1 - t0).as_secs_f64());
        }
        let (t, f) = (median(total), median(front));
        eprintln!(
            "kiln {kernel} source -> PTX: {} (front end {})",
            fmt_time(t),
            fmt_time(f)
        );
        sink.push(Record::new(kernel, dtype, 1000, "ptx", "kiln", t, 0))?;
    }
    Ok(())
}

/// The child process of the driver latency measurement (`--gpu-latency-child KERNEL`):
/// prints the seconds from source to the first call at n = 1000 returning.
pub fn latency_child(kernel: &str) -> Result<(), String> {
    let gpu = Gpu::new().map_err(|e| e.to_string())?;
    let jit = Jit::gpu().map_err(|e| e.to_string())?;
    let n = 1000;
    let x = gpu.zeros(ScalarType::F64, &[n]).map_err(err("input"))?;
    let mut out = gpu.zeros(ScalarType::F64, &[n]).map_err(err("output"))?;
    let t0 = Instant::now();
    let (src, name) = match kernel {
        "saxpy" => (
            "ufunc saxpy(a: f64, x: f64, y: f64) -> f64 { a * x + y }",
            "saxpy",
        ),
        _ => (blackscholes_source()?, "blackscholes"),
    };
    let m = jit.compile("k.kl", src).map_err(|e| e.to_string())?;
    let c = m.compiled();
    let id = c.kernel(name, &[]).ok_or("no kernel")?;
    let s = |v: f64| DeviceArg::Scalar(Scalar::F64(v));
    let args = match kernel {
        "saxpy" => vec![s(2.0), DeviceArg::Array(&x), DeviceArg::Array(&x)],
        _ => vec![DeviceArg::Array(&x), s(BS_K), s(BS_T), s(BS_R), s(BS_V)],
    };
    gpu.map_into(&c.optimized, id, &args, &mut [&mut out])
        .map_err(err("first call"))?;
    #[allow(clippy::print_stdout)]
    {
        println!("{}", t0.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Cold and cached latency, each the median of 5 fresh processes.
fn driver_latency(sink: &mut Sink) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let cache = std::env::temp_dir().join(format!("kiln-bench-cache-{}", std::process::id()));
    let child = |kernel: &str, dir: &PathBuf, cold: bool| -> Result<f64, String> {
        let mut cmd = Command::new(&exe);
        cmd.args(["--gpu-latency-child", kernel])
            .env("KILN_CACHE_DIR", dir);
        if cold {
            cmd.env("CUDA_CACHE_DISABLE", "1");
        } else {
            cmd.env_remove("CUDA_CACHE_DISABLE");
        }
        let o = cmd
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| e.to_string())?;
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("latency child for {kernel} failed ({})", o.status))
    };
    for kernel in ["saxpy", "blackscholes"] {
        let mut cold = Vec::new();
        for i in 0..5 {
            let dir = cache.join(format!("cold-{kernel}-{i}"));
            cold.push(child(kernel, &dir, true)?);
        }
        let warm_dir = cache.join(format!("warm-{kernel}"));
        child(kernel, &warm_dir, false)?; // fills both caches
        let cached = (0..5)
            .map(|_| child(kernel, &warm_dir, false))
            .collect::<Result<Vec<_>, _>>()?;
        let dtype = "f64";
        let (c, w) = (median(cold), median(cached));
        eprintln!(
            "kiln {kernel} source -> first call: cold {}, cached {}",
            fmt_time(c),
            fmt_time(w)
        );
        sink.push(Record::new(kernel, dtype, 1000, "cold", "kiln", c, 0))?;
        sink.push(Record::new(kernel, dtype, 1000, "cached", "kiln", w, 0))?;
    }
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

/// Runs `gpu_peers.py` for each GPU peer; a peer that fails is reported and skipped.
fn run_peers(sizes: &[usize], repeats: usize, sink: &mut Sink, notes: &mut Vec<String>) {
    let python = std::env::var("KILN_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/gpu_peers.py");
    let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
    for system in PEERS {
        eprintln!("peers: {system}");
        let child = Command::new(&python)
            .arg(&script)
            .args(["--system", system, "--sizes", &sizes.join(","), "--repeats"])
            .arg(repeats.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                notes.push(format!("{system}: cannot start {python}: {e}"));
                continue;
            }
        };
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match parse_record(&line) {
                    Ok(r) => {
                        eprintln!(
                            "{} {} {} n={}: {}",
                            r.system,
                            r.kernel,
                            r.dtype,
                            fmt_n(r.n),
                            fmt_time(r.median_s)
                        );
                        let _ = sink.push(r);
                    }
                    Err(e) => {
                        eprintln!("kiln-bench: ignoring a line from gpu_peers.py ({e}): {line}")
                    }
                }
            }
        }
        match child.wait() {
            Ok(s) if s.success() => {}
            Ok(s) => notes.push(format!("{system}: gpu_peers.py failed ({s})")),
            Err(e) => notes.push(format!("{system}: {e}")),
        }
    }
}

/// The table: per kernel, dtype and n, Kiln's median, GB/s and share of the copy's GB/s,
/// then each peer's median with `peer time / Kiln time`; then the latencies.
fn table(sink: &Sink, notes: &[String]) -> String {
    let recs = &sink.records;
    let find = |k: &str, d: &str, n: usize, mode: &str, sys: &str| sink.find(sys, k, d, n, mode);
    let mut s = String::new();
    s.push_str(&format!(
        "{:<13}{:<6}{:>6}{:>11}{:>8}{:>7}",
        "kernel", "dtype", "n", "kiln", "GB/s", "%copy"
    ));
    for p in PEERS {
        s.push_str(&format!("{p:>20}"));
    }
    s.push('\n');
    for r in recs
        .iter()
        .filter(|r| r.system == "kiln" && r.mode == "out")
    {
        let copy = find("copy", &r.dtype, r.n, "out", "copy");
        let pct = copy.map_or("-".into(), |c| format!("{:.0}%", 100.0 * r.gbps / c.gbps));
        s.push_str(&format!(
            "{:<13}{:<6}{:>6}{:>11}{:>8.0}{:>7}",
            r.kernel,
            r.dtype,
            fmt_n(r.n),
            fmt_time(r.median_s),
            r.gbps,
            pct
        ));
        for p in PEERS {
            let cell = find(&r.kernel, &r.dtype, r.n, "out", p).map_or("-".into(), |q| {
                format!("{} ({:.2})", fmt_time(q.median_s), q.median_s / r.median_s)
            });
            s.push_str(&format!("{cell:>20}"));
        }
        s.push('\n');
    }
    for r in recs.iter().filter(|r| r.system == "copy") {
        s.push_str(&format!(
            "{:<13}{:<6}{:>6}{:>11}{:>8.0}   (cuMemcpyDtoD, 2 words per element)\n",
            "copy",
            r.dtype,
            fmt_n(r.n),
            fmt_time(r.median_s),
            r.gbps
        ));
    }
    s.push('\n');
    for r in recs
        .iter()
        .filter(|r| matches!(r.mode.as_str(), "ptx" | "cold" | "cached"))
    {
        let what = match r.mode.as_str() {
            "ptx" => "source -> PTX (no driver)",
            "cold" => "source -> first call, caches cold",
            _ => "source -> first call, caches warm",
        };
        s.push_str(&format!(
            "latency {} {}: {} {}\n",
            r.kernel,
            r.dtype,
            what,
            fmt_time(r.median_s)
        ));
    }
    for n in notes {
        s.push_str(n);
        s.push('\n');
    }
    s
}
