//! Embedding Kiln: compile a source string, call its kernels with scalars, and handle both
//! kinds of error. Run with `cargo run --example embed`.
#![allow(clippy::print_stdout)]

use kiln::Scalar;

const SOURCE: &str = r#"
/// Black-Scholes price of a European call.
ufunc bs_call(s: f64, k: f64, t: f64, r: f64, v: f64) -> f64 {
    let sqrt_t = sqrt(t);
    let d1 = (log(s / k) + (r + 0.5 * v * v) * t) / (v * sqrt_t);
    let d2 = d1 - v * sqrt_t;
    s * norm_cdf(d1) - k * exp(-r * t) * norm_cdf(d2)
}
fn norm_cdf(x: f64) -> f64 { 0.5 * erfc(-x * FRAC_1_SQRT_2) }

/// Integer mean; fails on an empty range.
fn mean(total: i64, count: i64) -> i64 { total / count }
"#;

fn main() -> Result<(), kiln::Error> {
    let compiled = kiln::compile("pricing.kl", SOURCE)?;
    for strike in [80.0, 100.0, 120.0] {
        let price = compiled.call(
            "bs_call",
            &[
                Scalar::F64(100.0),
                Scalar::F64(strike),
                Scalar::F64(1.0),
                Scalar::F64(0.02),
                Scalar::F64(0.3),
            ],
        )?;
        println!("call struck at {strike}: {}", price[0]);
    }
    println!(
        "optimised IR of bs_call:\n{}",
        kiln::ir::write_kernel(
            compiled
                .optimized
                .kernel(compiled.kernel("bs_call", &[]).expect("compiled"))
        )
    );

    // A runtime error is a value, with the kernel and source line.
    match compiled.call("mean", &[Scalar::I64(10), Scalar::I64(0)]) {
        Err(e) => println!("as expected: {e}"),
        Ok(v) => println!("unexpected: {v:?}"),
    }
    // So is a compile error, rendered with the source.
    if let Err(e) = kiln::compile("broken.kl", "fn f(x: f32) -> f64 { x * 2.0 }") {
        println!("as expected:\n{e}");
    }
    Ok(())
}
