//! The abstract syntax tree. Every node carries the [`Span`] of the text it came from.
//!
//! The tree is what the parser saw, nothing more: names are unresolved strings, literals keep
//! their text, and M2 constructs (`gufunc`, `kernel`, array types, `out` parameters) are
//! represented so that the checker can reject them with a precise message.
//!
//! Invariant: every [`Expr`] records its nesting depth, and the parser rejects trees deeper
//! than [`crate::MAX_DEPTH`]. Every recursive walk over the tree (checking, lowering, and
//! `Drop`) is therefore bounded, whatever the input.

use crate::span::Span;

/// A name with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

/// A parsed source file: items and top-level (script) statements, in source order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Module {
    /// Items and statements in source order.
    pub entries: Vec<TopLevel>,
}

/// One entry of a file.
#[derive(Clone, Debug, PartialEq)]
pub enum TopLevel {
    /// A definition.
    Item(Box<Item>),
    /// A script statement, run by `kiln run` in order.
    Stmt(Stmt),
}

/// What kind of callable an [`Item`] defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// `fn`: a scalar helper, always inlined.
    Fn,
    /// `ufunc`: an elementwise kernel.
    Ufunc,
    /// `reduce`: an associative combine with an identity.
    Reduce,
    /// `gufunc` (M2).
    Gufunc,
    /// `kernel` (M2).
    Kernel,
}

impl ItemKind {
    /// The keyword that introduces it.
    pub fn keyword(self) -> &'static str {
        match self {
            ItemKind::Fn => "fn",
            ItemKind::Ufunc => "ufunc",
            ItemKind::Reduce => "reduce",
            ItemKind::Gufunc => "gufunc",
            ItemKind::Kernel => "kernel",
        }
    }
}

/// A top-level definition.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `const NAME: T = e;`
    Const(ConstDef),
    /// `fn`, `ufunc`, `reduce`, `gufunc` or `kernel`.
    Func(FuncDef),
}

impl Item {
    /// The item's name.
    pub fn name(&self) -> &Ident {
        match self {
            Item::Const(c) => &c.name,
            Item::Func(f) => &f.name,
        }
    }

    /// Where the item is written.
    pub fn span(&self) -> Span {
        match self {
            Item::Const(c) => c.span,
            Item::Func(f) => f.span,
        }
    }

    /// The item's doc comment (`///` lines), if any.
    pub fn doc(&self) -> Option<&str> {
        match self {
            Item::Const(c) => c.doc.as_deref(),
            Item::Func(f) => f.doc.as_deref(),
        }
    }
}

/// `const NAME: T = value;`
#[derive(Clone, Debug, PartialEq)]
pub struct ConstDef {
    /// Name.
    pub name: Ident,
    /// Declared type.
    pub ty: TypeExpr,
    /// Initialiser.
    pub value: Expr,
    /// Doc comment.
    pub doc: Option<String>,
    /// The whole item.
    pub span: Span,
}

/// A generic parameter `T: class`.
#[derive(Clone, Debug, PartialEq)]
pub struct Generic {
    /// `T`.
    pub name: Ident,
    /// `float`, `int` or `num` (checked later).
    pub class: Ident,
}

/// A parameter `name: T`, or `out name: T` (M2).
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Name.
    pub name: Ident,
    /// Type.
    pub ty: TypeExpr,
    /// Written with `out`.
    pub is_out: bool,
    /// The whole parameter.
    pub span: Span,
}

/// `over i in a..b` or `over (i, j) in (a..b, c..d)` of an index-space kernel (M2).
#[derive(Clone, Debug, PartialEq)]
pub struct OverClause {
    /// Index names.
    pub vars: Vec<Ident>,
    /// One range per index.
    pub ranges: Vec<Range>,
    /// The whole clause.
    pub span: Span,
}

/// A function-like item.
#[derive(Clone, Debug, PartialEq)]
pub struct FuncDef {
    /// Which keyword.
    pub kind: ItemKind,
    /// Name.
    pub name: Ident,
    /// `<T: float, ...>`.
    pub generics: Vec<Generic>,
    /// Parameters.
    pub params: Vec<Param>,
    /// `-> T`, if written.
    pub ret: Option<TypeExpr>,
    /// `identity e` of a reduce.
    pub identity: Option<Expr>,
    /// `over ...` of a kernel (M2).
    pub over: Option<OverClause>,
    /// The body (an [`ExprKind::Block`]).
    pub body: Expr,
    /// Doc comment.
    pub doc: Option<String>,
    /// From the keyword to the end of the header (`{` excluded), for diagnostics.
    pub header_span: Span,
    /// The whole item.
    pub span: Span,
}

/// A type as written.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeExpr {
    /// A scalar type or a generic parameter: `f64`, `T`.
    Named(Ident),
    /// `(T, U)`.
    Tuple(Vec<TypeExpr>, Span),
    /// `[T; n]`, `[T; r, c]` (M2).
    Array(Box<TypeExpr>, Vec<Expr>, Span),
}

impl TypeExpr {
    /// Where it was written.
    pub fn span(&self) -> Span {
        match self {
            TypeExpr::Named(i) => i.span,
            TypeExpr::Tuple(_, s) | TypeExpr::Array(_, _, s) => *s,
        }
    }
}

/// A statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    /// What it does.
    pub kind: StmtKind,
    /// Where.
    pub span: Span,
}

/// The left side of a `let`.
#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    /// `let x`.
    Name(Ident),
    /// `let (a, b)`.
    Tuple(Vec<Ident>, Span),
}

/// Statement kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `let p (: T)? = e;`
    Let {
        /// Bound names.
        pat: Pattern,
        /// Annotation.
        ty: Option<TypeExpr>,
        /// Value.
        value: Expr,
    },
    /// `var x (: T)? = e;`
    Var {
        /// Name.
        name: Ident,
        /// Annotation.
        ty: Option<TypeExpr>,
        /// Initial value.
        value: Expr,
    },
    /// `target = e;` or `target op= e;`
    Assign {
        /// A name or an index expression.
        target: Expr,
        /// `Some(op)` for `op=`.
        op: Option<BinOp>,
        /// Value.
        value: Expr,
    },
    /// An expression statement. `semi` is false for a block-like expression (`if`, `while`,
    /// `for`, `{}`) written without `;`.
    Expr {
        /// The expression.
        expr: Expr,
        /// Followed by `;`.
        semi: bool,
    },
    /// A statement the parser could not read (its error was reported).
    Error,
}

/// An expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
    /// Nesting depth of this expression (a leaf is 1); bounded by [`crate::MAX_DEPTH`].
    pub depth: u32,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `&`
    BitAnd,
    /// `|`
    BitOr,
    /// `^`
    BitXor,
    /// `<<`
    Shl,
    /// `>>`
    Shr,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `&&` (short-circuit)
    And,
    /// `||` (short-circuit)
    Or,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }

    /// `==`, `!=`, `<`, `<=`, `>`, `>=`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        )
    }
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// `-x`
    Neg,
    /// `!x`: logical not on `bool`, bitwise not on integers.
    Not,
}

/// A literal as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// An integer literal: its value and optional suffix type name.
    Int {
        /// The value (literals are non-negative; `-` is an operator).
        value: u64,
        /// `i32`, `u64`, … if suffixed.
        suffix: Option<&'static str>,
    },
    /// A float literal: its text without `_` and suffix, decoded per target type later so
    /// that `f32` literals are rounded once, from the decimal text.
    Float {
        /// Decimal text, `_` removed, suffix removed.
        text: String,
        /// `f32` or `f64` if suffixed.
        suffix: Option<&'static str>,
    },
    /// `true` / `false`.
    Bool(bool),
    /// A string (script builtins only); escapes already decoded.
    Str(String),
}

/// A range `a..b` or `a..=b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Range {
    /// Start (inclusive).
    pub start: Box<Expr>,
    /// End.
    pub end: Box<Expr>,
    /// `..=`.
    pub inclusive: bool,
}

/// A block `{ stmts; tail }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// Statements.
    pub stmts: Vec<Stmt>,
    /// The final expression without `;`, the block's value.
    pub tail: Option<Box<Expr>>,
}

/// Expression kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A literal.
    Lit(Literal),
    /// A name.
    Name(Ident),
    /// `-e`, `!e`.
    Unary(UnOp, Box<Expr>),
    /// `a op b`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `e as T`.
    Cast(Box<Expr>, TypeExpr),
    /// `f(args)`.
    Call(Ident, Vec<Expr>),
    /// `a[i, j]` (M2).
    Index(Box<Expr>, Vec<Expr>),
    /// `(a, b)`.
    Tuple(Vec<Expr>),
    /// `{ ... }`.
    Block(Block),
    /// `if c { } else { }`; `else_` is a block or another `if`.
    If(Box<Expr>, Box<Expr>, Option<Box<Expr>>),
    /// `while c { }`.
    While(Box<Expr>, Box<Expr>),
    /// `for i in a..b { }`.
    For(Ident, Range, Box<Expr>),
    /// `break`.
    Break,
    /// `continue`.
    Continue,
    /// `return e` / `return`.
    Return(Option<Box<Expr>>),
    /// An expression the parser could not read (its error was reported).
    Error,
}
