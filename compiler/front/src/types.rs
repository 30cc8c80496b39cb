//! Types as the checker sees them: scalars, generic parameters, the flexible types of
//! unsuffixed literals, and tuples.

use std::fmt;

use kiln_ir::ScalarType;

/// A generic parameter's class (spec §3), plus `Any` for builtins such as `select`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// `f32 f64`
    Float,
    /// `i32 i64 u32 u64`
    Int,
    /// `int ∪ float`
    Num,
    /// Every scalar type, `bool` included (builtins only).
    Any,
}

impl Class {
    /// Parses a class name as written after `T:`.
    pub fn from_name(name: &str) -> Option<Class> {
        match name {
            "float" => Some(Class::Float),
            "int" => Some(Class::Int),
            "num" => Some(Class::Num),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Class::Float => "float",
            Class::Int => "int",
            Class::Num => "num",
            Class::Any => "any type",
        }
    }

    /// The member types, in a fixed order (specialisations are enumerated in this order).
    pub fn members(self) -> &'static [ScalarType] {
        use ScalarType::*;
        match self {
            Class::Float => &[F32, F64],
            Class::Int => &[I32, I64, U32, U64],
            Class::Num => &[I32, I64, U32, U64, F32, F64],
            Class::Any => &[Bool, I32, I64, U32, U64, F32, F64],
        }
    }

    /// Whether `t` is a member.
    pub fn contains(self, t: ScalarType) -> bool {
        self.members().contains(&t)
    }

    /// Whether every member of `self` is a member of `other`.
    pub fn within(self, other: Class) -> bool {
        self.members().iter().all(|&t| other.contains(t))
    }
}

/// A checker type.
#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    /// A scalar.
    Scalar(ScalarType),
    /// Generic parameter `n` of the item being checked, with its name and class.
    Param(u32, String, Class),
    /// An unsuffixed integer literal (or an expression of them): any numeric type.
    IntLit,
    /// An unsuffixed float literal (or an expression of them): any float type.
    FloatLit,
    /// A tuple of scalars or parameters.
    Tuple(Vec<Ty>),
    /// No value: statements, `if` without `else`, loops.
    Unit,
    /// Never produces a value: `return`, `break`, `continue`.
    Never,
    /// A string literal (script builtins only).
    Str,
    /// The type of an expression that already has an error: compatible with everything, so
    /// one mistake gives one diagnostic.
    Error,
}

impl Ty {
    /// Shorthand for a scalar type.
    pub const BOOL: Ty = Ty::Scalar(ScalarType::Bool);
    /// `i64`.
    pub const I64: Ty = Ty::Scalar(ScalarType::I64);

    /// Unsuffixed literal types, which take their type from context.
    pub fn is_flexible(&self) -> bool {
        matches!(self, Ty::IntLit | Ty::FloatLit)
    }

    /// The class of values this type may hold at run time: a scalar's own, a parameter's
    /// class, a literal's possibilities.
    pub fn may_be(&self, pred: impl Fn(ScalarType) -> bool) -> bool {
        match self {
            Ty::Scalar(s) => pred(*s),
            Ty::Param(_, _, c) => c.members().iter().any(|&t| pred(t)),
            Ty::IntLit => Class::Num.members().iter().any(|&t| pred(t)),
            Ty::FloatLit => Class::Float.members().iter().any(|&t| pred(t)),
            _ => false,
        }
    }

    /// Whether every value this type may hold satisfies `pred` (an error type satisfies
    /// everything, to avoid cascades).
    pub fn must_be(&self, pred: impl Fn(ScalarType) -> bool) -> bool {
        match self {
            Ty::Scalar(s) => pred(*s),
            Ty::Param(_, _, c) => c.members().iter().all(|&t| pred(t)),
            // A literal adapts, so it qualifies if some type it may become qualifies.
            Ty::IntLit => Class::Num.members().iter().any(|&t| pred(t)),
            Ty::FloatLit => Class::Float.members().iter().any(|&t| pred(t)),
            Ty::Error | Ty::Never => true,
            _ => false,
        }
    }

    /// Scalar or parameter (a single value).
    pub fn is_single(&self) -> bool {
        matches!(
            self,
            Ty::Scalar(_) | Ty::Param(..) | Ty::IntLit | Ty::FloatLit | Ty::Error | Ty::Never
        )
    }

    /// Substitutes generic parameters with concrete types and resolves literal types to their
    /// defaults. Returns the flattened scalar types (a tuple is several).
    pub fn flatten(&self, subst: &[ScalarType]) -> Vec<ScalarType> {
        match self {
            Ty::Scalar(s) => vec![*s],
            Ty::Param(i, _, _) => vec![subst[*i as usize]],
            Ty::IntLit => vec![ScalarType::I64],
            Ty::FloatLit => vec![ScalarType::F64],
            Ty::Tuple(ts) => ts.iter().flat_map(|t| t.flatten(subst)).collect(),
            Ty::Unit | Ty::Never | Ty::Str | Ty::Error => vec![],
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Scalar(s) => write!(f, "{s}"),
            Ty::Param(_, name, _) => f.write_str(name),
            Ty::IntLit => f.write_str("{integer}"),
            Ty::FloatLit => f.write_str("{float}"),
            Ty::Tuple(ts) => {
                let parts: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
                write!(f, "({})", parts.join(", "))
            }
            Ty::Unit => f.write_str("()"),
            Ty::Never => f.write_str("!"),
            Ty::Str => f.write_str("string"),
            Ty::Error => f.write_str("{error}"),
        }
    }
}
