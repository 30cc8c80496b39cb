//! Instructions and their operators.

use crate::entities::{Block, KernelId, Value};
use crate::types::Scalar;

/// One-operand operators. The result has the operand's type, except the classification
/// operators (`isnan`, `isinf`, `isfinite`), whose result is `bool`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum UnaryOp {
    /// Negation: wrapping for integers, sign flip for floats.
    Neg,
    /// Logical not on `bool`, bitwise not on integers.
    Not,
    /// Absolute value: wrapping for signed integers (`abs(MIN) == MIN`).
    Abs,
    Sqrt,
    Cbrt,
    Exp,
    Exp2,
    Expm1,
    Log,
    Log2,
    Log10,
    Log1p,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Asinh,
    Acosh,
    Atanh,
    Erf,
    Erfc,
    Floor,
    Ceil,
    /// Half away from zero.
    Round,
    Trunc,
    IsNan,
    IsInf,
    IsFinite,
}

impl UnaryOp {
    /// Every unary operator.
    pub const ALL: [UnaryOp; 33] = {
        use UnaryOp::*;
        [
            Neg, Not, Abs, Sqrt, Cbrt, Exp, Exp2, Expm1, Log, Log2, Log10, Log1p, Sin, Cos, Tan,
            Asin, Acos, Atan, Sinh, Cosh, Tanh, Asinh, Acosh, Atanh, Erf, Erfc, Floor, Ceil, Round,
            Trunc, IsNan, IsInf, IsFinite,
        ]
    };

    /// The name in IR text (and, for builtins, in source).
    pub fn name(self) -> &'static str {
        use UnaryOp::*;
        match self {
            Neg => "neg",
            Not => "not",
            Abs => "abs",
            Sqrt => "sqrt",
            Cbrt => "cbrt",
            Exp => "exp",
            Exp2 => "exp2",
            Expm1 => "expm1",
            Log => "log",
            Log2 => "log2",
            Log10 => "log10",
            Log1p => "log1p",
            Sin => "sin",
            Cos => "cos",
            Tan => "tan",
            Asin => "asin",
            Acos => "acos",
            Atan => "atan",
            Sinh => "sinh",
            Cosh => "cosh",
            Tanh => "tanh",
            Asinh => "asinh",
            Acosh => "acosh",
            Atanh => "atanh",
            Erf => "erf",
            Erfc => "erfc",
            Floor => "floor",
            Ceil => "ceil",
            Round => "round",
            Trunc => "trunc",
            IsNan => "isnan",
            IsInf => "isinf",
            IsFinite => "isfinite",
        }
    }

    /// Float-only operators (everything but `neg`, `not`, `abs`).
    pub fn float_only(self) -> bool {
        !matches!(self, UnaryOp::Neg | UnaryOp::Not | UnaryOp::Abs)
    }

    /// Operators whose result is `bool`.
    pub fn is_predicate(self) -> bool {
        matches!(self, UnaryOp::IsNan | UnaryOp::IsInf | UnaryOp::IsFinite)
    }
}

/// Two-operand operators. Both operands have one type, except shifts (the amount may be any
/// integer type). Comparisons give `bool`; the others give the operand type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum BinaryOp {
    /// Wrapping for integers.
    Add,
    Sub,
    Mul,
    /// Truncating for integers; a zero divisor is a runtime error; `MIN / -1 == MIN`.
    Div,
    /// Sign of the dividend; a zero divisor is a runtime error; `MIN % -1 == 0`. Floats: fmod.
    Rem,
    /// Bitwise on integers, logical (no short circuit) on `bool`.
    And,
    Or,
    Xor,
    /// The amount is taken modulo the bit width.
    Shl,
    /// Arithmetic for signed, logical for unsigned; amount modulo the bit width.
    Shr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// NaN-propagating, `-0.0 < +0.0` (IEEE 754-2019 `minimum`).
    Min,
    /// NaN-propagating, `-0.0 < +0.0` (IEEE 754-2019 `maximum`).
    Max,
    Atan2,
    Pow,
    Hypot,
    Copysign,
}

impl BinaryOp {
    /// Every binary operator.
    pub const ALL: [BinaryOp; 22] = {
        use BinaryOp::*;
        [
            Add, Sub, Mul, Div, Rem, And, Or, Xor, Shl, Shr, Eq, Ne, Lt, Le, Gt, Ge, Min, Max,
            Atan2, Pow, Hypot, Copysign,
        ]
    };

    /// The name in IR text.
    pub fn name(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "add",
            Sub => "sub",
            Mul => "mul",
            Div => "div",
            Rem => "rem",
            And => "and",
            Or => "or",
            Xor => "xor",
            Shl => "shl",
            Shr => "shr",
            Eq => "eq",
            Ne => "ne",
            Lt => "lt",
            Le => "le",
            Gt => "gt",
            Ge => "ge",
            Min => "min",
            Max => "max",
            Atan2 => "atan2",
            Pow => "pow",
            Hypot => "hypot",
            Copysign => "copysign",
        }
    }

    /// Comparisons, whose result is `bool`.
    pub fn is_comparison(self) -> bool {
        use BinaryOp::*;
        matches!(self, Eq | Ne | Lt | Le | Gt | Ge)
    }

    /// `atan2 pow hypot copysign`.
    pub fn float_only(self) -> bool {
        use BinaryOp::*;
        matches!(self, Atan2 | Pow | Hypot | Copysign)
    }

    /// `and or xor`: integers or `bool`.
    pub fn is_bitwise(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor)
    }

    /// `shl shr`.
    pub fn is_shift(self) -> bool {
        matches!(self, BinaryOp::Shl | BinaryOp::Shr)
    }

    /// Operators that can fail at run time (integer division and remainder).
    pub fn can_trap(self) -> bool {
        matches!(self, BinaryOp::Div | BinaryOp::Rem)
    }
}

/// A jump target with its arguments (one per block parameter).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockCall {
    /// Target block.
    pub block: Block,
    /// Arguments for its parameters.
    pub args: Vec<Value>,
}

/// What an instruction does. Terminators are `Jump`, `Branch` and `Return`.
#[derive(Clone, Debug, PartialEq)]
pub enum InstKind {
    /// A constant; the result has the constant's type.
    Const(Scalar),
    /// `op x`.
    Unary(UnaryOp, Value),
    /// `op a, b`.
    Binary(BinaryOp, Value, Value),
    /// `a * b + c` with one rounding.
    Fma(Value, Value, Value),
    /// `cond ? a : b`; both operands are already evaluated.
    Select(Value, Value, Value),
    /// Conversion to the result's type (spec §2: saturating float→int, wrapping int→int).
    Cast(Value),
    /// Reinterprets the bits of a float as the unsigned integer of its width, or the
    /// reverse (`to_bits`, `from_bits`): `f32 ↔ u32`, `f64 ↔ u64`.
    Bitcast(Value),
    /// Call of another kernel of the module; one result per callee result.
    Call(KernelId, Vec<Value>),
    /// Runtime error unless the `bool` operand is true.
    Assert(Value),
    /// Unconditional jump.
    Jump(BlockCall),
    /// Two-way branch on a `bool`.
    Branch(Value, BlockCall, BlockCall),
    /// Return the kernel's results.
    Return(Vec<Value>),
}

impl InstKind {
    /// Jumps, branches and returns end a block.
    pub fn is_terminator(&self) -> bool {
        matches!(
            self,
            InstKind::Jump(_) | InstKind::Branch(..) | InstKind::Return(_)
        )
    }

    /// The value operands, in order (block-call arguments included).
    pub fn operands(&self) -> Vec<Value> {
        match self {
            InstKind::Const(_) => vec![],
            InstKind::Unary(_, x)
            | InstKind::Cast(x)
            | InstKind::Bitcast(x)
            | InstKind::Assert(x) => {
                vec![*x]
            }
            InstKind::Binary(_, a, b) => vec![*a, *b],
            InstKind::Fma(a, b, c) | InstKind::Select(a, b, c) => vec![*a, *b, *c],
            InstKind::Call(_, args) | InstKind::Return(args) => args.clone(),
            InstKind::Jump(t) => t.args.clone(),
            InstKind::Branch(c, t, e) => {
                let mut v = vec![*c];
                v.extend(&t.args);
                v.extend(&e.args);
                v
            }
        }
    }

    /// Applies `f` to every value operand in place.
    pub fn map_operands(&mut self, mut f: impl FnMut(Value) -> Value) {
        match self {
            InstKind::Const(_) => {}
            InstKind::Unary(_, x)
            | InstKind::Cast(x)
            | InstKind::Bitcast(x)
            | InstKind::Assert(x) => *x = f(*x),
            InstKind::Binary(_, a, b) => {
                *a = f(*a);
                *b = f(*b);
            }
            InstKind::Fma(a, b, c) | InstKind::Select(a, b, c) => {
                *a = f(*a);
                *b = f(*b);
                *c = f(*c);
            }
            InstKind::Call(_, args) | InstKind::Return(args) => {
                args.iter_mut().for_each(|v| *v = f(*v))
            }
            InstKind::Jump(t) => t.args.iter_mut().for_each(|v| *v = f(*v)),
            InstKind::Branch(c, t, e) => {
                *c = f(*c);
                t.args.iter_mut().for_each(|v| *v = f(*v));
                e.args.iter_mut().for_each(|v| *v = f(*v));
            }
        }
    }

    /// The successor blocks of a terminator.
    pub fn successors(&self) -> Vec<&BlockCall> {
        match self {
            InstKind::Jump(t) => vec![t],
            InstKind::Branch(_, t, e) => vec![t, e],
            _ => vec![],
        }
    }

    /// Mutable successor block calls.
    pub fn successors_mut(&mut self) -> Vec<&mut BlockCall> {
        match self {
            InstKind::Jump(t) => vec![t],
            InstKind::Branch(_, t, e) => vec![t, e],
            _ => vec![],
        }
    }

    /// Whether removing it (when its results are unused) changes behaviour: calls, asserts,
    /// terminators, and integer division (which can fail).
    pub fn has_side_effects(&self, is_int_op: bool) -> bool {
        match self {
            InstKind::Call(..) | InstKind::Assert(_) => true,
            InstKind::Binary(op, ..) => is_int_op && op.can_trap(),
            other => other.is_terminator(),
        }
    }
}
