//! The typed AST the checker produces and lowering consumes: names resolved to locals,
//! items, consts and builtins; every expression typed; compound assignment desugared.
//! Generic items keep `Ty::Param` types; lowering substitutes them per specialisation.

use kiln_syntax::ast::{BinOp, ItemKind, UnOp};
use kiln_syntax::Span;

use crate::builtins::Builtin;
use crate::types::{Class, Ty};

/// A local variable of one body (item, const initialiser or script), by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalId(pub u32);

/// An item (`fn`, `ufunc`, `reduce`) of the program, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub u32);

/// A `const`, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConstId(pub u32);

/// What the checker knows of a local.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalInfo {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: Ty,
    /// Declared with `var`.
    pub mutable: bool,
    /// How it was declared.
    pub origin: LocalOrigin,
    /// Where it was declared.
    pub span: Span,
}

/// How a local was declared (for diagnostics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalOrigin {
    /// `let` or `var`.
    Binding,
    /// A parameter.
    Param,
    /// A `for` loop variable.
    LoopVar,
}

/// A named float constant of spec §4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NamedConst {
    /// π
    Pi,
    /// e
    E,
    /// +∞
    Inf,
    /// A quiet NaN
    Nan,
    /// 1/√2
    Frac1Sqrt2,
    /// ln 2
    Ln2,
}

impl NamedConst {
    /// Looks up a constant by its source name.
    pub fn from_name(name: &str) -> Option<NamedConst> {
        Some(match name {
            "PI" => NamedConst::Pi,
            "E" => NamedConst::E,
            "INF" => NamedConst::Inf,
            "NAN" => NamedConst::Nan,
            "FRAC_1_SQRT_2" => NamedConst::Frac1Sqrt2,
            "LN_2" => NamedConst::Ln2,
            _ => return None,
        })
    }

    /// The source names, for suggestions.
    pub const NAMES: [&'static str; 6] = ["PI", "E", "INF", "NAN", "FRAC_1_SQRT_2", "LN_2"];

    /// The correctly rounded `f64` value.
    pub fn f64(self) -> f64 {
        use std::f64::consts;
        match self {
            NamedConst::Pi => consts::PI,
            NamedConst::E => consts::E,
            NamedConst::Inf => f64::INFINITY,
            NamedConst::Nan => f64::NAN,
            NamedConst::Frac1Sqrt2 => consts::FRAC_1_SQRT_2,
            NamedConst::Ln2 => consts::LN_2,
        }
    }

    /// The correctly rounded `f32` value (from the `f32` constants, not by rounding the
    /// `f64` ones, which could round twice).
    pub fn f32(self) -> f32 {
        use std::f32::consts;
        match self {
            NamedConst::Pi => consts::PI,
            NamedConst::E => consts::E,
            NamedConst::Inf => f32::INFINITY,
            NamedConst::Nan => f32::NAN,
            NamedConst::Frac1Sqrt2 => consts::FRAC_1_SQRT_2,
            NamedConst::Ln2 => consts::LN_2,
        }
    }
}

/// A literal, typed by the enclosing [`TExpr`].
#[derive(Clone, Debug, PartialEq)]
pub enum TLit {
    /// An integer literal; `negative` when written with a leading `-`, so that
    /// `-9223372036854775808` is a valid `i64`.
    Int {
        /// Magnitude.
        magnitude: u64,
        /// Negated.
        negative: bool,
    },
    /// A float literal's decimal text, decoded once per target type.
    Float(String),
    /// `true` / `false`.
    Bool(bool),
    /// A named constant.
    Named(NamedConst),
    /// A string.
    Str(String),
}

/// A typed expression.
#[derive(Clone, Debug, PartialEq)]
pub struct TExpr {
    /// What it is.
    pub kind: TExprKind,
    /// Its type.
    pub ty: Ty,
    /// Where.
    pub span: Span,
}

/// A typed block.
#[derive(Clone, Debug, PartialEq)]
pub struct TBlock {
    /// Statements.
    pub stmts: Vec<TStmt>,
    /// Value.
    pub tail: Option<Box<TExpr>>,
}

/// Typed expression kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum TExprKind {
    /// A literal.
    Lit(TLit),
    /// A local variable or parameter.
    Local(LocalId),
    /// A user constant.
    Const(ConstId),
    /// `-x`, `!x`.
    Unary(UnOp, Box<TExpr>),
    /// `a op b`; `&&` and `||` short-circuit.
    Binary(BinOp, Box<TExpr>, Box<TExpr>),
    /// `x as T` (`T` is the expression's type).
    Cast(Box<TExpr>),
    /// A builtin function.
    Builtin(Builtin, Vec<TExpr>),
    /// A call of an item with type arguments for its generic parameters.
    Call(ItemId, Vec<Ty>, Vec<TExpr>),
    /// `(a, b)`.
    Tuple(Vec<TExpr>),
    /// `{ ... }`.
    Block(TBlock),
    /// `if c { } else { }`.
    If(Box<TExpr>, Box<TExpr>, Option<Box<TExpr>>),
    /// `while c { }`.
    While(Box<TExpr>, Box<TExpr>),
    /// `for i in start..end { }` / `..=`.
    For {
        /// The loop variable (`i64`).
        var: LocalId,
        /// Start.
        start: Box<TExpr>,
        /// End.
        end: Box<TExpr>,
        /// `..=`.
        inclusive: bool,
        /// Body.
        body: Box<TExpr>,
    },
    /// `break`.
    Break,
    /// `continue`.
    Continue,
    /// `return e`.
    Return(Option<Box<TExpr>>),
    /// A script builtin on arrays (`linspace(..)`, `reduce(add, x)`, …): evaluated by the
    /// script runner, never lowered. The expression's type is the *element* type of the
    /// array it gives (or the reduction's result, or `()` for `save`).
    Array(ArrayFn, Vec<TExpr>),
    /// Placeholder for an expression with an error (never lowered).
    Error,
}

/// The script builtins on arrays (spec §6).
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayFn {
    /// `linspace(start, stop, n)`: `n` evenly spaced values, both ends included.
    Linspace,
    /// `arange(stop)`, `arange(start, stop)`, `arange(start, stop, step)`.
    Arange,
    /// `zeros(n)`: `f64` zeros.
    Zeros,
    /// `ones(n)`: `f64` ones.
    Ones,
    /// `full(n, v)`: `n` copies of `v`.
    Full,
    /// `random(n, seed)`: `n` uniform `f64` values in [0, 1), reproducible from `seed`.
    Random,
    /// `load(path)`: a `.npy` file; its dtype must be the expression's type.
    Load,
    /// `save(path, x)`: writes a `.npy` file.
    Save,
    /// `reduce(name, x)` (whole array) or `reduce(name, x, axis)`.
    Reduce {
        /// The `reduce` item.
        item: ItemId,
        /// Its type arguments.
        targs: Vec<kiln_ir::ScalarType>,
    },
}

impl ArrayFn {
    /// The builtin's name in source.
    pub fn name(&self) -> &'static str {
        match self {
            ArrayFn::Linspace => "linspace",
            ArrayFn::Arange => "arange",
            ArrayFn::Zeros => "zeros",
            ArrayFn::Ones => "ones",
            ArrayFn::Full => "full",
            ArrayFn::Random => "random",
            ArrayFn::Load => "load",
            ArrayFn::Save => "save",
            ArrayFn::Reduce { .. } => "reduce",
        }
    }
}

/// A typed statement.
#[derive(Clone, Debug, PartialEq)]
pub enum TStmt {
    /// `let`/`var`: binds one local per name (a tuple value to one name, or destructured).
    Let {
        /// The locals bound, one per name.
        locals: Vec<LocalId>,
        /// Whether the pattern destructures a tuple.
        destructure: bool,
        /// The value.
        value: TExpr,
    },
    /// `x = e` (compound assignment already desugared to `x = x op e`).
    Assign(LocalId, TExpr),
    /// An expression statement.
    Expr(TExpr),
    /// `print(a, b, ...)` in a script.
    Print(Vec<TExpr>, Span),
}

/// A checked `fn`, `ufunc` or `reduce`.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedItem {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: ItemKind,
    /// Generic parameters and their classes.
    pub generics: Vec<(String, Class)>,
    /// Parameter names, types and locals.
    pub params: Vec<(String, Ty, LocalId)>,
    /// Result type (`Unit` for none).
    pub ret: Ty,
    /// A reduce's identity, typed `ret`.
    pub identity: Option<TExpr>,
    /// The body.
    pub body: TExpr,
    /// Locals of the body (parameters first).
    pub locals: Vec<LocalInfo>,
    /// Doc comment.
    pub doc: Option<String>,
    /// The header, for diagnostics.
    pub header_span: Span,
}

/// A checked `const`.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedConst {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: Ty,
    /// Initialiser (may declare locals of its own).
    pub value: TExpr,
    /// Locals of the initialiser.
    pub locals: Vec<LocalInfo>,
    /// Doc comment.
    pub doc: Option<String>,
    /// Where.
    pub span: Span,
}

/// The script: top-level statements in order, with their locals.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Script {
    /// Statements.
    pub stmts: Vec<TStmt>,
    /// Locals of the script.
    pub locals: Vec<LocalInfo>,
}
