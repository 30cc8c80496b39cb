//! Math builtins for JIT code: the `libm` crate's routines behind `extern "C"` symbols.
//!
//! Compiled kernels call the *same* functions the reference interpreter evaluates (the
//! `libm` crate, a port of musl's libm), so the CPU back end and the interpreter agree
//! bit for bit on every input, and results do not depend on the host's C library.
//! Accuracy is therefore that of the `libm` crate: `sqrt`, `floor`, `ceil`, `trunc`, `round`,
//! `fma`, `copysign` and `fmod` (`%` on floats) are exact; `docs/math.md` lists every other
//! function with where its code comes from and the accuracy its source states. The corpus
//! compares CPU results with the interpreter's bit for bit, since both run this code.
//! `sqrt`, `floor`, `ceil`, `trunc`, `fma`,
//! `abs`, `copysign`, `min`, `max` compile to machine instructions; the rest are calls.
//!
//! The symbols are also registered for Cranelift's own libcalls (`fma`, `floor`, … on
//! hosts without the instructions), so nothing is resolved from the process at run time.

use kiln_ir::{BinaryOp, ScalarType, UnaryOp};

macro_rules! wrappers {
    ($($sym:ident = $f:path, $ty:ty, $arity:tt;)*) => {
        $( wrappers!(@one $sym, $f, $ty, $arity); )*
        /// Every symbol and its address.
        pub fn symbols() -> Vec<(&'static str, *const u8)> {
            vec![$((stringify!($sym), $sym as *const u8)),*]
        }
    };
    (@one $sym:ident, $f:path, $ty:ty, 1) => {
        extern "C" fn $sym(x: $ty) -> $ty { $f(x) }
    };
    (@one $sym:ident, $f:path, $ty:ty, 2) => {
        extern "C" fn $sym(x: $ty, y: $ty) -> $ty { $f(x, y) }
    };
    (@one $sym:ident, $f:path, $ty:ty, 3) => {
        extern "C" fn $sym(x: $ty, y: $ty, z: $ty) -> $ty { $f(x, y, z) }
    };
}

wrappers! {
    kiln_cbrtf = libm::cbrtf, f32, 1; kiln_cbrt = libm::cbrt, f64, 1;
    kiln_expf = libm::expf, f32, 1; kiln_exp = libm::exp, f64, 1;
    kiln_exp2f = libm::exp2f, f32, 1; kiln_exp2 = libm::exp2, f64, 1;
    kiln_expm1f = libm::expm1f, f32, 1; kiln_expm1 = libm::expm1, f64, 1;
    kiln_logf = libm::logf, f32, 1; kiln_log = libm::log, f64, 1;
    kiln_log2f = libm::log2f, f32, 1; kiln_log2 = libm::log2, f64, 1;
    kiln_log10f = libm::log10f, f32, 1; kiln_log10 = libm::log10, f64, 1;
    kiln_log1pf = libm::log1pf, f32, 1; kiln_log1p = libm::log1p, f64, 1;
    kiln_sinf = libm::sinf, f32, 1; kiln_sin = libm::sin, f64, 1;
    kiln_cosf = libm::cosf, f32, 1; kiln_cos = libm::cos, f64, 1;
    kiln_tanf = libm::tanf, f32, 1; kiln_tan = libm::tan, f64, 1;
    kiln_asinf = libm::asinf, f32, 1; kiln_asin = libm::asin, f64, 1;
    kiln_acosf = libm::acosf, f32, 1; kiln_acos = libm::acos, f64, 1;
    kiln_atanf = libm::atanf, f32, 1; kiln_atan = libm::atan, f64, 1;
    kiln_sinhf = libm::sinhf, f32, 1; kiln_sinh = libm::sinh, f64, 1;
    kiln_coshf = libm::coshf, f32, 1; kiln_cosh = libm::cosh, f64, 1;
    kiln_tanhf = libm::tanhf, f32, 1; kiln_tanh = libm::tanh, f64, 1;
    kiln_asinhf = libm::asinhf, f32, 1; kiln_asinh = libm::asinh, f64, 1;
    kiln_acoshf = libm::acoshf, f32, 1; kiln_acosh = libm::acosh, f64, 1;
    kiln_atanhf = libm::atanhf, f32, 1; kiln_atanh = libm::atanh, f64, 1;
    kiln_erff = libm::erff, f32, 1; kiln_erf = libm::erf, f64, 1;
    kiln_erfcf = libm::erfcf, f32, 1; kiln_erfc = libm::erfc, f64, 1;
    kiln_roundf = libm::roundf, f32, 1; kiln_round = libm::round, f64, 1;
    kiln_fmodf = libm::fmodf, f32, 2; kiln_fmod = libm::fmod, f64, 2;
    kiln_atan2f = libm::atan2f, f32, 2; kiln_atan2 = libm::atan2, f64, 2;
    kiln_powf = libm::powf, f32, 2; kiln_pow = libm::pow, f64, 2;
    kiln_hypotf = libm::hypotf, f32, 2; kiln_hypot = libm::hypot, f64, 2;
    // Cranelift's libcalls, under the names `default_libcall_names` gives them.
    fmaf = libm::fmaf, f32, 3; fma = libm::fma, f64, 3;
    floorf = libm::floorf, f32, 1; floor = libm::floor, f64, 1;
    ceilf = libm::ceilf, f32, 1; ceil = libm::ceil, f64, 1;
    truncf = libm::truncf, f32, 1; trunc = libm::trunc, f64, 1;
    nearbyintf = libm::rintf, f32, 1; nearbyint = libm::rint, f64, 1;
}

/// The symbol implementing a unary operator that compiles to a call, if it is one.
pub fn unary_symbol(op: UnaryOp, ty: ScalarType) -> Option<&'static str> {
    use UnaryOp::*;
    let (f32_name, f64_name) = match op {
        Cbrt => ("kiln_cbrtf", "kiln_cbrt"),
        Exp => ("kiln_expf", "kiln_exp"),
        Exp2 => ("kiln_exp2f", "kiln_exp2"),
        Expm1 => ("kiln_expm1f", "kiln_expm1"),
        Log => ("kiln_logf", "kiln_log"),
        Log2 => ("kiln_log2f", "kiln_log2"),
        Log10 => ("kiln_log10f", "kiln_log10"),
        Log1p => ("kiln_log1pf", "kiln_log1p"),
        Sin => ("kiln_sinf", "kiln_sin"),
        Cos => ("kiln_cosf", "kiln_cos"),
        Tan => ("kiln_tanf", "kiln_tan"),
        Asin => ("kiln_asinf", "kiln_asin"),
        Acos => ("kiln_acosf", "kiln_acos"),
        Atan => ("kiln_atanf", "kiln_atan"),
        Sinh => ("kiln_sinhf", "kiln_sinh"),
        Cosh => ("kiln_coshf", "kiln_cosh"),
        Tanh => ("kiln_tanhf", "kiln_tanh"),
        Asinh => ("kiln_asinhf", "kiln_asinh"),
        Acosh => ("kiln_acoshf", "kiln_acosh"),
        Atanh => ("kiln_atanhf", "kiln_atanh"),
        Erf => ("kiln_erff", "kiln_erf"),
        Erfc => ("kiln_erfcf", "kiln_erfc"),
        Round => ("kiln_roundf", "kiln_round"),
        _ => return None,
    };
    pick(ty, f32_name, f64_name)
}

/// The symbol implementing a binary float operator that compiles to a call, if it is one.
pub fn binary_symbol(op: BinaryOp, ty: ScalarType) -> Option<&'static str> {
    let (f32_name, f64_name) = match op {
        BinaryOp::Rem => ("kiln_fmodf", "kiln_fmod"),
        BinaryOp::Atan2 => ("kiln_atan2f", "kiln_atan2"),
        BinaryOp::Pow => ("kiln_powf", "kiln_pow"),
        BinaryOp::Hypot => ("kiln_hypotf", "kiln_hypot"),
        _ => return None,
    };
    pick(ty, f32_name, f64_name)
}

fn pick(ty: ScalarType, f32_name: &'static str, f64_name: &'static str) -> Option<&'static str> {
    match ty {
        ScalarType::F32 => Some(f32_name),
        ScalarType::F64 => Some(f64_name),
        _ => None,
    }
}
