//! Helpers called by the grammar's actions: node construction with the depth bound, and
//! literal decoding. Every fallible helper returns a lalrpop `ParseError::User`, so a bad
//! literal or an over-deep tree becomes an ordinary syntax error with a span.

use lalrpop_util::ParseError;

use crate::ast::*;
use crate::lexer::{SyntaxError, Token};
use crate::span::Span;
use crate::MAX_DEPTH;

/// The result type of fallible grammar actions.
pub type ActionResult<'s, T> = Result<T, ParseError<usize, Token<'s>, SyntaxError>>;

pub fn span(l: usize, r: usize) -> Span {
    Span::new(l, r)
}

pub fn ident(name: &str, l: usize, r: usize) -> Ident {
    Ident {
        name: name.to_string(),
        span: span(l, r),
    }
}

fn user_error<'s, T>(span: Span, message: impl Into<String>) -> ActionResult<'s, T> {
    Err(ParseError::User {
        error: SyntaxError {
            span,
            message: message.into(),
        },
    })
}

fn depth_of_stmt(s: &Stmt) -> u32 {
    match &s.kind {
        StmtKind::Let { value, .. } | StmtKind::Var { value, .. } => value.depth,
        StmtKind::Assign { target, value, .. } => target.depth.max(value.depth),
        StmtKind::Expr { expr, .. } => expr.depth,
        StmtKind::Error => 0,
    }
}

/// The depth of an expression's deepest direct child.
fn child_depth(kind: &ExprKind) -> u32 {
    let max = |es: &[Expr]| es.iter().map(|e| e.depth).max().unwrap_or(0);
    match kind {
        ExprKind::Lit(_)
        | ExprKind::Name(_)
        | ExprKind::Break
        | ExprKind::Continue
        | ExprKind::Error => 0,
        ExprKind::Unary(_, e) | ExprKind::Cast(e, _) => e.depth,
        ExprKind::Binary(_, a, b) | ExprKind::While(a, b) => a.depth.max(b.depth),
        ExprKind::Call(_, args) | ExprKind::Tuple(args) => max(args),
        ExprKind::Index(e, idx) => e.depth.max(max(idx)),
        ExprKind::Block(b) => b
            .stmts
            .iter()
            .map(depth_of_stmt)
            .chain(b.tail.iter().map(|t| t.depth))
            .max()
            .unwrap_or(0),
        ExprKind::If(c, t, e) => c.depth.max(t.depth).max(e.as_ref().map_or(0, |e| e.depth)),
        ExprKind::For(_, r, body) => r.start.depth.max(r.end.depth).max(body.depth),
        ExprKind::Return(e) => e.as_ref().map_or(0, |e| e.depth),
    }
}

/// Builds a node, enforcing the depth bound.
pub fn node_span<'s>(kind: ExprKind, span: Span) -> ActionResult<'s, Expr> {
    let depth = child_depth(&kind) + 1;
    if depth > MAX_DEPTH {
        return user_error(
            span,
            format!(
                "expression nested too deeply (more than {MAX_DEPTH} levels); split it with `let`"
            ),
        );
    }
    Ok(Expr { kind, span, depth })
}

pub fn node<'s>(kind: ExprKind, l: usize, r: usize) -> ActionResult<'s, Expr> {
    node_span(kind, span(l, r))
}

pub fn binary<'s>(op: BinOp, a: Expr, b: Expr) -> ActionResult<'s, Expr> {
    let s = a.span.to(b.span);
    node_span(ExprKind::Binary(op, Box::new(a), Box::new(b)), s)
}

/// `(e)`: the inner expression, with the parentheses included in its span.
pub fn paren(mut e: Expr, l: usize, r: usize) -> Expr {
    e.span = span(l, r);
    e
}

pub fn tuple<'s>(first: Expr, mut rest: Vec<Expr>, l: usize, r: usize) -> ActionResult<'s, Expr> {
    rest.insert(0, first);
    node(ExprKind::Tuple(rest), l, r)
}

pub fn stmt(kind: StmtKind, l: usize, r: usize) -> Stmt {
    Stmt {
        kind,
        span: span(l, r),
    }
}

pub fn block<'s>(
    stmts: Vec<Stmt>,
    tail: Option<Expr>,
    l: usize,
    r: usize,
) -> ActionResult<'s, Expr> {
    node(ExprKind::Block(finish_block(stmts, tail)), l, r)
}

/// A block-like statement without `;` at the end of a block is the block's value (Rust's rule).
fn finish_block(mut stmts: Vec<Stmt>, tail: Option<Expr>) -> Block {
    let tail = match tail {
        Some(t) => Some(Box::new(t)),
        None => match stmts.last() {
            Some(Stmt {
                kind: StmtKind::Expr { semi: false, .. },
                ..
            }) => match stmts.pop().map(|s| s.kind) {
                Some(StmtKind::Expr { expr, .. }) => Some(Box::new(expr)),
                _ => None,
            },
            _ => None,
        },
    };
    Block { stmts, tail }
}

pub fn module(mut entries: Vec<TopLevel>, tail: Option<(usize, Expr, usize)>) -> Module {
    if let Some((l, expr, r)) = tail {
        entries.push(TopLevel::Stmt(stmt(
            StmtKind::Expr { expr, semi: false },
            l,
            r,
        )));
    }
    Module { entries }
}

const SUFFIXES: [&str; 6] = ["i32", "i64", "u32", "u64", "f32", "f64"];

fn split_suffix(text: &str) -> (&str, Option<&'static str>) {
    for s in SUFFIXES {
        if let Some(body) = text.strip_suffix(s) {
            // `0xf32` is the hex number f32, not 0x with a suffix; hex digits never include
            // `i` or `u`, so only float suffixes need this check.
            let hex_digits = text.starts_with("0x") && s.starts_with('f');
            if !hex_digits && !body.is_empty() {
                return (body, Some(s));
            }
        }
    }
    (text, None)
}

pub fn int_literal<'s>(text: &'s str, l: usize, r: usize) -> ActionResult<'s, Literal> {
    let (body, suffix) = split_suffix(text);
    let digits: String = body.chars().filter(|&c| c != '_').collect();
    let (radix, digits) = if let Some(d) = digits.strip_prefix("0x") {
        (16, d.to_string())
    } else if let Some(d) = digits.strip_prefix("0b") {
        (2, d.to_string())
    } else {
        (10, digits)
    };
    if digits.is_empty() {
        return user_error(
            span(l, r),
            format!("integer literal `{text}` has no digits"),
        );
    }
    if matches!(suffix, Some("f32" | "f64")) {
        if radix != 10 {
            return user_error(span(l, r), "a float literal must be decimal");
        }
        return Ok(Literal::Float {
            text: digits,
            suffix,
        });
    }
    match u64::from_str_radix(&digits, radix) {
        Ok(value) => Ok(Literal::Int { value, suffix }),
        Err(_) => user_error(
            span(l, r),
            format!("integer literal `{text}` is too large (the largest is u64::MAX)"),
        ),
    }
}

pub fn float_literal<'s>(text: &'s str, l: usize, r: usize) -> ActionResult<'s, Literal> {
    let (body, suffix) = split_suffix(text);
    let digits: String = body.chars().filter(|&c| c != '_').collect();
    if digits.parse::<f64>().is_err() {
        return user_error(span(l, r), format!("malformed float literal `{text}`"));
    }
    Ok(Literal::Float {
        text: digits,
        suffix,
    })
}

pub fn string_literal<'s>(text: &'s str, l: usize, r: usize) -> ActionResult<'s, Literal> {
    let inner = &text[1..text.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some((_, '\\')) => out.push('\\'),
            Some((_, '"')) => out.push('"'),
            Some((_, 'n')) => out.push('\n'),
            Some((j, other)) => {
                let at = l + 1 + i;
                return user_error(
                    span(at, l + 1 + j + other.len_utf8()),
                    format!(
                        "unknown escape `\\{}` (Kiln strings know `\\\\`, `\\\"` and `\\n`)",
                        other.escape_debug()
                    ),
                );
            }
            None => return user_error(span(l, r), "string ends with `\\`"),
        }
    }
    Ok(Literal::Str(out))
}
