//! Scalar types and constant values.

use std::fmt;

/// A scalar type: the only types IR values have. Tuples exist only in the front end; in IR
/// they are several values (several results of a call, several operands of `return`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScalarType {
    /// `bool`
    Bool,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `u32`
    U32,
    /// `u64`
    U64,
    /// `f32`
    F32,
    /// `f64`
    F64,
}

impl ScalarType {
    /// Every scalar type, in declaration order.
    pub const ALL: [ScalarType; 7] = [
        ScalarType::Bool,
        ScalarType::I32,
        ScalarType::I64,
        ScalarType::U32,
        ScalarType::U64,
        ScalarType::F32,
        ScalarType::F64,
    ];

    /// The type's name in source and IR text.
    pub fn name(self) -> &'static str {
        match self {
            ScalarType::Bool => "bool",
            ScalarType::I32 => "i32",
            ScalarType::I64 => "i64",
            ScalarType::U32 => "u32",
            ScalarType::U64 => "u64",
            ScalarType::F32 => "f32",
            ScalarType::F64 => "f64",
        }
    }

    /// Parses a type name.
    pub fn from_name(name: &str) -> Option<ScalarType> {
        ScalarType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// `i32 i64 u32 u64`.
    pub fn is_int(self) -> bool {
        matches!(
            self,
            ScalarType::I32 | ScalarType::I64 | ScalarType::U32 | ScalarType::U64
        )
    }

    /// `i32 i64`.
    pub fn is_signed_int(self) -> bool {
        matches!(self, ScalarType::I32 | ScalarType::I64)
    }

    /// `f32 f64`.
    pub fn is_float(self) -> bool {
        matches!(self, ScalarType::F32 | ScalarType::F64)
    }

    /// Integer or float.
    pub fn is_numeric(self) -> bool {
        self.is_int() || self.is_float()
    }

    /// Width in bits (1 for bool).
    pub fn bits(self) -> u32 {
        match self {
            ScalarType::Bool => 1,
            ScalarType::I32 | ScalarType::U32 | ScalarType::F32 => 32,
            ScalarType::I64 | ScalarType::U64 | ScalarType::F64 => 64,
        }
    }
}

impl fmt::Display for ScalarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A typed scalar value: IR constants, interpreter values, script values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// `bool`
    Bool(bool),
    /// `i32`
    I32(i32),
    /// `i64`
    I64(i64),
    /// `u32`
    U32(u32),
    /// `u64`
    U64(u64),
    /// `f32`
    F32(f32),
    /// `f64`
    F64(f64),
}

impl Scalar {
    /// Its type.
    pub fn ty(self) -> ScalarType {
        match self {
            Scalar::Bool(_) => ScalarType::Bool,
            Scalar::I32(_) => ScalarType::I32,
            Scalar::I64(_) => ScalarType::I64,
            Scalar::U32(_) => ScalarType::U32,
            Scalar::U64(_) => ScalarType::U64,
            Scalar::F32(_) => ScalarType::F32,
            Scalar::F64(_) => ScalarType::F64,
        }
    }

    /// The value's bits, zero-extended (two's complement for signed, IEEE for floats).
    pub fn to_bits(self) -> u64 {
        match self {
            Scalar::Bool(b) => b as u64,
            Scalar::I32(v) => v as u32 as u64,
            Scalar::I64(v) => v as u64,
            Scalar::U32(v) => v as u64,
            Scalar::U64(v) => v,
            Scalar::F32(v) => v.to_bits() as u64,
            Scalar::F64(v) => v.to_bits(),
        }
    }

    /// The value of type `ty` whose bits are the low bits of `bits`.
    pub fn from_bits(ty: ScalarType, bits: u64) -> Scalar {
        match ty {
            ScalarType::Bool => Scalar::Bool(bits & 1 != 0),
            ScalarType::I32 => Scalar::I32(bits as u32 as i32),
            ScalarType::I64 => Scalar::I64(bits as i64),
            ScalarType::U32 => Scalar::U32(bits as u32),
            ScalarType::U64 => Scalar::U64(bits),
            ScalarType::F32 => Scalar::F32(f32::from_bits(bits as u32)),
            ScalarType::F64 => Scalar::F64(f64::from_bits(bits)),
        }
    }

    /// Same type and same bits, NaNs included: the equality the corpus harness and the
    /// differential tests use. (Every NaN a kernel returns is the canonical one, so
    /// executors that agree give the same NaN bits; see docs/language.md, "NaN".)
    pub fn same(self, other: Scalar) -> bool {
        self.ty() == other.ty() && self.to_bits() == other.to_bits()
    }

    /// This value, with a NaN replaced by the canonical quiet NaN (f32 `0x7fc00000`, f64
    /// `0x7ff8000000000000`): what every NaN leaving a kernel is (docs/language.md, "NaN").
    pub fn canonical_nan(self) -> Scalar {
        match self {
            Scalar::F32(v) if v.is_nan() => Scalar::F32(f32::from_bits(0x7fc0_0000)),
            Scalar::F64(v) if v.is_nan() => Scalar::F64(f64::from_bits(0x7ff8_0000_0000_0000)),
            other => other,
        }
    }

    /// Whether this is a float NaN.
    pub fn is_nan(self) -> bool {
        match self {
            Scalar::F32(v) => v.is_nan(),
            Scalar::F64(v) => v.is_nan(),
            _ => false,
        }
    }
}

/// Prints as Rust's `{:?}` does (spec §6): `1.0`, `-3`, `true`, `NaN`, `inf`.
impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(v) => write!(f, "{v:?}"),
            Scalar::I32(v) => write!(f, "{v:?}"),
            Scalar::I64(v) => write!(f, "{v:?}"),
            Scalar::U32(v) => write!(f, "{v:?}"),
            Scalar::U64(v) => write!(f, "{v:?}"),
            Scalar::F32(v) => write!(f, "{v:?}"),
            Scalar::F64(v) => write!(f, "{v:?}"),
        }
    }
}
