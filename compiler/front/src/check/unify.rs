//! Literal types and unification: how unsuffixed literals get their types.

use kiln_ir::ScalarType;
use kiln_syntax::ast::BinOp;

use crate::builtins::Builtin;
use crate::typed::*;
use crate::types::{Class, Ty};

/// Replaces a callee's generic parameters by the call's type arguments.
pub(crate) fn substitute(t: &Ty, targs: &[Ty]) -> Ty {
    match t {
        Ty::Param(i, _, _) => targs.get(*i as usize).cloned().unwrap_or(Ty::Error),
        Ty::Tuple(ts) => Ty::Tuple(ts.iter().map(|t| substitute(t, targs)).collect()),
        other => other.clone(),
    }
}

/// The type two expressions can share, if any (spec §2: no implicit conversions; literals
/// adapt).
pub(super) fn unify(a: &Ty, b: &Ty) -> Option<Ty> {
    use Ty::*;
    match (a, b) {
        (Error, x) | (x, Error) => Some(x.clone()),
        (Never, x) | (x, Never) => Some(x.clone()),
        (x, y) if x == y => Some(x.clone()),
        (IntLit, FloatLit) | (FloatLit, IntLit) => Some(FloatLit),
        (IntLit, Scalar(s)) | (Scalar(s), IntLit) if s.is_numeric() => Some(Scalar(*s)),
        (FloatLit, Scalar(s)) | (Scalar(s), FloatLit) if s.is_float() => Some(Scalar(*s)),
        (IntLit, p @ Param(..)) | (p @ Param(..), IntLit) => Some(p.clone()),
        (FloatLit, p @ Param(_, _, Class::Float)) | (p @ Param(_, _, Class::Float), FloatLit) => {
            Some(p.clone())
        }
        (Tuple(xs), Tuple(ys)) if xs.len() == ys.len() => {
            let parts: Option<Vec<Ty>> = xs.iter().zip(ys).map(|(x, y)| unify(x, y)).collect();
            parts.map(Tuple)
        }
        _ => None,
    }
}

/// Whether a type is, or contains, a literal's flexible type.
pub(super) fn has_flexible(t: &Ty) -> bool {
    match t {
        Ty::Tuple(ts) => ts.iter().any(has_flexible),
        t => t.is_flexible(),
    }
}

/// The type with literal types replaced by their defaults (`i64`, `f64`).
pub(super) fn default_ty(t: &Ty) -> Ty {
    match t {
        Ty::IntLit => Ty::I64,
        Ty::FloatLit => Ty::Scalar(ScalarType::F64),
        Ty::Tuple(ts) => Ty::Tuple(ts.iter().map(default_ty).collect()),
        t => t.clone(),
    }
}

/// Gives the flexible (literal-typed) parts of `e` the type `t`.
pub(super) fn finalize(e: &mut TExpr, t: &Ty) {
    if !has_flexible(&e.ty) || e.ty == *t {
        return;
    }
    e.ty = t.clone();
    match &mut e.kind {
        TExprKind::Tuple(items) => {
            if let Ty::Tuple(ts) = t {
                for (it, t) in items.iter_mut().zip(ts) {
                    finalize(it, t);
                }
            }
        }
        TExprKind::Unary(_, x) => finalize(x, t),
        TExprKind::Binary(op, a, b) => {
            if op.is_comparison() || matches!(op, BinOp::And | BinOp::Or) {
                return;
            }
            finalize(a, t);
            if !matches!(op, BinOp::Shl | BinOp::Shr) {
                finalize(b, t);
            }
        }
        TExprKind::If(_, a, Some(b)) => {
            finalize(a, t);
            finalize(b, t);
        }
        TExprKind::Block(b) => {
            if let Some(tail) = &mut b.tail {
                finalize(tail, t);
            }
        }
        TExprKind::Builtin(b, args) => {
            let skip = usize::from(*b == Builtin::Select);
            for a in args.iter_mut().skip(skip) {
                finalize(a, t);
            }
        }
        _ => {}
    }
}
