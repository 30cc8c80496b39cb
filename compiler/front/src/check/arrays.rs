//! The script builtins on arrays (spec §6): `linspace arange zeros ones full random load
//! save reduce`.
//!
//! Scripts type arrays by their *element* type: `let x = linspace(0.0, 1.0, 5);` gives `x`
//! the type `f64`, so `x * 2.0`, `sqrt(x)`, `x as f32` and ufunc calls on `x` are checked
//! exactly as they are on scalars. Whether a value is an array or a scalar is known when the
//! script runs: the runner applies any expression that reads an array elementwise.

use super::body::{Body, Owner};
use super::unify::default_ty;
use super::*;

/// Names of the array builtins (script only, spec §6).
pub const NAMES: [&str; 9] = [
    "reduce", "linspace", "arange", "zeros", "ones", "full", "random", "load", "save",
];

impl Body<'_, '_> {
    /// Checks a call of an array builtin; `None` if `f` is not one.
    pub(super) fn array_builtin(
        &mut self,
        f: &ast::Ident,
        args: &[Expr],
        span: Span,
        hint: Option<&Ty>,
    ) -> Option<TExpr> {
        if !NAMES.contains(&f.name.as_str()) {
            return None;
        }
        if self.owner != Owner::Script {
            let d = diag::error(
                self.cx.file,
                f.span,
                format!("`{}` works on arrays, which only scripts have", f.name),
                "not allowed in a kernel",
            );
            self.cx.diags.push(diag::note(
                d,
                "kernels see one element at a time; call them from a script with arrays",
            ));
            return Some(error_expr(span));
        }
        let f64_ = Ty::Scalar(ScalarType::F64);
        let t = |class| vec![("T".to_string(), class)];
        let param = |c| Ty::Param(0, "T".into(), c);
        let typed = |b: &mut Self, generics: Vec<(String, Class)>, params: Vec<Ty>, ret: Ty| {
            b.generic_call(
                &f.name, f.span, &generics, &params, &ret, args, span, hint, false,
            )
            .map(|(_, args, ret)| (args, ret))
        };
        let result = match f.name.as_str() {
            "linspace" => typed(
                self,
                t(Class::Float),
                vec![param(Class::Float), param(Class::Float), Ty::I64],
                param(Class::Float),
            )
            .map(|(a, r)| (ArrayFn::Linspace, a, r)),
            "arange" => {
                let n = args.len().clamp(1, 3);
                typed(
                    self,
                    t(Class::Num),
                    vec![param(Class::Num); n],
                    param(Class::Num),
                )
                .map(|(a, r)| (ArrayFn::Arange, a, r))
            }
            "zeros" | "ones" => {
                let which = if f.name == "zeros" {
                    ArrayFn::Zeros
                } else {
                    ArrayFn::Ones
                };
                typed(self, vec![], vec![Ty::I64], f64_).map(|(a, r)| (which, a, r))
            }
            "full" => typed(
                self,
                t(Class::Any),
                vec![Ty::I64, param(Class::Any)],
                param(Class::Any),
            )
            .map(|(a, r)| (ArrayFn::Full, a, r)),
            "random" => typed(self, vec![], vec![Ty::I64, Ty::I64], f64_)
                .map(|(a, r)| (ArrayFn::Random, a, r)),
            "load" => self.path_args(f, args, span, 1).map(|a| {
                // The element type comes from the annotation, `let z: f32 = load(..)`.
                let ty = match hint {
                    Some(h @ Ty::Scalar(_)) => h.clone(),
                    _ => Ty::Scalar(ScalarType::F64),
                };
                (ArrayFn::Load, a, ty)
            }),
            "save" => self
                .path_args(f, args, span, 2)
                .map(|a| (ArrayFn::Save, a, Ty::Unit)),
            _ => self.reduce_call(f, args, span),
        };
        Some(match result {
            Some((func, args, ty)) => TExpr {
                kind: TExprKind::Array(func, args),
                ty,
                span,
            },
            None => error_expr(span),
        })
    }

    /// `load(path)` / `save(path, x)`: a string literal, then `extra - 1` values.
    fn path_args(
        &mut self,
        f: &ast::Ident,
        args: &[Expr],
        span: Span,
        count: usize,
    ) -> Option<Vec<TExpr>> {
        if args.len() != count {
            self.cx.error(
                span,
                format!(
                    "`{}` takes {count} argument{}, but {} were given",
                    f.name,
                    if count == 1 { "" } else { "s" },
                    args.len()
                ),
                format!("expected {count}"),
            );
            return None;
        }
        let mut out: Vec<TExpr> = args.iter().map(|a| self.expr(a)).collect();
        if out[0].ty != Ty::Str {
            if out[0].ty != Ty::Error {
                self.cx.error(
                    out[0].span,
                    format!("`{}` needs a file name in quotes", f.name),
                    "not a string",
                );
            }
            return None;
        }
        for a in out.iter_mut().skip(1) {
            match &a.ty {
                Ty::Scalar(_) => {}
                Ty::IntLit | Ty::FloatLit => {
                    let t = default_ty(&a.ty);
                    super::unify::finalize(a, &t);
                }
                Ty::Error => return None,
                other => {
                    self.cx.error(
                        a.span,
                        format!("`{}` writes an array, found `{other}`", f.name),
                        "not an array",
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// `reduce(name, x)` or `reduce(name, x, axis)`.
    fn reduce_call(
        &mut self,
        f: &ast::Ident,
        args: &[Expr],
        span: Span,
    ) -> Option<(ArrayFn, Vec<TExpr>, Ty)> {
        if !(2..=3).contains(&args.len()) {
            self.cx.error(
                span,
                format!("`reduce` takes 2 or 3 arguments (a reduce item, an array, optionally an axis), but {} were given", args.len()),
                "expected `reduce(name, x)` or `reduce(name, x, axis)`",
            );
            return None;
        }
        let ExprKind::Name(name) = &args[0].kind else {
            self.cx.error(
                args[0].span,
                "the first argument of `reduce` names a `reduce` item",
                "not a name",
            );
            return None;
        };
        let Some(id) = self.cx.item_ids.get(&name.name).copied() else {
            let candidates = self
                .cx
                .item_ids
                .iter()
                .filter(|(_, id)| self.cx.sigs[id.0 as usize].kind == ItemKind::Reduce)
                .map(|(n, _)| n.as_str());
            let mut d = diag::error(
                self.cx.file,
                name.span,
                format!("no reduce item named `{}`", name.name),
                "not defined",
            );
            if let Some(s) = diag::suggest(&name.name, candidates) {
                d = diag::help(d, format!("did you mean `{s}`?"));
            }
            self.cx.diags.push(d);
            return None;
        };
        let sig = &self.cx.sigs[id.0 as usize];
        if sig.kind != ItemKind::Reduce {
            let kind = sig.kind.keyword();
            self.cx.error(
                name.span,
                format!("`{}` is a {kind}, not a reduce", name.name),
                "not a reduce item",
            );
            return None;
        }
        let (generics, params, ret) = (sig.generics.clone(), sig.params.clone(), sig.ret.clone());
        let (targs, mut targs_args, ret) = self.generic_call(
            &f.name,
            f.span,
            &generics,
            &params[..1],
            &ret,
            &args[1..2],
            span,
            None,
            false,
        )?;
        let targs: Vec<ScalarType> = targs
            .iter()
            .map(|t| match t {
                Ty::Scalar(s) => Some(*s),
                _ => None,
            })
            .collect::<Option<_>>()?;
        if let Some(axis) = args.get(2) {
            let (_, a, _) = self.generic_call(
                "reduce",
                f.span,
                &[],
                &[Ty::I64],
                &Ty::I64,
                std::slice::from_ref(axis),
                axis.span,
                None,
                false,
            )?;
            targs_args.extend(a);
        }
        Some((ArrayFn::Reduce { item: id, targs }, targs_args, ret))
    }
}

fn error_expr(span: Span) -> TExpr {
    TExpr {
        kind: TExprKind::Error,
        ty: Ty::Error,
        span,
    }
}
