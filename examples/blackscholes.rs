//! Black-Scholes over a million options: one ufunc with two outputs (call, put) from
//! `kernels/blackscholes.kl`, applied to five input arrays on every core, with put-call
//! parity checked on every element. Exits with status 1 if any element fails the check.
//!
//! Run with `cargo run --release --example blackscholes` (`KILN_NUM_THREADS=N` picks the
//! number of threads).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::Instant;

use kiln::ndarray::Array1;
use kiln::Jit;

const N: usize = 1_000_000;

/// A deterministic stream of numbers in [0, 1) (a 64-bit LCG; no `rand` needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// `n` values uniform in [lo, hi).
    fn array(&mut self, n: usize, lo: f64, hi: f64) -> Array1<f64> {
        Array1::from_shape_fn(n, |_| lo + (hi - lo) * self.next())
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool, kiln::Error> {
    let jit = Jit::new()?;
    let module = jit.compile(
        "blackscholes.kl",
        include_str!("../kernels/blackscholes.kl"),
    )?;
    let bs = module.ufunc("black_scholes")?;

    let mut rng = Lcg(42);
    let spot = rng.array(N, 10.0, 200.0);
    let strike = rng.array(N, 10.0, 200.0);
    let years = rng.array(N, 0.05, 5.0);
    let vol = rng.array(N, 0.05, 0.8);
    let rate = 0.03; // a scalar broadcasts to every element

    let args = [
        (&spot).into(),
        (&strike).into(),
        (&years).into(),
        rate.into(),
        (&vol).into(),
    ];
    // Outputs can be preallocated (`call` would return fresh arrays instead). The first
    // call compiles the kernel to native code; later calls reuse it.
    let mut call = Array1::<f64>::zeros(N);
    let mut put = Array1::<f64>::zeros(N);
    let start = Instant::now();
    bs.call_into(&args, &mut [(&mut call).into(), (&mut put).into()])?;
    let first = start.elapsed();
    let start = Instant::now();
    bs.call_into(&args, &mut [(&mut call).into(), (&mut put).into()])?;
    let second = start.elapsed();
    println!(
        "priced {N} options on {} threads: {:.1} ms (first call, with JIT), {:.1} ms (second)",
        jit.threads(),
        first.as_secs_f64() * 1e3,
        second.as_secs_f64() * 1e3
    );

    println!("     spot   strike  years   vol      call       put");
    for i in [0, 1, 2, N / 2, N - 1] {
        println!(
            "{:9.3} {:8.3} {:6.3} {:5.3} {:9.4} {:9.4}",
            spot[i], strike[i], years[i], vol[i], call[i], put[i]
        );
    }

    // Put-call parity: C - P = S - K e^(-rT), on every element. Prices are never negative
    // (beyond rounding: a deep out-of-the-money price is a difference of tiny terms).
    let mut failures = 0;
    let mut worst = 0.0f64;
    for i in 0..N {
        let (s, k, t) = (spot[i], strike[i], years[i]);
        let tol = 1e-12 * (s + k);
        let err = (call[i] - put[i] - (s - k * (-rate * t).exp())).abs();
        worst = worst.max(err);
        if !(err <= tol && call[i] >= -tol && put[i] >= -tol) {
            if failures < 5 {
                println!(
                    "check fails at {i}: S={s} K={k} T={t} C={:e} P={:e}",
                    call[i], put[i]
                );
            }
            failures += 1;
        }
    }
    println!("put-call parity: worst error {worst:.3e}, {failures} failures");
    Ok(failures == 0)
}
