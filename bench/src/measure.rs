//! Kiln's side of the benchmark: the kernels of `kernels.kl` over arrays, the per-call
//! overhead, the compile latency, and the STREAM-like triad in plain Rust.

use std::sync::Arc;
use std::time::Instant;

use kiln::{Arg, DynViewMut, Jit, JitModule, Scalar, ScalarType};
use ndarray::Array1;
use rayon::prelude::*;

use crate::cases::{linspace, relative_error, tolerance, Kernel, Mode, Real};
use crate::report::{fmt_n, fmt_time, Record, Sink};

/// The benchmark's kernels (`bench/kernels.kl`), compiled into the binary.
pub const KERNELS_SRC: &str = include_str!("../kernels.kl");
const KERNELS_FILE: &str = "bench/kernels.kl";

/// Adds what was being done to an error.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, String> {
        self.map_err(|e| format!("{}: {e}", what()))
    }
}

/// The median (the mean of the two middle values for an even count, like Python's
/// `statistics.median`).
pub fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "median of nothing");
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Times `repeats` calls of `call` one by one (its result is dropped after the clock
/// stops, as `peers.py` does) and returns the median in seconds.
pub fn time_median<R>(
    repeats: usize,
    mut call: impl FnMut() -> Result<R, String>,
) -> Result<f64, String> {
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t0 = Instant::now();
        let r = call()?;
        let dt = t0.elapsed().as_secs_f64();
        drop(r);
        times.push(dt);
    }
    Ok(median(times))
}

fn dtype_name(t: ScalarType) -> &'static str {
    t.name()
}

/// Fails loudly when `result` is off the plain-Rust f64 reference.
fn check(
    what: &str,
    dtype: ScalarType,
    result: impl Iterator<Item = f64>,
    reference: &[f64],
) -> Result<(), String> {
    let err = relative_error(result, reference);
    let tol = tolerance(dtype);
    if err < tol {
        eprintln!("  check {what}: ok (relative error {err:.1e} against the Rust f64 reference)");
        Ok(())
    } else {
        Err(format!(
            "CORRECTNESS CHECK FAILED: {what}: normwise relative error {err:e} against the \
             plain-Rust f64 reference is not below {tol:e}; Kiln computes a wrong result, so \
             its timings would mean nothing"
        ))
    }
}

/// The kernels compiled once, run on a fixed number of threads.
pub struct KilnBench {
    module: JitModule,
}

impl KilnBench {
    pub fn new(threads: usize) -> Result<KilnBench, String> {
        let jit = Jit::with_threads(threads).context(|| "cannot start the Kiln JIT".into())?;
        let module = jit
            .compile(KERNELS_FILE, KERNELS_SRC)
            .context(|| format!("{KERNELS_FILE} does not compile"))?;
        Ok(KilnBench { module })
    }

    /// Runs `kernel` in `dtype` at every size and mode; at the first size each mode's
    /// result is checked against the Rust reference before it is timed.
    pub fn run(
        &self,
        kernel: Kernel,
        dtype: ScalarType,
        sizes: &[usize],
        repeats: usize,
        sink: &mut Sink,
    ) -> Result<(), String> {
        match dtype {
            ScalarType::F32 => self.run_typed::<f32>(kernel, sizes, repeats, sink),
            ScalarType::F64 => self.run_typed::<f64>(kernel, sizes, repeats, sink),
            other => Err(format!("no benchmark in dtype {other}")),
        }
    }

    fn run_typed<T: Real>(
        &self,
        kernel: Kernel,
        sizes: &[usize],
        repeats: usize,
        sink: &mut Sink,
    ) -> Result<(), String> {
        let name = kernel.name();
        let dtype = T::DTYPE;
        let dt = dtype_name(dtype);
        let bytes = kernel.words() * std::mem::size_of::<T>();
        let ufunc = self
            .module
            .ufunc(kernel.ufunc())
            .context(|| name.to_string())?;
        // Ufuncs run through a typed handle (specialisation and native loop resolved once);
        // sumsq through the fused map-reduce, which has no typed form.
        let typed = match kernel {
            Kernel::SumSq => None,
            _ => Some(
                ufunc
                    .typed::<T>(&kernel.param_dtypes(dtype))
                    .context(|| format!("{name} {dt}"))?,
            ),
        };
        let add = self.module.reduction("add").context(|| "add".into())?;
        for (idx, &n) in sizes.iter().enumerate() {
            let inputs: Vec<Array1<T>> = kernel
                .ranges()
                .iter()
                .map(|&(a, b)| linspace::<T>(a, b, n))
                .collect();
            let reference = (idx == 0).then(|| {
                let wide: Vec<Vec<f64>> = inputs
                    .iter()
                    .map(|a| a.iter().map(|v| v.to_f64()).collect())
                    .collect();
                kernel.reference(&wide)
            });
            let args = kernel.args(&inputs);
            for &mode in kernel.modes() {
                let what = format!("kiln {name} {dt} n={} {}", fmt_n(n), mode.name());
                let call_err = |e: kiln::Error| format!("{what}: {e}");
                let median_s = match (&typed, mode) {
                    (None, _) => {
                        let first = add.map_reduce(&ufunc, &args).map_err(call_err)?;
                        if let Some(r) = &reference {
                            let v = match first {
                                Scalar::F64(v) => v,
                                other => return Err(format!("{what}: got {other:?}, not an f64")),
                            };
                            check(&what, dtype, std::iter::once(v), r)?;
                        }
                        time_median(repeats, || add.map_reduce(&ufunc, &args).map_err(call_err))?
                    }
                    (Some(f), Mode::Out) => {
                        let mut out = crate::cases::linspace::<T>(0.0, 0.0, n);
                        f.call_into(&args, out.view_mut().into_dyn())
                            .map_err(call_err)?;
                        if let Some(r) = &reference {
                            check(&what, dtype, out.iter().map(|v| v.to_f64()), r)?;
                        }
                        time_median(repeats, || {
                            f.call_into(&args, out.view_mut().into_dyn())
                                .map_err(call_err)
                        })?
                    }
                    (Some(f), Mode::Alloc) => {
                        let first = f.call(&args).map_err(call_err)?;
                        if let Some(r) = &reference {
                            check(&what, dtype, first.iter().map(|v| v.to_f64()), r)?;
                        }
                        drop(first);
                        time_median(repeats, || f.call(&args).map_err(call_err))?
                    }
                };
                let rec = Record::new(name, dt, n, mode.name(), "kiln", median_s, bytes);
                eprintln!("{what}: {} ({:.2} GB/s)", fmt_time(median_s), rec.gbps);
                sink.push(rec)?;
            }
        }
        Ok(())
    }

    /// The median time of one saxpy f64 call into a preallocated output at `n`, through
    /// the typed handle and through the dtype-dynamic `Ufunc::call_into`.
    pub fn overhead(&self, n: usize, calls: usize) -> Result<(f64, f64), String> {
        let ufunc = self.module.ufunc("saxpy").context(|| "saxpy".into())?;
        let typed = ufunc
            .typed::<f64>(&[ScalarType::F64; 3])
            .context(|| "saxpy f64".into())?;
        let x = linspace::<f64>(0.0, 1.0, n);
        let y = linspace::<f64>(1.0, 2.0, n);
        let mut out = crate::cases::zeros(n);
        let args = [
            Arg::from(crate::cases::SAXPY_A),
            Arg::from(&x),
            Arg::from(&y),
        ];
        let err = |e: kiln::Error| format!("saxpy f64 n={n}: {e}");
        let warm = calls / 10 + 1;
        let mut typed_call = || {
            typed
                .call_into(&args, out.view_mut().into_dyn())
                .map_err(err)
        };
        time_median(warm, &mut typed_call)?;
        let t_typed = time_median(calls, &mut typed_call)?;
        let mut dyn_call = || {
            ufunc
                .call_into(&args, &mut [DynViewMut::from(&mut out)])
                .map_err(err)
        };
        time_median(warm, &mut dyn_call)?;
        let t_dyn = time_median(calls, &mut dyn_call)?;
        Ok((t_typed, t_dyn))
    }
}

/// Compile latency of the blackscholes module (the `BEGIN/END blackscholes` section of
/// `kernels.kl`), medians over `iters` fresh compiles.
pub struct Latency {
    /// Creating the back end (host ISA detection) and the `Jit`: not in the others.
    pub backend_s: f64,
    /// `Jit::compile`: parse, check, lower to IR, optimise.
    pub compile_s: f64,
    /// `Jit::compile` plus the first call at n = 1000 (Cranelift compiles the loop).
    pub first_call_s: f64,
}

/// The self-contained blackscholes section of `kernels.kl`.
pub fn blackscholes_source() -> Result<&'static str, String> {
    let begin = "// BEGIN blackscholes\n";
    let end = "// END blackscholes";
    let start = KERNELS_SRC
        .find(begin)
        .ok_or_else(|| format!("{KERNELS_FILE} has no `{}` line", begin.trim_end()))?;
    let stop = KERNELS_SRC[start..]
        .find(end)
        .ok_or_else(|| format!("{KERNELS_FILE} has no `{end}` line"))?;
    Ok(&KERNELS_SRC[start + begin.len()..start + stop])
}

/// Measures [`Latency`]: each iteration makes a fresh back end (so no compiled code is
/// cached), a fresh `Jit` on a shared thread pool, compiles the blackscholes module and
/// calls it once at n = 1000 into a preallocated output, as Numba's `--first-call` does.
pub fn compile_latency(threads: usize, iters: usize) -> Result<Latency, String> {
    let src = blackscholes_source()?;
    let pool = kiln_runtime::Threads::new(threads)?;
    let n = 1000;
    let s = linspace::<f64>(50.0, 150.0, n);
    let reference = Kernel::BlackScholes.reference(&[s.to_vec()]);
    let args = Kernel::BlackScholes.args(std::slice::from_ref(&s));
    let mut out = crate::cases::zeros(n);
    let (mut backend, mut compile, mut first) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..iters {
        let t0 = Instant::now();
        let cpu = kiln::Cpu::new().context(|| "cannot create the CPU back end".into())?;
        let jit = Jit::with_executor(Arc::new(cpu), pool.clone())
            .context(|| "cannot create the JIT".into())?;
        let t1 = Instant::now();
        let module = jit
            .compile("blackscholes.kl", src)
            .context(|| "the blackscholes section of kernels.kl".into())?;
        let t2 = Instant::now();
        module
            .ufunc("blackscholes")
            .and_then(|f| f.call_into(&args, &mut [DynViewMut::from(&mut out)]))
            .context(|| "first blackscholes call".into())?;
        let t3 = Instant::now();
        backend.push((t1 - t0).as_secs_f64());
        compile.push((t2 - t1).as_secs_f64());
        first.push((t3 - t1).as_secs_f64());
        if i == 0 {
            check(
                "kiln blackscholes f64 n=1e3 first-call",
                ScalarType::F64,
                out.iter().copied(),
                &reference,
            )?;
        }
    }
    Ok(Latency {
        backend_s: median(backend),
        compile_s: median(compile),
        first_call_s: median(first),
    })
}

/// The STREAM triad `a[i] = b[i] + s * c[i]` over f64 in plain Rust, parallel over chunks
/// on a rayon pool of `threads` threads (4 chunks per thread, as Kiln's runtime cuts
/// its work). Returns the median time of `repeats` runs after one warm-up.
pub fn triad(n: usize, threads: usize, repeats: usize) -> Result<f64, String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context(|| format!("cannot start {threads} threads"))?;
    let chunk = n.div_ceil(threads * 4).max(1);
    let s = std::hint::black_box(3.0);
    let filled = |v: f64| {
        let mut x = kiln::vec_with_huge_pages(n);
        x.resize(n, v);
        x
    };
    let (b, c, mut a) = (filled(1.5), filled(2.5), filled(0.0));
    let mut run = || -> Result<(), String> {
        pool.install(|| {
            a.par_chunks_mut(chunk)
                .zip(b.par_chunks(chunk))
                .zip(c.par_chunks(chunk))
                .for_each(|((a, b), c)| {
                    for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
                        *a = b + s * c;
                    }
                });
        });
        Ok(())
    };
    run()?;
    let t = time_median(repeats, &mut run)?;
    let expect = 1.5 + s * 2.5;
    if a.iter().any(|&v| v != expect) {
        return Err(format!(
            "CORRECTNESS CHECK FAILED: the triad did not compute {expect}"
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn blackscholes_section_is_self_contained() {
        let src = blackscholes_source().expect("markers");
        assert!(src.contains("ufunc blackscholes"));
        assert!(!src.contains("saxpy"));
        kiln::compile("blackscholes.kl", src).expect("compiles alone");
    }

    #[test]
    fn every_kernel_matches_its_reference_at_a_small_size() {
        let bench = KilnBench::new(2).expect("compiles");
        let mut sink = Sink::new(None).expect("sink");
        for k in crate::cases::KERNELS {
            for &dt in k.dtypes() {
                bench.run(k, dt, &[1000], 1, &mut sink).expect("correct");
            }
        }
        // saxpy has two dtypes; sumsq only `out`.
        assert_eq!(sink.records.len(), 2 * 2 + 2 + 2 + 2 + 1);
    }

    #[test]
    fn triad_runs() {
        assert!(triad(1000, 2, 3).expect("triad") > 0.0);
    }
}
