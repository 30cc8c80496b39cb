//! Custom reductions: any associative `reduce` item with an identity runs in parallel, over
//! a whole array, along an axis, or fused with a ufunc (`map_reduce`: sum of squares → L2
//! norm without a temporary array). Results are bit-identical for 1, 2 and 4 threads and
//! agree with plain Rust. Exits with status 1 if any check fails.
//!
//! Run with `cargo run --release --example custom_reduction`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use kiln::ndarray::{Array1, Array2, Axis};
use kiln::{Arg, Element, Jit, Scalar};

const SOURCE: &str = r#"
/// The largest magnitude (associative: max(|max(|a|, |b|)|, |c|) = max(|a|, |b|, |c|)).
reduce maxabs(a: f64, b: f64) -> f64 identity 0 { max(abs(a), abs(b)) }

/// Every bit set in any element.
reduce bitor(a: u64, b: u64) -> u64 identity 0 { a | b }

/// Sum of any numeric type.
reduce add<T: num>(a: T, b: T) -> T identity 0 { a + b }

ufunc square<T: float>(x: T) -> T { x * x }
"#;

/// What one thread count computes.
struct Results {
    maxabs: Scalar,
    bitor: Scalar,
    row_sums: Vec<Scalar>,
    col_sums: Vec<Scalar>,
    sum_sq: Scalar,
}

fn compute(
    threads: usize,
    x: &Array1<f64>,
    bits: &Array1<u64>,
    grid: &Array2<i64>,
) -> Result<Results, kiln::Error> {
    let m = Jit::with_threads(threads)?.compile("reductions.kl", SOURCE)?;
    let add = m.reduction("add")?;
    Ok(Results {
        maxabs: m.reduction("maxabs")?.reduce(x)?,
        bitor: m.reduction("bitor")?.reduce(bits)?,
        row_sums: add.reduce_axis(grid, 1)?.to_scalars(),
        col_sums: add.reduce_axis(grid, 0)?.to_scalars(),
        sum_sq: add.map_reduce(&m.ufunc("square")?, &[Arg::from(x)])?,
    })
}

/// Same values, bit for bit.
fn same(a: &Results, b: &Results) -> bool {
    let bits = |v: &[Scalar]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
    bits(&[a.maxabs, a.bitor, a.sum_sq]) == bits(&[b.maxabs, b.bitor, b.sum_sq])
        && bits(&a.row_sums) == bits(&b.row_sums)
        && bits(&a.col_sums) == bits(&b.col_sums)
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
    // Big enough to be split across threads (reductions fold fixed blocks of 65,536).
    let n = 3_000_000;
    let x = Array1::from_shape_fn(n, |i| ((i as f64) * 0.001).sin() * (1.0 + (i % 7) as f64));
    let bits = Array1::from_shape_fn(n, |i| 1u64 << ((i * 37) % 61));
    let grid = Array2::from_shape_fn((1000, 700), |(i, j)| (i as i64 * 31 - j as i64 * 17) % 1000);

    let one = compute(1, &x, &bits, &grid)?;
    let mut ok = true;
    for t in [2, 4] {
        let other = compute(t, &x, &bits, &grid)?;
        let agree = same(&one, &other);
        println!("{t} threads give the same bits as 1 thread: {agree}");
        ok &= agree;
    }

    // Plain Rust.
    let maxabs = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let bitor = bits.iter().fold(0, |a, b| a | b);
    let row_sums: Vec<Scalar> = grid
        .sum_axis(Axis(1))
        .iter()
        .map(|v| v.to_scalar())
        .collect();
    let col_sums: Vec<Scalar> = grid
        .sum_axis(Axis(0))
        .iter()
        .map(|v| v.to_scalar())
        .collect();
    let sum_sq: f64 = x.iter().map(|v| v * v).sum();
    let Scalar::F64(kiln_sum_sq) = one.sum_sq else {
        unreachable!("f64")
    };

    println!("max |x|      = {} (Rust: {maxabs})", one.maxabs);
    println!(
        "or of bits   = {:#x} (Rust: {bitor:#x})",
        one.bitor.to_bits()
    );
    println!(
        "L2 norm      = {} (Rust, serial sum: {})",
        kiln_sum_sq.sqrt(),
        sum_sq.sqrt()
    );
    let first = |v: &[Scalar]| v[..4].iter().map(|s| format!("{s}, ")).collect::<String>();
    println!(
        "row sums     = [{}…] ({} rows)",
        first(&one.row_sums),
        one.row_sums.len()
    );
    println!(
        "column sums  = [{}…] ({} columns)",
        first(&one.col_sums),
        one.col_sums.len()
    );
    let checks = [
        ("max-abs", one.maxabs == Scalar::F64(maxabs)),
        ("bit-or", one.bitor == Scalar::U64(bitor)),
        ("row sums", one.row_sums == row_sums),
        ("column sums", one.col_sums == col_sums),
        // A parallel sum adds in a different order than a serial one: close, not equal.
        (
            "sum of squares",
            (kiln_sum_sq - sum_sq).abs() <= 1e-12 * sum_sq,
        ),
    ];
    for (what, pass) in checks {
        if !pass {
            println!("{what}: does not match plain Rust");
            ok = false;
        }
    }
    Ok(ok)
}
