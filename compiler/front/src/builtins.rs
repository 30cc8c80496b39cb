//! The builtin functions of spec §4 and their signatures.

use kiln_ir::{BinaryOp, ScalarType, UnaryOp};

use crate::types::{Class, Ty};

/// A builtin function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// `sqrt exp …`, `floor …`: `(T: float) -> T`; `abs`: `(T: num) -> T`.
    Unary(UnaryOp),
    /// `isnan isinf isfinite`: `(T: float) -> bool`.
    Predicate(UnaryOp),
    /// `atan2 pow hypot copysign`: `(T: float, T) -> T`; `min max`: `(T: num, T) -> T`.
    Binary(BinaryOp),
    /// `fma(a, b, c)`: `(T: float, T, T) -> T`, one rounding.
    Fma,
    /// `clamp(x, lo, hi)`: `(T: num, T, T) -> T`, `min(max(x, lo), hi)`.
    Clamp,
    /// `select(c, a, b)`: `(bool, T, T) -> T`, both operands evaluated.
    Select,
    /// `assert(c)`: runtime error unless `c`.
    Assert,
    /// `to_bits(x)`: the bits of a float as the unsigned integer of its width
    /// (`f32 -> u32`, `f64 -> u64`), like Rust's `f64::to_bits`.
    ToBits,
    /// `from_bits(b)`: the float with bits `b` (`u32 -> f32`, `u64 -> f64`).
    FromBits,
    /// `ldexp(x, n)`: `x * 2^n` with one rounding, `(T: float, i32) -> T` (C's `ldexp`).
    Ldexp,
}

/// A builtin's signature: one generic parameter of class `class`.
pub struct Signature {
    /// The generic parameter's class (`None` for `assert`, which has none).
    pub class: Option<Class>,
    /// Parameter types; `Ty::Param(0, ..)` stands for the generic parameter.
    pub params: Vec<Ty>,
    /// Result type.
    pub ret: Ty,
}

impl Builtin {
    /// Looks up a builtin by name.
    pub fn from_name(name: &str) -> Option<Builtin> {
        if let Some(op) = UnaryOp::ALL.iter().find(|op| op.name() == name) {
            return match op {
                UnaryOp::Neg | UnaryOp::Not => None,
                UnaryOp::IsNan | UnaryOp::IsInf | UnaryOp::IsFinite => {
                    Some(Builtin::Predicate(*op))
                }
                _ => Some(Builtin::Unary(*op)),
            };
        }
        Some(match name {
            "atan2" => Builtin::Binary(BinaryOp::Atan2),
            "pow" => Builtin::Binary(BinaryOp::Pow),
            "hypot" => Builtin::Binary(BinaryOp::Hypot),
            "copysign" => Builtin::Binary(BinaryOp::Copysign),
            "min" => Builtin::Binary(BinaryOp::Min),
            "max" => Builtin::Binary(BinaryOp::Max),
            "fma" => Builtin::Fma,
            "clamp" => Builtin::Clamp,
            "select" => Builtin::Select,
            "assert" => Builtin::Assert,
            "to_bits" => Builtin::ToBits,
            "from_bits" => Builtin::FromBits,
            "ldexp" => Builtin::Ldexp,
            _ => return None,
        })
    }

    /// Every builtin's name, for suggestions and the REPL.
    pub fn names() -> Vec<&'static str> {
        let mut v: Vec<&'static str> = UnaryOp::ALL
            .iter()
            .filter(|op| !matches!(op, UnaryOp::Neg | UnaryOp::Not))
            .map(|op| op.name())
            .collect();
        v.extend([
            "atan2",
            "pow",
            "hypot",
            "copysign",
            "min",
            "max",
            "fma",
            "clamp",
            "select",
            "assert",
            "to_bits",
            "from_bits",
            "ldexp",
        ]);
        v
    }

    /// The name as written.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Unary(op) | Builtin::Predicate(op) => op.name(),
            Builtin::Binary(op) => op.name(),
            Builtin::Fma => "fma",
            Builtin::Clamp => "clamp",
            Builtin::Select => "select",
            Builtin::Assert => "assert",
            Builtin::ToBits => "to_bits",
            Builtin::FromBits => "from_bits",
            Builtin::Ldexp => "ldexp",
        }
    }

    /// The signature. `to_bits` and `from_bits`, whose result type is a function of the
    /// argument's, are described as taking and returning any type; the checker types them
    /// itself.
    pub fn signature(self) -> Signature {
        let t = |c: Class| Ty::Param(0, "T".into(), c);
        // `n` parameters and the result, all of type `T: c`.
        let uniform = |c: Class, n: usize| Signature {
            class: Some(c),
            params: vec![t(c); n],
            ret: t(c),
        };
        let class_of = |float_only: bool| if float_only { Class::Float } else { Class::Num };
        match self {
            Builtin::Unary(op) => uniform(class_of(op.float_only()), 1),
            Builtin::Predicate(_) => Signature {
                class: Some(Class::Float),
                params: vec![t(Class::Float)],
                ret: Ty::BOOL,
            },
            Builtin::Binary(op) => uniform(class_of(op.float_only()), 2),
            Builtin::Fma => uniform(Class::Float, 3),
            Builtin::Clamp => uniform(Class::Num, 3),
            Builtin::Select => Signature {
                class: Some(Class::Any),
                params: vec![Ty::BOOL, t(Class::Any), t(Class::Any)],
                ret: t(Class::Any),
            },
            Builtin::Assert => Signature {
                class: None,
                params: vec![Ty::BOOL],
                ret: Ty::Unit,
            },
            Builtin::ToBits | Builtin::FromBits => Signature {
                class: Some(Class::Any),
                params: vec![t(Class::Any)],
                ret: t(Class::Any),
            },
            Builtin::Ldexp => Signature {
                class: Some(Class::Float),
                params: vec![t(Class::Float), Ty::Scalar(ScalarType::I32)],
                ret: t(Class::Float),
            },
        }
    }
}
