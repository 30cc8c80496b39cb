//! The Mandelbrot set: a ufunc with a loop and `break` counts the iterations before a point
//! escapes, and broadcasting a column of imaginary parts (`[h, 1]`) against a row of real
//! parts (`[1, w]`) applies it to a whole 2-D grid in one call. Writes a PGM (P5) image and
//! prints an ASCII preview.
//!
//! Run with `cargo run --release --example mandelbrot [OUT.pgm]` (default
//! `mandelbrot.pgm` in the current directory).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use kiln::ndarray::{Array, Array2, Ix2};
use kiln::{Jit, JitModule, Scalar, ScalarType};

const SOURCE: &str = r#"
/// Iterations of z = z² + c, from z = 0, before |z| > 2; `max_iter` if it never escapes.
ufunc escape(c_re: f64, c_im: f64, max_iter: i64) -> i64 {
    var zr = 0.0;
    var zi = 0.0;
    var n = max_iter;
    for i in 0..max_iter {
        if zr * zr + zi * zi > 4.0 {
            n = i;
            break;
        }
        let t = zr * zr - zi * zi + c_re;
        zi = 2.0 * zr * zi + c_im;
        zr = t;
    }
    n
}
"#;

const MAX_ITER: i64 = 255;

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mandelbrot.pgm".into());
    match run(&path) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The point at the centre of pixel (row `i`, column `j`) of a `w` × `h` image of the
/// region -2.2..0.8 × -1.2i..1.2i.
fn point(i: usize, j: usize, w: usize, h: usize) -> (f64, f64) {
    let (re_lo, re_hi, im_lo, im_hi) = (-2.2, 0.8, -1.2, 1.2);
    (
        re_lo + (re_hi - re_lo) * (j as f64 + 0.5) / w as f64,
        im_hi - (im_hi - im_lo) * (i as f64 + 0.5) / h as f64,
    )
}

/// Escape counts of a `w` × `h` image, top row first.
fn render(m: &JitModule, w: usize, h: usize) -> Result<Array2<i64>, kiln::Error> {
    let re = Array::from_shape_fn((1, w), |(_, j)| point(0, j, w, h).0);
    let im = Array::from_shape_fn((h, 1), |(i, _)| point(i, 0, w, h).1);
    // A typed handle: (f64, f64, i64) -> i64, resolved once.
    let escape =
        m.ufunc("escape")?
            .typed::<i64>(&[ScalarType::F64, ScalarType::F64, ScalarType::I64])?;
    let counts = escape.call(&[(&re).into(), (&im).into(), MAX_ITER.into()])?;
    Ok(counts
        .into_dimensionality::<Ix2>()
        .expect("[h, 1] against [1, w] is 2-D"))
}

fn run(path: &str) -> Result<bool, kiln::Error> {
    let jit = Jit::new()?;
    let m = jit.compile("mandelbrot.kl", SOURCE)?;

    // Known points, with scalars: 0 never escapes, -2 stays on the circle |z| = 2 forever,
    // 2+2i is outside after one step.
    let escape_at = |re: f64, im: f64| -> Result<Scalar, kiln::Error> {
        Ok(m.call(
            "escape",
            &[Scalar::F64(re), Scalar::F64(im), Scalar::I64(MAX_ITER)],
        )?[0])
    };
    let mut ok = true;
    for (re, im, want) in [
        (0.0, 0.0, MAX_ITER),
        (-2.0, 0.0, MAX_ITER),
        (-1.0, 0.0, MAX_ITER),
        (2.0, 2.0, 1),
    ] {
        let got = escape_at(re, im)?;
        if got != Scalar::I64(want) {
            println!("escape({re}, {im}) = {got}, expected {want}");
            ok = false;
        }
    }

    // The image, [h, 1] against [1, w].
    let (w, h) = (900, 720);
    let counts = render(&m, w, h)?;
    assert_eq!(counts.shape(), [h, w]);
    let inside = counts.iter().filter(|&&n| n == MAX_ITER).count();
    let mut pgm = format!("P5\n{w} {h}\n255\n").into_bytes();
    // Black inside the set; outside, the faster a point escapes the brighter it is.
    pgm.extend(counts.iter().map(|&n| {
        let slow = n as f64 / MAX_ITER as f64;
        if n == MAX_ITER {
            0
        } else {
            (255.0 * (1.0 - slow.sqrt())) as u8
        }
    }));
    std::fs::write(path, &pgm).map_err(|error| kiln::Error::Io {
        path: path.into(),
        error,
    })?;
    println!("wrote {path} ({w}x{h}, {inside} pixels inside the set)");
    // The set's area is about 1.5066; the image covers 3.0 × 2.4 = 7.2.
    let area = 7.2 * inside as f64 / (w * h) as f64;
    if !(1.45..1.60).contains(&area) {
        println!("area {area:.3} is not close to 1.5066");
        ok = false;
    }

    // The ASCII preview: the same call on a coarser grid (`@` is inside the set), checked
    // pixel by pixel against scalar calls.
    let preview = render(&m, 60, 24)?;
    for ((i, j), &n) in preview.indexed_iter() {
        let (re, im) = point(i, j, 60, 24);
        if escape_at(re, im)? != Scalar::I64(n) {
            println!("pixel ({i}, {j}): the array call gave {n}");
            ok = false;
        }
    }
    for row in preview.rows() {
        let line: String = row
            .iter()
            .map(|&n| match n {
                MAX_ITER => '@',
                0..=2 => ' ',
                3..=4 => '.',
                5..=7 => ':',
                8..=12 => '-',
                13..=25 => '=',
                26..=60 => '+',
                _ => '*',
            })
            .collect();
        println!("{line}");
    }
    Ok(ok)
}
