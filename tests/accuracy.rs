//! Accuracy of Kiln's math library (`kernels/math/`), measured against MPFR.
//!
//! Every transcendental builtin, in `f32` and `f64`, runs through the JIT's array path (the
//! SIMD loops) on 2^20 points spread over its whole domain — uniform over the main range,
//! log-uniform over every magnitude from subnormal to huge, both signs where they apply —
//! plus the special values. The reference is MPFR (`libmpfr.so.6`, loaded at run time:
//! `apt-get install libmpfr6`) at 64 bits (correctly rounded: the reference is within 2^-11 ulp of the exact value). The test fails when a
//! function's maximum error passes its bound (the table in `docs/math.md`), or when a
//! special value (NaN, ±inf, the sign of a zero) differs from the correctly rounded one.
//!
//! `KILN_ACCURACY_POINTS=N` changes the number of points; `KILN_ACCURACY_REPORT=1` prints
//! the table. Without MPFR the test says so and fails when `KILN_REQUIRE_MPFR=1` (as in CI).
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Calling MPFR through dlopen is unsafe by nature; the test is the only unsafe code here.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_long, c_void};

use kiln::{Arg, DynArray, Jit, ScalarType};
use rayon::prelude::*;

/// MPFR's `mpfr_t`.
#[repr(C)]
struct Mpfr {
    prec: c_long,
    sign: c_int,
    exp: c_long,
    d: *mut c_void,
}

type Unary = unsafe extern "C" fn(*mut Mpfr, *const Mpfr, c_int) -> c_int;
type Binary = unsafe extern "C" fn(*mut Mpfr, *const Mpfr, *const Mpfr, c_int) -> c_int;

/// The MPFR entry points the test uses, looked up with `dlsym`.
struct Lib {
    init2: unsafe extern "C" fn(*mut Mpfr, c_long),
    clear: unsafe extern "C" fn(*mut Mpfr),
    set_d: unsafe extern "C" fn(*mut Mpfr, f64, c_int) -> c_int,
    get_d: unsafe extern "C" fn(*const Mpfr, c_int) -> f64,
    get_exp: unsafe extern "C" fn(*const Mpfr) -> c_long,
    sub_d: unsafe extern "C" fn(*mut Mpfr, *const Mpfr, f64, c_int) -> c_int,
    unary: Vec<(&'static str, Unary)>,
    binary: Vec<(&'static str, Binary)>,
}

const RNDN: c_int = 0;
const PREC: c_long = 64;

fn load() -> Result<Lib, String> {
    // SAFETY: dlopen/dlsym with NUL-terminated names; every symbol is cast to the
    // signature MPFR documents for it.
    unsafe {
        let h = libc::dlopen(c"libmpfr.so.6".as_ptr(), libc::RTLD_NOW);
        if h.is_null() {
            return Err("libmpfr.so.6 not found (apt-get install libmpfr6)".into());
        }
        let sym = |name: &str| -> Result<*mut c_void, String> {
            let c = std::ffi::CString::new(format!("mpfr_{name}")).expect("no NUL");
            let p = libc::dlsym(h, c.as_ptr());
            if p.is_null() {
                Err(format!("mpfr_{name} missing"))
            } else {
                Ok(p)
            }
        };
        let mut unary = Vec::new();
        for name in UNARY {
            unary.push((*name, std::mem::transmute::<*mut c_void, Unary>(sym(name)?)));
        }
        let mut binary = Vec::new();
        for name in BINARY {
            binary.push((
                *name,
                std::mem::transmute::<*mut c_void, Binary>(sym(name)?),
            ));
        }
        Ok(Lib {
            init2: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut Mpfr, c_long)>(
                sym("init2")?,
            ),
            clear: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut Mpfr)>(sym(
                "clear",
            )?),
            set_d: std::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(*mut Mpfr, f64, c_int) -> c_int,
            >(sym("set_d")?),
            get_d: std::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(*const Mpfr, c_int) -> f64,
            >(sym("get_d")?),
            get_exp: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*const Mpfr) -> c_long>(
                sym("get_exp")?,
            ),
            sub_d: std::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(*mut Mpfr, *const Mpfr, f64, c_int) -> c_int,
            >(sym("sub_d")?),
            unary,
            binary,
        })
    }
}

const UNARY: &[&str] = &[
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "asin", "acos",
    "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "cbrt", "erf", "erfc",
];
const BINARY: &[&str] = &["pow", "atan2", "hypot"];

/// Three MPFR numbers for one thread.
struct Scratch<'l> {
    lib: &'l Lib,
    v: Box<[Mpfr; 3]>,
}

impl<'l> Scratch<'l> {
    fn new(lib: &'l Lib) -> Self {
        let mut v: Box<[Mpfr; 3]> = Box::new(std::array::from_fn(|_| Mpfr {
            prec: 0,
            sign: 0,
            exp: 0,
            d: std::ptr::null_mut(),
        }));
        for m in v.iter_mut() {
            // SAFETY: initialises a fresh mpfr_t.
            unsafe { (lib.init2)(m, PREC) };
        }
        Scratch { lib, v }
    }

    /// The error of `got` in ulps of the format with `mant` significand bits and minimum
    /// exponent `emin` (both as C's `DBL_MANT_DIG`, `DBL_MIN_EXP`), or `None` when a
    /// special result (NaN, ±inf, a signed zero) is wrong.
    fn error(&mut self, f: Fn2, x: f64, y: f64, got: f64, mant: i64, emin: i64) -> Option<f64> {
        let lib = self.lib;
        let [r, a, b] = &mut *self.v;
        // SAFETY: all three are initialised; MPFR allows aliasing outputs and inputs.
        unsafe {
            (lib.set_d)(a, x, RNDN);
            (lib.set_d)(b, y, RNDN);
            match f {
                Fn2::Unary(g) => g(r, a, RNDN),
                Fn2::Binary(g) => g(r, a, b, RNDN),
            };
            let want = (lib.get_d)(r, RNDN);
            let want = if mant == 24 { want as f32 as f64 } else { want };
            if want.is_nan() || got.is_nan() {
                return (want.is_nan() && got.is_nan()).then_some(0.0);
            }
            let max = if mant == 24 {
                f32::MAX as f64
            } else {
                f64::MAX
            };
            if want.is_infinite() || got.is_infinite() || want.abs() > max {
                // Overflow: the rounded result must be the same infinity (or the largest
                // finite number, within one ulp, when the exact value is just below it).
                return (got == want).then_some(0.0);
            }
            if want == 0.0 && got == 0.0 {
                return (want.is_sign_negative() == got.is_sign_negative()).then_some(0.0);
            }
            // `c_long` is `i64` here but not on every target.
            #[allow(clippy::useless_conversion)]
            let e = if want == 0.0 && r.exp < -100000 {
                emin // an exact zero: measure in the smallest ulp
            } else {
                i64::from((lib.get_exp)(r))
            };
            let ulp_exp = (e.max(emin) - mant) as i32;
            (lib.sub_d)(r, r, got, RNDN);
            let diff = (lib.get_d)(r, RNDN).abs();
            // diff / 2^ulp_exp in two steps: 2^-ulp_exp alone may overflow.
            let half = -ulp_exp / 2;
            Some(diff * 2f64.powi(half) * 2f64.powi(-ulp_exp - half))
        }
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        for m in self.v.iter_mut() {
            // SAFETY: initialised in `new`, cleared once.
            unsafe { (self.lib.clear)(m) };
        }
    }
}

#[derive(Clone, Copy)]
enum Fn2 {
    Unary(Unary),
    Binary(Binary),
}

/// A part of a function's domain.
#[derive(Clone, Copy)]
enum Range {
    /// Uniform in `[lo, hi]`.
    Lin(f64, f64),
    /// `±2^u` with `u` uniform in `[lo, hi]` (both signs when `signed`).
    Log(f64, f64, bool),
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn sample(ranges: &[Range], n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    let mut out = Vec::with_capacity(n + 16);
    for i in 0..n {
        let u = (splitmix(&mut s) >> 11) as f64 / (1u64 << 53) as f64;
        out.push(match ranges[i % ranges.len()] {
            Range::Lin(lo, hi) => lo + (hi - lo) * u,
            Range::Log(lo, hi, signed) => {
                let v = (lo + (hi - lo) * u).exp2();
                if signed && splitmix(&mut s) & 1 == 1 {
                    -v
                } else {
                    v
                }
            }
        });
    }
    out.extend([
        0.0,
        -0.0,
        f64::INFINITY,
        -f64::INFINITY,
        f64::NAN,
        1.0,
        -1.0,
        0.5,
        -0.5,
        2.0,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        5e-324,
        -5e-324,
        f64::MAX,
        -f64::MAX,
    ]);
    out
}

/// Each function's test domain (as f64; f32 runs use the same points, rounded).
fn domain(name: &str) -> Vec<Range> {
    use Range::*;
    let everything = Log(-1074.0, 1024.0, true);
    match name {
        "exp" => vec![Lin(-745.2, 709.8), Lin(-20.0, 20.0), Log(-60.0, 9.6, true)],
        "exp2" => vec![
            Lin(-1075.0, 1024.0),
            Lin(-20.0, 20.0),
            Log(-60.0, 10.0, true),
        ],
        "expm1" => vec![Lin(-40.0, 709.8), Lin(-1.0, 1.0), Log(-1074.0, 9.6, true)],
        "log" | "log2" | "log10" => vec![Log(-1074.0, 1024.0, false), Lin(0.5, 2.0)],
        "log1p" => vec![
            Lin(-1.0, 1.0),
            Log(-1074.0, 1024.0, false),
            Log(-1074.0, -1.0, true),
        ],
        "sin" | "cos" | "tan" => vec![Lin(-10.0, 10.0), Log(-1074.0, 1024.0, true), Lin(-1e6, 1e6)],
        "asin" | "acos" => vec![Lin(-1.0, 1.0), Log(-1074.0, 0.0, true)],
        "atan" | "asinh" | "cbrt" => vec![everything, Lin(-4.0, 4.0)],
        "sinh" | "cosh" => vec![Lin(-710.5, 710.5), Lin(-3.0, 3.0), Log(-1074.0, 9.5, true)],
        "tanh" => vec![Lin(-20.0, 20.0), Log(-1074.0, 5.0, true)],
        "acosh" => vec![Lin(1.0, 3.0), Log(0.0, 1024.0, false)],
        "atanh" => vec![Lin(-1.0, 1.0), Log(-1074.0, 0.0, true)],
        "erf" => vec![Lin(-6.0, 6.0), Log(-1074.0, 2.6, true)],
        "erfc" => vec![Lin(-6.0, 27.3), Lin(-1.0, 3.0), Log(-1074.0, 4.8, true)],
        // Binary functions: the first argument's domain; the second is drawn by `second`.
        "pow" => vec![Log(-40.0, 40.0, false), Lin(0.0, 4.0)],
        "atan2" | "hypot" => vec![everything, Lin(-4.0, 4.0)],
        _ => unreachable!("no domain for {name}"),
    }
}

fn second(name: &str) -> Vec<Range> {
    use Range::*;
    match name {
        "pow" => vec![Lin(-30.0, 30.0), Lin(-4.0, 4.0), Log(-20.0, 10.0, true)],
        _ => vec![Log(-1074.0, 1024.0, true), Lin(-4.0, 4.0)],
    }
}

/// The documented bound (ulps) for a function: docs/math.md.
fn bound(name: &str, f32: bool) -> f64 {
    match (name, f32) {
        (_, true) => 1.0,
        ("exp" | "log" | "sin" | "cos", false) => 1.0,
        _ => 2.0,
    }
}

struct Row {
    name: &'static str,
    ty: &'static str,
    points: usize,
    max_ulp: f64,
    at: (f64, f64),
    bad_specials: Vec<(f64, f64, f64)>,
}

fn measure(lib: &Lib, jit: &Jit, name: &'static str, f: Fn2, f32: bool, n: usize) -> Row {
    let binary = matches!(f, Fn2::Binary(_));
    let ty = if f32 { "f32" } else { "f64" };
    let seed = name
        .bytes()
        .fold(0x1234u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let mut xs = sample(&domain(name), n, seed);
    let mut ys = if binary {
        sample(&second(name), n, seed ^ 0xABCD)
    } else {
        vec![0.0; xs.len()]
    };
    if binary {
        // Special pairs: every special first argument against every special second one.
        let sp = &xs[n..].to_vec();
        for &a in sp {
            for &b in sp {
                xs.push(a);
                ys.push(b);
            }
        }
        if name == "pow" {
            // Negative bases with integer exponents.
            for i in 0..4096 {
                xs.push(-1.0 - (i as f64) / 512.0);
                ys.push((i % 41) as f64 - 20.0);
            }
        }
    }
    if f32 {
        for v in xs.iter_mut().chain(ys.iter_mut()) {
            *v = *v as f32 as f64;
        }
    }
    let params = if binary {
        format!("x: {ty}, y: {ty}")
    } else {
        format!("x: {ty}")
    };
    let call = if binary {
        format!("{name}(x, y)")
    } else {
        format!("{name}(x)")
    };
    let src = format!("ufunc t({params}) -> {ty} {{ {call} }}");
    let m = jit.compile(name, &src).expect("the test kernel compiles");
    let u = m.ufunc("t").expect("t");
    let got: Vec<f64> = if f32 {
        let x: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
        let y: Vec<f32> = ys.iter().map(|&v| v as f32).collect();
        let (xa, ya) = (
            DynArray::from(ndarray::Array1::from(x)),
            DynArray::from(ndarray::Array1::from(y)),
        );
        let mut args = vec![Arg::Array(xa.view())];
        if binary {
            args.push(Arg::Array(ya.view()));
        }
        let out = u
            .typed::<f32>(&[ScalarType::F32; 2][..args.len()])
            .expect("typed")
            .call(&args)
            .expect("runs");
        out.iter().map(|&v| v as f64).collect()
    } else {
        let (xa, ya) = (
            DynArray::from(ndarray::Array1::from(xs.clone())),
            DynArray::from(ndarray::Array1::from(ys.clone())),
        );
        let mut args = vec![Arg::Array(xa.view())];
        if binary {
            args.push(Arg::Array(ya.view()));
        }
        let out = u
            .typed::<f64>(&[ScalarType::F64; 2][..args.len()])
            .expect("typed")
            .call(&args)
            .expect("runs");
        out.iter().copied().collect()
    };
    let (mant, emin) = if f32 { (24, -125) } else { (53, -1021) };
    // Per chunk: the largest error, where, and the wrong special values.
    type Chunk = (f64, (f64, f64), Vec<(f64, f64, f64)>);
    let chunks: Vec<Chunk> = (0..xs.len())
        .collect::<Vec<_>>()
        .par_chunks(1 << 14)
        .map(|idx| {
            let mut s = Scratch::new(lib);
            let mut worst = (0.0f64, (0.0, 0.0));
            let mut bad = Vec::new();
            for &i in idx {
                match s.error(f, xs[i], ys[i], got[i], mant, emin) {
                    Some(e) => {
                        if e > worst.0 {
                            worst = (e, (xs[i], ys[i]));
                        }
                    }
                    None => bad.push((xs[i], ys[i], got[i])),
                }
            }
            (worst.0, worst.1, bad)
        })
        .collect();
    let mut row = Row {
        name,
        ty,
        points: xs.len(),
        max_ulp: 0.0,
        at: (0.0, 0.0),
        bad_specials: Vec::new(),
    };
    for (e, at, bad) in chunks {
        if e > row.max_ulp {
            row.max_ulp = e;
            row.at = at;
        }
        row.bad_specials.extend(bad);
    }
    row
}

#[test]
fn math_library_accuracy_against_mpfr() {
    let lib = match load() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("SKIPPED: accuracy test: {e}");
            assert!(
                std::env::var_os("KILN_REQUIRE_MPFR").is_none(),
                "KILN_REQUIRE_MPFR is set but MPFR is unavailable: {e}"
            );
            return;
        }
    };
    let n: usize = std::env::var("KILN_ACCURACY_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 20);
    let jit = Jit::new().expect("a JIT");
    let mut rows = Vec::new();
    let fns: Vec<(&'static str, Fn2)> = lib
        .unary
        .iter()
        .map(|&(n, f)| (n, Fn2::Unary(f)))
        .chain(lib.binary.iter().map(|&(n, f)| (n, Fn2::Binary(f))))
        .collect();
    for &(name, f) in &fns {
        for f32 in [false, true] {
            let t = std::time::Instant::now();
            rows.push(measure(&lib, &jit, name, f, f32, n));
            if std::env::var_os("KILN_ACCURACY_REPORT").is_some() {
                eprintln!(
                    "{name} {}: {:.2} s",
                    if f32 { "f32" } else { "f64" },
                    t.elapsed().as_secs_f64()
                );
            }
        }
    }
    let mut table = String::from(
        "| function | type | points | max error (ulp) | bound | at |\n|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for r in &rows {
        let b = bound(r.name, r.ty == "f32");
        table.push_str(&format!(
            "| {} | {} | {} | {:.3} | {} | {:e}{} |\n",
            r.name,
            r.ty,
            r.points,
            r.max_ulp,
            b,
            r.at.0,
            if matches!(r.name, "pow" | "atan2" | "hypot") {
                format!(", {:e}", r.at.1)
            } else {
                String::new()
            }
        ));
        if r.max_ulp > b {
            failures.push(format!(
                "{}_{}: {:.3} ulp > {b} at {:?}",
                r.name, r.ty, r.max_ulp, r.at
            ));
        }
        for &(x, y, got) in r.bad_specials.iter().take(5) {
            failures.push(format!(
                "{}_{}({x:e}, {y:e}) = {got:e}: wrong special value",
                r.name, r.ty
            ));
        }
    }
    if std::env::var_os("KILN_ACCURACY_REPORT").is_some() {
        println!("{table}");
    }
    assert!(failures.is_empty(), "{}\n{table}", failures.join("\n"));
}
