//! `kiln-interp`: the reference interpreter over Kiln IR.
//!
//! This is the oracle every back end is compared with, so it is written to be obviously
//! correct rather than fast: values are typed [`Scalar`]s, every operator is a `match` on
//! the operand type that states the semantics of spec §5 with Rust's own operations, and the
//! math builtins come from the `libm` crate (a port of musl's libm), which gives the same
//! bits on every host, unlike the platform's libm.
//!
//! Semantics in brief (see `kiln_ir::inst` for the full list): integer `+ - * <<` wrap;
//! `/` and `%` truncate, `MIN / -1 == MIN`, `MIN % -1 == 0`, and a zero divisor is a
//! [`ErrorKind::DivisionByZero`]/[`ErrorKind::RemainderByZero`] error; shift amounts are taken
//! modulo the bit width; float→int casts saturate with NaN → 0; `min`/`max` propagate NaN and
//! order `-0.0 < +0.0`; `round` rounds half away from zero.
//!
//! Execution is bounded by fuel (one unit per instruction), so an endless loop ends with
//! [`ErrorKind::OutOfFuel`] instead of hanging the fuzzer or the REPL.

use kiln_ir::{
    BinaryOp, Block, InstKind, KernelId, Module, Scalar, ScalarType, SourceLoc, UnaryOp, Value,
};

/// Why a kernel stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// Integer `/` by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// Integer `%` by zero.
    #[error("remainder by zero")]
    RemainderByZero,
    /// `assert(false)`.
    #[error("assertion failed")]
    AssertionFailed,
    /// The fuel budget ran out (an endless loop, or too much work for the caller's budget).
    #[error("step budget exhausted (endless loop?)")]
    OutOfFuel,
    /// Calls nested deeper than [`MAX_CALL_DEPTH`].
    #[error("calls nested too deeply")]
    CallDepth,
    /// The GPU ran out of memory.
    #[error("out of GPU memory")]
    OutOfDeviceMemory,
    /// The GPU driver reported a failure (the device was lost or reset, say).
    #[error("the GPU failed (CUDA driver error)")]
    Device,
    /// The user interrupted the computation (Ctrl-C at the REPL; see [`INTERRUPT`]).
    #[error("interrupted")]
    Interrupted,
    /// A back end failed to compile the kernel: always a Kiln bug.
    #[error(
        "internal error: the back end could not compile this kernel (a Kiln bug; please report it)"
    )]
    Internal,
}

/// A runtime error: what happened, in which kernel, and where in the source.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} in `{kernel}`{}", .loc.map(|l| format!(" at {l}")).unwrap_or_default())]
pub struct RuntimeError {
    /// What happened.
    pub kind: ErrorKind,
    /// The kernel that was called (helpers it calls are part of it once inlined).
    pub kernel: String,
    /// The source line and column of the failing operation.
    pub loc: Option<SourceLoc>,
}

/// Set to ask running kernels to stop: the REPL's Ctrl-C handler sets it. The interpreter
/// checks it at every block it enters, native code on every loop back-edge, the runtime
/// between the pieces of an array operation; each then fails with
/// [`ErrorKind::Interrupted`]. Whoever sets it clears it before the next computation.
pub static INTERRUPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`INTERRUPT`] is set.
#[inline]
pub fn interrupted() -> bool {
    INTERRUPT.load(std::sync::atomic::Ordering::Relaxed)
}

/// A place where compiled code can fail, as back ends record them: generated code returns
/// status `n ≥ 1` for `sites[n - 1]` of its compilation unit (0 is success).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// What failed.
    pub kind: ErrorKind,
    /// The operation's source location, if the IR had one.
    pub loc: Option<SourceLoc>,
}

impl Site {
    /// The runtime error of status `status` of code with trap sites `sites`, named after
    /// `kernel` (a status no site has is a back-end bug: [`ErrorKind::Internal`]).
    pub fn error(sites: &[Site], status: u32, kernel: &str) -> RuntimeError {
        let site = (status as usize)
            .checked_sub(1)
            .and_then(|i| sites.get(i))
            .copied();
        RuntimeError {
            kind: site.map_or(ErrorKind::Internal, |s| s.kind),
            kernel: kernel.to_string(),
            loc: site.and_then(|s| s.loc),
        }
    }
}

/// Deepest call nesting the interpreter allows (the front end rejects recursion, so only
/// hand-made IR can get near it).
pub const MAX_CALL_DEPTH: usize = 64;

/// A fuel budget shared by nested calls.
#[derive(Clone, Copy, Debug)]
pub struct Fuel(pub u64);

/// Runs kernel `id` of `m` with `args`. The module must have passed `kiln_ir::verify`.
///
/// An error names kernel `id` — the kernel that was called — and the source location of the
/// failing operation, wherever it was written (in a helper `fn`, say). Back ends inline
/// helpers, so naming the called kernel is what every executor can agree on.
pub fn call(
    m: &Module,
    id: KernelId,
    args: &[Scalar],
    fuel: &mut Fuel,
) -> Result<Vec<Scalar>, RuntimeError> {
    call_at_depth(m, id, args, fuel, 0).map_err(|mut e| {
        e.kernel.clone_from(&m.kernel(id).name);
        e
    })
}

fn call_at_depth(
    m: &Module,
    id: KernelId,
    args: &[Scalar],
    fuel: &mut Fuel,
    depth: usize,
) -> Result<Vec<Scalar>, RuntimeError> {
    let k = m.kernel(id);
    let fail = |kind, inst: Option<kiln_ir::Inst>| RuntimeError {
        kind,
        kernel: k.name.clone(),
        loc: inst.and_then(|i| k.locs[i.index()]),
    };
    if depth > MAX_CALL_DEPTH {
        return Err(fail(ErrorKind::CallDepth, None));
    }
    let mut env: Vec<Option<Scalar>> = vec![None; k.values.len()];
    let get = |env: &[Option<Scalar>], v: Value| {
        env[v.index()].expect("verified IR defines every value before use")
    };
    let mut block: Block = k.entry();
    let mut incoming: Vec<Scalar> = args.to_vec();
    loop {
        if interrupted() {
            return Err(fail(ErrorKind::Interrupted, None));
        }
        let data = k.block(block);
        for (&p, &a) in data.params.iter().zip(&incoming) {
            env[p.index()] = Some(a);
        }
        let mut next = None;
        for &inst in &data.insts {
            if fuel.0 == 0 {
                return Err(fail(ErrorKind::OutOfFuel, Some(inst)));
            }
            fuel.0 -= 1;
            let idata = k.inst(inst);
            let result: Vec<Scalar> = match &idata.kind {
                InstKind::Const(c) => vec![*c],
                InstKind::Unary(op, x) => vec![eval_unary(*op, get(&env, *x))],
                InstKind::Binary(op, a, b) => {
                    vec![eval_binary(*op, get(&env, *a), get(&env, *b))
                        .map_err(|e| fail(e, Some(inst)))?]
                }
                InstKind::Fma(a, b, c) => {
                    vec![eval_fma(get(&env, *a), get(&env, *b), get(&env, *c))]
                }
                InstKind::Select(c, a, b) => {
                    vec![if get(&env, *c) == Scalar::Bool(true) {
                        get(&env, *a)
                    } else {
                        get(&env, *b)
                    }]
                }
                InstKind::Cast(x) => vec![eval_cast(get(&env, *x), k.value_type(idata.results[0]))],
                InstKind::Bitcast(x) => {
                    vec![eval_bitcast(get(&env, *x), k.value_type(idata.results[0]))]
                }
                InstKind::Call(callee, args) => {
                    let args: Vec<Scalar> = args.iter().map(|&a| get(&env, a)).collect();
                    call_at_depth(m, *callee, &args, fuel, depth + 1)?
                }
                InstKind::Assert(c) => {
                    if get(&env, *c) != Scalar::Bool(true) {
                        return Err(fail(ErrorKind::AssertionFailed, Some(inst)));
                    }
                    vec![]
                }
                InstKind::Jump(t) => {
                    next = Some((t.block, t.args.iter().map(|&a| get(&env, a)).collect()));
                    vec![]
                }
                InstKind::Branch(c, t, e) => {
                    let target = if get(&env, *c) == Scalar::Bool(true) {
                        t
                    } else {
                        e
                    };
                    next = Some((
                        target.block,
                        target.args.iter().map(|&a| get(&env, a)).collect(),
                    ));
                    vec![]
                }
                InstKind::Return(vs) => return Ok(vs.iter().map(|&v| get(&env, v)).collect()),
            };
            for (&r, v) in idata.results.iter().zip(result) {
                env[r.index()] = Some(v);
            }
        }
        let (b, a) = next.expect("verified IR: every block ends with a terminator");
        block = b;
        incoming = a;
    }
}

macro_rules! float_fn {
    ($x:expr, $f32:path, $f64:path) => {
        match $x {
            Scalar::F32(v) => Scalar::F32($f32(v)),
            Scalar::F64(v) => Scalar::F64($f64(v)),
            other => unreachable!("verified IR: float operator on {other:?}"),
        }
    };
}

/// Applies a unary operator (spec §4–§5).
pub fn eval_unary(op: UnaryOp, x: Scalar) -> Scalar {
    use Scalar::*;
    match op {
        UnaryOp::Neg => match x {
            I32(v) => I32(v.wrapping_neg()),
            I64(v) => I64(v.wrapping_neg()),
            U32(v) => U32(v.wrapping_neg()),
            U64(v) => U64(v.wrapping_neg()),
            F32(v) => F32(-v),
            F64(v) => F64(-v),
            Bool(_) => unreachable!("verified IR: neg of bool"),
        },
        UnaryOp::Not => match x {
            Bool(v) => Bool(!v),
            I32(v) => I32(!v),
            I64(v) => I64(!v),
            U32(v) => U32(!v),
            U64(v) => U64(!v),
            F32(_) | F64(_) => unreachable!("verified IR: not of a float"),
        },
        UnaryOp::Abs => match x {
            I32(v) => I32(v.wrapping_abs()),
            I64(v) => I64(v.wrapping_abs()),
            U32(_) | U64(_) => x,
            F32(v) => F32(libm::fabsf(v)),
            F64(v) => F64(libm::fabs(v)),
            Bool(_) => unreachable!("verified IR: abs of bool"),
        },
        UnaryOp::Sqrt => float_fn!(x, libm::sqrtf, libm::sqrt),
        UnaryOp::Cbrt => float_fn!(x, libm::cbrtf, libm::cbrt),
        UnaryOp::Exp => float_fn!(x, libm::expf, libm::exp),
        UnaryOp::Exp2 => float_fn!(x, libm::exp2f, libm::exp2),
        UnaryOp::Expm1 => float_fn!(x, libm::expm1f, libm::expm1),
        UnaryOp::Log => float_fn!(x, libm::logf, libm::log),
        UnaryOp::Log2 => float_fn!(x, libm::log2f, libm::log2),
        UnaryOp::Log10 => float_fn!(x, libm::log10f, libm::log10),
        UnaryOp::Log1p => float_fn!(x, libm::log1pf, libm::log1p),
        UnaryOp::Sin => float_fn!(x, libm::sinf, libm::sin),
        UnaryOp::Cos => float_fn!(x, libm::cosf, libm::cos),
        UnaryOp::Tan => float_fn!(x, libm::tanf, libm::tan),
        UnaryOp::Asin => float_fn!(x, libm::asinf, libm::asin),
        UnaryOp::Acos => float_fn!(x, libm::acosf, libm::acos),
        UnaryOp::Atan => float_fn!(x, libm::atanf, libm::atan),
        UnaryOp::Sinh => float_fn!(x, libm::sinhf, libm::sinh),
        UnaryOp::Cosh => float_fn!(x, libm::coshf, libm::cosh),
        UnaryOp::Tanh => float_fn!(x, libm::tanhf, libm::tanh),
        UnaryOp::Asinh => float_fn!(x, libm::asinhf, libm::asinh),
        UnaryOp::Acosh => float_fn!(x, libm::acoshf, libm::acosh),
        UnaryOp::Atanh => float_fn!(x, libm::atanhf, libm::atanh),
        UnaryOp::Erf => float_fn!(x, libm::erff, libm::erf),
        UnaryOp::Erfc => float_fn!(x, libm::erfcf, libm::erfc),
        UnaryOp::Floor => float_fn!(x, libm::floorf, libm::floor),
        UnaryOp::Ceil => float_fn!(x, libm::ceilf, libm::ceil),
        UnaryOp::Round => float_fn!(x, libm::roundf, libm::round),
        UnaryOp::Trunc => float_fn!(x, libm::truncf, libm::trunc),
        UnaryOp::IsNan => Bool(x.is_nan()),
        UnaryOp::IsInf => match x {
            F32(v) => Bool(v.is_infinite()),
            F64(v) => Bool(v.is_infinite()),
            other => unreachable!("verified IR: isinf of {other:?}"),
        },
        UnaryOp::IsFinite => match x {
            F32(v) => Bool(v.is_finite()),
            F64(v) => Bool(v.is_finite()),
            other => unreachable!("verified IR: isfinite of {other:?}"),
        },
    }
}

/// IEEE 754-2019 `minimum`/`maximum`: NaN if either is NaN, and `-0.0 < +0.0`.
fn float_min_max<F: Copy + PartialOrd>(
    a: F,
    b: F,
    is_nan: fn(F) -> bool,
    is_neg: fn(F) -> bool,
    want_max: bool,
) -> F {
    if is_nan(a) {
        return a;
    }
    if is_nan(b) {
        return b;
    }
    let a_first = if a == b {
        // Equal, so only the sign of zero can differ: min prefers -0.0, max +0.0.
        is_neg(a) != want_max
    } else {
        (a < b) != want_max
    };
    if a_first {
        a
    } else {
        b
    }
}

macro_rules! int_arith {
    ($op:expr, $a:expr, $b:expr, $ctor:path, $zero:expr) => {{
        let (a, b) = ($a, $b);
        match $op {
            BinaryOp::Add => Ok($ctor(a.wrapping_add(b))),
            BinaryOp::Sub => Ok($ctor(a.wrapping_sub(b))),
            BinaryOp::Mul => Ok($ctor(a.wrapping_mul(b))),
            BinaryOp::Div if b == $zero => Err(ErrorKind::DivisionByZero),
            BinaryOp::Div => Ok($ctor(a.wrapping_div(b))),
            BinaryOp::Rem if b == $zero => Err(ErrorKind::RemainderByZero),
            BinaryOp::Rem => Ok($ctor(a.wrapping_rem(b))),
            BinaryOp::And => Ok($ctor(a & b)),
            BinaryOp::Or => Ok($ctor(a | b)),
            BinaryOp::Xor => Ok($ctor(a ^ b)),
            BinaryOp::Eq => Ok(Scalar::Bool(a == b)),
            BinaryOp::Ne => Ok(Scalar::Bool(a != b)),
            BinaryOp::Lt => Ok(Scalar::Bool(a < b)),
            BinaryOp::Le => Ok(Scalar::Bool(a <= b)),
            BinaryOp::Gt => Ok(Scalar::Bool(a > b)),
            BinaryOp::Ge => Ok(Scalar::Bool(a >= b)),
            BinaryOp::Min => Ok($ctor(a.min(b))),
            BinaryOp::Max => Ok($ctor(a.max(b))),
            BinaryOp::Shl
            | BinaryOp::Shr
            | BinaryOp::Atan2
            | BinaryOp::Pow
            | BinaryOp::Hypot
            | BinaryOp::Copysign => {
                unreachable!("handled by the caller or rejected by the verifier")
            }
        }
    }};
}

macro_rules! float_arith {
    ($op:expr, $a:expr, $b:expr, $ctor:path, $fmod:path, $atan2:path, $pow:path, $hypot:path, $copysign:path) => {{
        let (a, b) = ($a, $b);
        match $op {
            BinaryOp::Add => Ok($ctor(a + b)),
            BinaryOp::Sub => Ok($ctor(a - b)),
            BinaryOp::Mul => Ok($ctor(a * b)),
            BinaryOp::Div => Ok($ctor(a / b)),
            BinaryOp::Rem => Ok($ctor($fmod(a, b))),
            BinaryOp::Eq => Ok(Scalar::Bool(a == b)),
            BinaryOp::Ne => Ok(Scalar::Bool(a != b)),
            BinaryOp::Lt => Ok(Scalar::Bool(a < b)),
            BinaryOp::Le => Ok(Scalar::Bool(a <= b)),
            BinaryOp::Gt => Ok(Scalar::Bool(a > b)),
            BinaryOp::Ge => Ok(Scalar::Bool(a >= b)),
            BinaryOp::Min => Ok($ctor(float_min_max(
                a,
                b,
                |x| x.is_nan(),
                |x| x.is_sign_negative(),
                false,
            ))),
            BinaryOp::Max => Ok($ctor(float_min_max(
                a,
                b,
                |x| x.is_nan(),
                |x| x.is_sign_negative(),
                true,
            ))),
            BinaryOp::Atan2 => Ok($ctor($atan2(a, b))),
            BinaryOp::Pow => Ok($ctor($pow(a, b))),
            BinaryOp::Hypot => Ok($ctor($hypot(a, b))),
            BinaryOp::Copysign => Ok($ctor($copysign(a, b))),
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Shl | BinaryOp::Shr => {
                unreachable!("verified IR: bitwise operator on a float")
            }
        }
    }};
}

/// The shift amount as a `u32` before masking; `wrapping_shl`/`wrapping_shr` mask it by the
/// bit width, which is exactly spec §5's rule (a negative amount wraps first).
fn shift_amount(b: Scalar) -> u32 {
    match b {
        Scalar::I32(v) => v as u32,
        Scalar::I64(v) => v as u32,
        Scalar::U32(v) => v,
        Scalar::U64(v) => v as u32,
        other => unreachable!("verified IR: shift amount {other:?}"),
    }
}

/// Applies a binary operator; fails only for integer division and remainder by zero.
pub fn eval_binary(op: BinaryOp, a: Scalar, b: Scalar) -> Result<Scalar, ErrorKind> {
    use Scalar::*;
    if op.is_shift() {
        let n = shift_amount(b);
        let left = op == BinaryOp::Shl;
        macro_rules! shift {
            ($v:expr) => {
                if left {
                    $v.wrapping_shl(n)
                } else {
                    $v.wrapping_shr(n)
                }
            };
        }
        return Ok(match a {
            I32(v) => I32(shift!(v)),
            I64(v) => I64(shift!(v)),
            U32(v) => U32(shift!(v)),
            U64(v) => U64(shift!(v)),
            other => unreachable!("verified IR: shift of {other:?}"),
        });
    }
    match (a, b) {
        (Bool(a), Bool(b)) => Ok(Bool(match op {
            BinaryOp::And => a & b,
            BinaryOp::Or => a | b,
            BinaryOp::Xor => a ^ b,
            BinaryOp::Eq => a == b,
            BinaryOp::Ne => a != b,
            BinaryOp::Lt => !a & b,
            BinaryOp::Le => a <= b,
            BinaryOp::Gt => a & !b,
            BinaryOp::Ge => a >= b,
            other => unreachable!("verified IR: {} on bool", other.name()),
        })),
        (I32(a), I32(b)) => int_arith!(op, a, b, I32, 0),
        (I64(a), I64(b)) => int_arith!(op, a, b, I64, 0),
        (U32(a), U32(b)) => int_arith!(op, a, b, U32, 0),
        (U64(a), U64(b)) => int_arith!(op, a, b, U64, 0),
        (F32(a), F32(b)) => float_arith!(
            op,
            a,
            b,
            F32,
            libm::fmodf,
            libm::atan2f,
            libm::powf,
            libm::hypotf,
            libm::copysignf
        ),
        (F64(a), F64(b)) => float_arith!(
            op,
            a,
            b,
            F64,
            libm::fmod,
            libm::atan2,
            libm::pow,
            libm::hypot,
            libm::copysign
        ),
        (a, b) => unreachable!("verified IR: {} on {a:?} and {b:?}", op.name()),
    }
}

/// `a * b + c` rounded once.
pub fn eval_fma(a: Scalar, b: Scalar, c: Scalar) -> Scalar {
    match (a, b, c) {
        (Scalar::F32(a), Scalar::F32(b), Scalar::F32(c)) => Scalar::F32(libm::fmaf(a, b, c)),
        (Scalar::F64(a), Scalar::F64(b), Scalar::F64(c)) => Scalar::F64(libm::fma(a, b, c)),
        other => unreachable!("verified IR: fma of {other:?}"),
    }
}

/// `to_bits`/`from_bits`: the value of type `to` with the bits of `x` (`f32 ↔ u32`,
/// `f64 ↔ u64`; the verifier rejects other pairs).
pub fn eval_bitcast(x: Scalar, to: ScalarType) -> Scalar {
    Scalar::from_bits(to, x.to_bits())
}

/// Converts `x` to `to` with spec §2's rules, which are exactly Rust's `as`: float→int
/// saturates and maps NaN to 0, int→int wraps, `bool` is 0 or 1, int→float and f64→f32
/// round to nearest even.
pub fn eval_cast(x: Scalar, to: ScalarType) -> Scalar {
    macro_rules! conv {
        ($v:expr) => {
            match to {
                ScalarType::I32 => Scalar::I32($v as i32),
                ScalarType::I64 => Scalar::I64($v as i64),
                ScalarType::U32 => Scalar::U32($v as u32),
                ScalarType::U64 => Scalar::U64($v as u64),
                ScalarType::F32 => Scalar::F32($v as f32),
                ScalarType::F64 => Scalar::F64($v as f64),
                ScalarType::Bool => unreachable!("verified IR: cast to bool"),
            }
        };
    }
    match x {
        Scalar::Bool(v) => conv!(v as u8),
        Scalar::I32(v) => conv!(v),
        Scalar::I64(v) => conv!(v),
        Scalar::U32(v) => conv!(v),
        Scalar::U64(v) => conv!(v),
        Scalar::F32(v) => conv!(v),
        Scalar::F64(v) => conv!(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Scalar::*;

    #[test]
    fn integer_edge_semantics() {
        assert_eq!(
            eval_binary(BinaryOp::Div, I64(i64::MIN), I64(-1)),
            Ok(I64(i64::MIN))
        );
        assert_eq!(
            eval_binary(BinaryOp::Rem, I32(i32::MIN), I32(-1)),
            Ok(I32(0))
        );
        assert_eq!(eval_binary(BinaryOp::Div, I32(-7), I32(2)), Ok(I32(-3)));
        assert_eq!(eval_binary(BinaryOp::Rem, I32(-7), I32(2)), Ok(I32(-1)));
        assert_eq!(
            eval_binary(BinaryOp::Div, U32(1), U32(0)),
            Err(ErrorKind::DivisionByZero)
        );
        assert_eq!(
            eval_binary(BinaryOp::Rem, I64(1), I64(0)),
            Err(ErrorKind::RemainderByZero)
        );
        assert_eq!(eval_binary(BinaryOp::Shl, I32(1), I32(33)), Ok(I32(2)));
        assert_eq!(eval_binary(BinaryOp::Shr, I32(-8), U64(1)), Ok(I32(-4)));
        assert_eq!(
            eval_binary(BinaryOp::Shr, U32(0x8000_0000), I32(-1)),
            Ok(U32(1))
        );
        assert_eq!(
            eval_binary(BinaryOp::Add, I32(i32::MAX), I32(1)),
            Ok(I32(i32::MIN))
        );
    }

    #[test]
    fn float_edge_semantics() {
        let min = |a, b| eval_binary(BinaryOp::Min, F64(a), F64(b)).expect("no trap");
        assert!(min(f64::NAN, 1.0).is_nan());
        assert!(min(1.0, f64::NAN).is_nan());
        assert_eq!(min(0.0, -0.0).to_bits(), F64(-0.0).to_bits());
        assert_eq!(min(-0.0, 0.0).to_bits(), F64(-0.0).to_bits());
        let max = eval_binary(BinaryOp::Max, F32(-0.0), F32(0.0)).expect("no trap");
        assert_eq!(max.to_bits(), F32(0.0).to_bits());
        assert_eq!(eval_unary(UnaryOp::Round, F64(-2.5)), F64(-3.0));
        assert_eq!(eval_unary(UnaryOp::Round, F64(0.5)), F64(1.0));
        assert_eq!(eval_cast(F64(f64::NAN), ScalarType::I32), I32(0));
        assert_eq!(eval_cast(F64(1e300), ScalarType::I64), I64(i64::MAX));
        assert_eq!(eval_cast(F32(-1.0), ScalarType::U32), U32(0));
        assert_eq!(eval_cast(I64(-1), ScalarType::U32), U32(u32::MAX));
        assert_eq!(eval_cast(Bool(true), ScalarType::F64), F64(1.0));
        assert_eq!(
            eval_binary(BinaryOp::Rem, F64(-7.5), F64(2.0)),
            Ok(F64(-1.5))
        );
    }
}
