//! Checking bodies: statements and expressions of items, const initialisers and the
//! script, with their locals and scopes.

use super::unify::{default_ty, finalize, has_flexible, substitute, unify};
use super::*;

/// Whose body is being checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Owner {
    Item(ItemId),
    Const(ConstId),
    Script,
}

pub(super) struct Body<'c, 's> {
    pub(super) cx: &'c mut Checker<'s>,
    pub(super) owner: Owner,
    pub(super) generics: Vec<(String, Class)>,
    /// `Some(ret)` in an item body: `return` is allowed.
    pub(super) ret: Option<Ty>,
    pub(super) locals: Vec<LocalInfo>,
    pub(super) scopes: Vec<HashMap<String, LocalId>>,
    pub(super) loop_depth: u32,
    /// True while checking statements of the script itself (not nested in an expression):
    /// where `print(...)` may appear.
    pub(super) script_level: bool,
}

impl<'c, 's> Body<'c, 's> {
    pub(super) fn new(
        cx: &'c mut Checker<'s>,
        owner: Owner,
        generics: Vec<(String, Class)>,
        ret: Option<Ty>,
    ) -> Self {
        Body {
            cx,
            owner,
            generics,
            ret,
            locals: vec![],
            scopes: vec![HashMap::new()],
            loop_depth: 0,
            script_level: false,
        }
    }

    fn file(&self) -> FileId {
        self.cx.file
    }

    fn declare(&mut self, name: &ast::Ident, ty: Ty, mutable: bool) -> LocalId {
        self.declare_as(name, ty, mutable, LocalOrigin::Binding)
    }

    pub(super) fn declare_as(
        &mut self,
        name: &ast::Ident,
        ty: Ty,
        mutable: bool,
        origin: LocalOrigin,
    ) -> LocalId {
        let id = LocalId(self.locals.len() as u32);
        self.locals.push(LocalInfo {
            name: name.name.clone(),
            ty,
            mutable,
            origin,
            span: name.span,
        });
        self.scopes
            .last_mut()
            .expect("a scope is open")
            .insert(name.name.clone(), id);
        id
    }

    fn lookup(&self, name: &str) -> Option<LocalId> {
        self.scopes.iter().rev().find_map(|s| s.get(name).copied())
    }

    fn error_expr(span: Span) -> TExpr {
        TExpr {
            kind: TExprKind::Error,
            ty: Ty::Error,
            span,
        }
    }

    /// Checks that `e` can have type `want` and fixes its literal types. `why` points at the
    /// written type that demands `want`, if any.
    pub(super) fn coerce(&mut self, mut e: TExpr, want: &Ty, why: Option<Span>) -> TExpr {
        if matches!(e.ty, Ty::Error | Ty::Never) || *want == Ty::Error {
            return e;
        }
        match unify(&e.ty, want) {
            Some(t) if t == *want => {
                finalize(&mut e, want);
                e
            }
            _ => {
                let found = e.ty.to_string();
                let mut d = diag::error(
                    self.file(),
                    value_span(&e),
                    format!("mismatched types: expected `{want}`, found `{found}`"),
                    format!("expected `{want}`"),
                );
                if let Some(w) = why {
                    d = diag::also(d, self.file(), w, format!("`{want}` because of this"));
                }
                d = self.conversion_help(d, &e, want);
                self.cx.diags.push(d);
                Body::error_expr(e.span)
            }
        }
    }

    fn conversion_help(&self, d: Diag, e: &TExpr, want: &Ty) -> Diag {
        let castable =
            |t: &Ty| matches!(t, Ty::Scalar(_) | Ty::Param(..) | Ty::IntLit | Ty::FloatLit);
        match (&e.ty, want) {
            (Ty::Unit, _) if matches!(e.kind, TExprKind::If(_, _, None)) => diag::help(
                d,
                "an `if` without `else` has no value; add an `else` branch",
            ),
            (from, Ty::Scalar(ScalarType::Bool)) if from.may_be(|s| s.is_numeric()) => {
                let text = self.cx.snippet(value_span(e));
                diag::help(
                    d,
                    format!("there is no truthiness; compare instead: `{text} != 0`"),
                )
            }
            (Ty::Scalar(ScalarType::Bool), _) | (_, Ty::Scalar(ScalarType::Bool)) => d,
            (from, to) if castable(from) && castable(to) => {
                let text = self.cx.cast_operand(value_span(e));
                diag::help(d, format!("convert with `as`: `{text} as {to}`"))
            }
            _ => d,
        }
    }

    /// Gives a flexible expression (or tuple of them) its default type (`i64`, `f64`).
    fn default(&mut self, mut e: TExpr) -> TExpr {
        if has_flexible(&e.ty) {
            let t = default_ty(&e.ty);
            finalize(&mut e, &t);
        }
        e
    }

    // ------------------------------------------------------------------ statements

    pub(super) fn stmt(&mut self, s: &Stmt) -> Option<TStmt> {
        let script_level = self.script_level;
        match &s.kind {
            StmtKind::Let { pat, ty, value } => {
                self.script_level = false;
                let (v, local_ty) = self.binding_value(ty.as_ref(), value);
                self.script_level = script_level;
                match pat {
                    Pattern::Name(name) => {
                        let local = self.declare(name, local_ty, false);
                        Some(TStmt::Let {
                            locals: vec![local],
                            destructure: false,
                            value: v,
                        })
                    }
                    Pattern::Tuple(names, _) if names.len() == 1 => {
                        // `let (x) = e;` is `let x = e;`, as in Rust.
                        let local = self.declare(&names[0], local_ty, false);
                        Some(TStmt::Let {
                            locals: vec![local],
                            destructure: false,
                            value: v,
                        })
                    }
                    Pattern::Tuple(names, span) => {
                        let parts = match &local_ty {
                            Ty::Tuple(ts) if ts.len() == names.len() => ts.clone(),
                            Ty::Error | Ty::Never => vec![local_ty.clone(); names.len()],
                            other => {
                                let d = diag::error(
                                    self.file(),
                                    v.span,
                                    format!(
                                        "expected a tuple of {} values, found `{other}`",
                                        names.len()
                                    ),
                                    format!("this is `{other}`"),
                                );
                                self.cx
                                    .diags
                                    .push(diag::also(d, self.file(), *span, "pattern"));
                                vec![Ty::Error; names.len()]
                            }
                        };
                        let locals = names
                            .iter()
                            .zip(parts)
                            .map(|(n, t)| self.declare(n, t, false))
                            .collect();
                        Some(TStmt::Let {
                            locals,
                            destructure: true,
                            value: v,
                        })
                    }
                }
            }
            StmtKind::Var { name, ty, value } => {
                self.script_level = false;
                let (v, local_ty) = self.binding_value(ty.as_ref(), value);
                self.script_level = script_level;
                let local = self.declare(name, local_ty, true);
                Some(TStmt::Let {
                    locals: vec![local],
                    destructure: false,
                    value: v,
                })
            }
            StmtKind::Assign { target, op, value } => {
                self.script_level = false;
                let r = self.assign(target, *op, value, s.span);
                self.script_level = script_level;
                r
            }
            StmtKind::Expr { expr, .. } => {
                if let ExprKind::Call(f, args) = &expr.kind {
                    if f.name == "print" && self.lookup_item(&f.name).is_none() {
                        if !script_level {
                            self.cx.error(
                                f.span,
                                "`print` can only be used as a statement of a script",
                                "not allowed here",
                            );
                            return None;
                        }
                        self.script_level = false;
                        let mut targs = Vec::new();
                        for a in args {
                            let t = self.expr(a);
                            let t = self.default(t);
                            if matches!(t.ty, Ty::Unit) {
                                self.cx.error(
                                    a.span,
                                    "this expression has no value to print",
                                    "no value",
                                );
                            }
                            targs.push(t);
                        }
                        self.script_level = script_level;
                        return Some(TStmt::Print(targs, expr.span));
                    }
                }
                let block_like = matches!(
                    expr.kind,
                    ExprKind::If(..) | ExprKind::While(..) | ExprKind::For(..) | ExprKind::Block(_)
                );
                if !block_like {
                    self.script_level = false;
                }
                let t = self.expr(expr);
                self.script_level = script_level;
                Some(TStmt::Expr(t))
            }
            StmtKind::Error => None,
        }
    }

    /// Checks the value of a `let`/`var`; returns it and the type of the bound local (the
    /// annotation when there is one, even if the value never arrives, like `return x`).
    fn binding_value(&mut self, ty: Option<&TypeExpr>, value: &Expr) -> (TExpr, Ty) {
        let (v, local_ty) = match ty {
            Some(te) => {
                let want = self.cx.resolve_type(te, &self.generics);
                let v = self.expr_hint(value, Some(&want));
                (self.coerce(v, &want, Some(te.span())), want)
            }
            None => {
                let v = self.expr(value);
                let v = self.default(v);
                let t = v.ty.clone();
                (v, t)
            }
        };
        if matches!(v.ty, Ty::Unit) {
            let d = diag::error(
                self.file(),
                v.span,
                "this expression has no value",
                "no value to bind",
            );
            self.cx.diags.push(diag::help(
                d,
                "loops, `if` without `else` and blocks ending in `;` have no value",
            ));
            return (Body::error_expr(v.span), Ty::Error);
        }
        if v.ty == Ty::Str {
            self.cx.error(
                v.span,
                "strings can only be passed to script builtins",
                "a string",
            );
            return (Body::error_expr(v.span), Ty::Error);
        }
        (v, local_ty)
    }

    fn assign(
        &mut self,
        target: &Expr,
        op: Option<BinOp>,
        value: &Expr,
        span: Span,
    ) -> Option<TStmt> {
        let name = match &target.kind {
            ExprKind::Name(n) => n,
            ExprKind::Index(..) => {
                self.cx.error(
                    target.span,
                    "assignment to array elements is not supported yet",
                    "arrays come in milestone M2",
                );
                return None;
            }
            _ => {
                self.cx.error(
                    target.span,
                    "cannot assign to this expression",
                    "only a `var` can be assigned",
                );
                return None;
            }
        };
        let Some(local) = self.lookup(&name.name) else {
            if self.cx.const_ids.contains_key(&name.name)
                || NamedConst::from_name(&name.name).is_some()
            {
                self.cx.error(
                    name.span,
                    format!("cannot assign to `{}`: it is a constant", name.name),
                    "constants cannot change",
                );
                let _ = self.expr(value);
                return None;
            }
            self.unknown_name(name);
            let _ = self.expr(value);
            return None;
        };
        let info = self.locals[local.0 as usize].clone();
        if !info.mutable {
            let d = diag::error(
                self.file(),
                name.span,
                format!(
                    "cannot assign to `{}`: it is not declared with `var`",
                    name.name
                ),
                "cannot assign",
            );
            let d = diag::also(d, self.file(), info.span, "declared here");
            let d = match info.origin {
                LocalOrigin::Binding => diag::help(d, format!("make it mutable: `var {} = ...`", name.name)),
                LocalOrigin::Param => diag::help(d, format!("parameters cannot change; copy it into a variable first: `var {0}2 = {0};`", name.name)),
                LocalOrigin::LoopVar => diag::help(d, "the loop variable cannot change; use a `while` loop with a `var` counter"),
            };
            self.cx.diags.push(d);
            let _ = self.expr(value);
            return None;
        }
        let rhs = self.expr_hint(value, Some(&info.ty));
        let new = match op {
            None => rhs,
            Some(op) => {
                let cur = TExpr {
                    kind: TExprKind::Local(local),
                    ty: info.ty.clone(),
                    span: name.span,
                };
                self.binary_typed(op, cur, rhs, span)
            }
        };
        let new = self.coerce(new, &info.ty, Some(info.span));
        Some(TStmt::Assign(local, new))
    }

    // ------------------------------------------------------------------ expressions

    pub(super) fn expr(&mut self, e: &Expr) -> TExpr {
        self.expr_hint(e, None)
    }

    /// Checks `e`; `hint` is the type the context expects, used only to infer a generic
    /// call's type parameter from its result.
    fn expr_hint(&mut self, e: &Expr, hint: Option<&Ty>) -> TExpr {
        let script_level = self.script_level;
        if !matches!(
            e.kind,
            ExprKind::Block(_) | ExprKind::If(..) | ExprKind::While(..) | ExprKind::For(..)
        ) {
            self.script_level = false;
        }
        let t = self.expr_inner(e, hint);
        self.script_level = script_level;
        t
    }

    fn expr_inner(&mut self, e: &Expr, hint: Option<&Ty>) -> TExpr {
        let span = e.span;
        let mk = |kind, ty| TExpr { kind, ty, span };
        match &e.kind {
            ExprKind::Lit(lit) => self.literal(lit, span),
            ExprKind::Name(n) => self.name(n),
            ExprKind::Unary(op, x) => self.unary(*op, x, span),
            ExprKind::Binary(op, a, b) => {
                let a = self.expr(a);
                let b = self.expr(b);
                self.binary_typed(*op, a, b, span)
            }
            ExprKind::Cast(x, t) => self.cast(x, t, span),
            ExprKind::Call(f, args) => self.call(f, args, span, hint),
            ExprKind::Index(..) => {
                self.cx.error(
                    span,
                    "indexing is not supported yet",
                    "arrays come in milestone M2",
                );
                Body::error_expr(span)
            }
            ExprKind::Tuple(items) if items.len() < 2 => {
                self.cx.error(
                    span,
                    "a tuple needs at least two elements",
                    "write the value without `(...,)`",
                );
                Body::error_expr(span)
            }
            ExprKind::Tuple(items) => {
                let mut parts = Vec::new();
                let mut tys = Vec::new();
                for it in items {
                    let t = self.expr(it);
                    if !t.ty.is_single() {
                        self.cx.error(
                            it.span,
                            "a tuple element must be a single value",
                            format!("this is `{}`", t.ty),
                        );
                        return Body::error_expr(span);
                    }
                    tys.push(t.ty.clone());
                    parts.push(t);
                }
                mk(TExprKind::Tuple(parts), Ty::Tuple(tys))
            }
            ExprKind::Block(b) => self.block(b, span),
            ExprKind::If(c, t, els) => self.if_expr(c, t, els.as_deref(), span),
            ExprKind::While(c, body) => {
                let script_level = std::mem::replace(&mut self.script_level, false);
                let c = self.expr(c);
                let c = self.coerce(c, &Ty::BOOL, None);
                self.script_level = script_level;
                self.loop_depth += 1;
                let body = self.expr(body);
                self.loop_depth -= 1;
                mk(TExprKind::While(Box::new(c), Box::new(body)), Ty::Unit)
            }
            ExprKind::For(var, range, body) => {
                let script_level = std::mem::replace(&mut self.script_level, false);
                let start = self.expr(&range.start);
                let start = self.range_bound(start);
                let end = self.expr(&range.end);
                let end = self.range_bound(end);
                self.script_level = script_level;
                self.scopes.push(HashMap::new());
                let local = self.declare_as(var, Ty::I64, false, LocalOrigin::LoopVar);
                self.loop_depth += 1;
                let body = self.expr(body);
                self.loop_depth -= 1;
                self.scopes.pop();
                mk(
                    TExprKind::For {
                        var: local,
                        start: Box::new(start),
                        end: Box::new(end),
                        inclusive: range.inclusive,
                        body: Box::new(body),
                    },
                    Ty::Unit,
                )
            }
            ExprKind::Break | ExprKind::Continue => {
                let word = if matches!(e.kind, ExprKind::Break) {
                    "break"
                } else {
                    "continue"
                };
                if self.loop_depth == 0 {
                    self.cx.error(
                        span,
                        format!("`{word}` outside of a loop"),
                        "not inside `while` or `for`",
                    );
                    return Body::error_expr(span);
                }
                let kind = if word == "break" {
                    TExprKind::Break
                } else {
                    TExprKind::Continue
                };
                mk(kind, Ty::Never)
            }
            ExprKind::Return(v) => {
                let Some(ret) = self.ret.clone() else {
                    let what = match self.owner {
                        Owner::Script => "a script",
                        Owner::Const(_) => "a const initialiser",
                        Owner::Item(_) => "a reduce identity",
                    };
                    self.cx.error(
                        span,
                        format!("`return` cannot be used in {what}"),
                        "only allowed in a function body",
                    );
                    return Body::error_expr(span);
                };
                let value = match v {
                    Some(v) => {
                        if ret == Ty::Unit {
                            self.cx.error(
                                v.span,
                                "this function returns no value",
                                "remove this value",
                            );
                            return Body::error_expr(span);
                        }
                        let t = self.expr_hint(v, Some(&ret));
                        Some(Box::new(self.coerce(t, &ret, None)))
                    }
                    None => {
                        if ret != Ty::Unit && ret != Ty::Error {
                            self.cx.error(
                                span,
                                format!("`return` needs a value of type `{ret}`"),
                                "missing value",
                            );
                            return Body::error_expr(span);
                        }
                        None
                    }
                };
                mk(TExprKind::Return(value), Ty::Never)
            }
            ExprKind::Error => Body::error_expr(span),
        }
    }

    fn range_bound(&mut self, e: TExpr) -> TExpr {
        if let Ty::Scalar(s) = &e.ty {
            if *s != ScalarType::I64 {
                let d = diag::error(
                    self.file(),
                    e.span,
                    format!("range bounds must be `i64`, found `{s}`"),
                    "not `i64`",
                );
                let text = self.cx.snippet(e.span).to_string();
                self.cx
                    .diags
                    .push(diag::help(d, format!("convert with `as`: `{text} as i64`")));
                return Body::error_expr(e.span);
            }
        }
        self.coerce(e, &Ty::I64, None)
    }

    fn literal(&mut self, lit: &Literal, span: Span) -> TExpr {
        let (kind, ty) = match lit {
            Literal::Int { value, suffix } => {
                let ty = match suffix {
                    Some(s) => {
                        Ty::Scalar(ScalarType::from_name(s).expect("lexer suffixes are type names"))
                    }
                    None => Ty::IntLit,
                };
                (
                    TLit::Int {
                        magnitude: *value,
                        negative: false,
                    },
                    ty,
                )
            }
            Literal::Float { text, suffix } => {
                let ty = match suffix {
                    Some(s) => {
                        Ty::Scalar(ScalarType::from_name(s).expect("lexer suffixes are type names"))
                    }
                    None => Ty::FloatLit,
                };
                (TLit::Float(text.clone()), ty)
            }
            Literal::Bool(b) => (TLit::Bool(*b), Ty::BOOL),
            Literal::Str(s) => (TLit::Str(s.clone()), Ty::Str),
        };
        TExpr {
            kind: TExprKind::Lit(kind),
            ty,
            span,
        }
    }

    fn unknown_name(&mut self, n: &ast::Ident) {
        let mut candidates: Vec<String> =
            self.scopes.iter().flat_map(|s| s.keys().cloned()).collect();
        candidates.extend(self.cx.const_ids.keys().cloned());
        candidates.extend(NamedConst::NAMES.iter().map(|s| s.to_string()));
        let mut d = diag::error(
            self.file(),
            n.span,
            format!("unknown name `{}`", n.name),
            "not found in this scope",
        );
        if self.owner != Owner::Script && self.cx.script_names.contains(&n.name) {
            d = diag::note(d, format!("`{}` is a script variable; items cannot see script variables: pass it as a parameter", n.name));
        } else if let Some(s) = diag::suggest(&n.name, candidates.iter().map(String::as_str)) {
            d = diag::help(d, format!("did you mean `{s}`?"));
        }
        self.cx.diags.push(d);
    }

    fn lookup_item(&self, name: &str) -> Option<ItemId> {
        self.cx.item_ids.get(name).copied()
    }

    fn name(&mut self, n: &ast::Ident) -> TExpr {
        let span = n.span;
        if let Some(local) = self.lookup(&n.name) {
            let ty = self.locals[local.0 as usize].ty.clone();
            return TExpr {
                kind: TExprKind::Local(local),
                ty,
                span,
            };
        }
        if let Some(&id) = self.cx.const_ids.get(&n.name) {
            match self.owner {
                Owner::Const(me) => self.cx.const_edges.push((me, id, span)),
                Owner::Item(me) => self.cx.item_const_edges.push((me, id)),
                Owner::Script => {}
            }
            let ty = self.cx.const_tys[id.0 as usize].clone();
            return TExpr {
                kind: TExprKind::Const(id),
                ty,
                span,
            };
        }
        if let Some(c) = NamedConst::from_name(&n.name) {
            return TExpr {
                kind: TExprKind::Lit(TLit::Named(c)),
                ty: Ty::FloatLit,
                span,
            };
        }
        if self.lookup_item(&n.name).is_some() || Builtin::from_name(&n.name).is_some() {
            self.cx.error(
                span,
                format!("`{}` is a function, not a value", n.name),
                format!("call it: `{}(...)`", n.name),
            );
            return Body::error_expr(span);
        }
        self.unknown_name(n);
        Body::error_expr(span)
    }

    fn unary(&mut self, op: UnOp, x: &Expr, span: Span) -> TExpr {
        // `-5` is a negative literal, so that `-2147483648i32` fits.
        if op == UnOp::Neg {
            if let ExprKind::Lit(Literal::Int { value, suffix }) = &x.kind {
                let mut t = self.literal(
                    &Literal::Int {
                        value: *value,
                        suffix: *suffix,
                    },
                    span,
                );
                t.kind = TExprKind::Lit(TLit::Int {
                    magnitude: *value,
                    negative: true,
                });
                if let Ty::Scalar(s) = t.ty {
                    if !s.is_signed_int() && !s.is_float() {
                        return self.cannot_negate(&t.ty, span);
                    }
                }
                return t;
            }
        }
        let t = self.expr(x);
        let ty = t.ty.clone();
        match op {
            UnOp::Neg => {
                if !ty.must_be(|s| s.is_signed_int() || s.is_float()) {
                    return self.cannot_negate(&ty, span);
                }
            }
            UnOp::Not => {
                if !ty.must_be(|s| s.is_int() || s == ScalarType::Bool) {
                    let d = diag::error(
                        self.file(),
                        span,
                        format!("`!` cannot be applied to `{ty}`"),
                        "needs a bool or an integer",
                    );
                    self.cx.diags.push(diag::help(
                        d,
                        "`!` is logical not on `bool` and bitwise not on integers",
                    ));
                    return Body::error_expr(span);
                }
            }
        }
        TExpr {
            kind: TExprKind::Unary(op, Box::new(t)),
            ty,
            span,
        }
    }

    fn cannot_negate(&mut self, ty: &Ty, span: Span) -> TExpr {
        let d = diag::error(
            self.file(),
            span,
            format!("cannot negate a value of type `{ty}`"),
            "unary `-` needs a signed or float type",
        );
        let d = match ty {
            Ty::Param(..) => diag::help(
                d,
                "the class of this parameter includes unsigned types; use `T: float`, or `0 - x`",
            ),
            _ => diag::help(
                d,
                "for wrapping negation of an unsigned value, write `0 - x`",
            ),
        };
        self.cx.diags.push(d);
        Body::error_expr(span)
    }

    fn binary_typed(&mut self, op: BinOp, a: TExpr, b: TExpr, span: Span) -> TExpr {
        let mk = |kind, ty| TExpr { kind, ty, span };
        if matches!(op, BinOp::And | BinOp::Or) {
            let a = self.coerce(a, &Ty::BOOL, None);
            let b = self.coerce(b, &Ty::BOOL, None);
            return mk(TExprKind::Binary(op, Box::new(a), Box::new(b)), Ty::BOOL);
        }
        if a.ty == Ty::Error || b.ty == Ty::Error {
            return Body::error_expr(span);
        }
        for side in [&a, &b] {
            if let Ty::Tuple(_) = side.ty {
                let d = diag::error(
                    self.file(),
                    side.span,
                    format!("`{}` cannot be applied to a tuple", op.symbol()),
                    format!("this is `{}`", side.ty),
                );
                self.cx.diags.push(diag::help(
                    d,
                    "take the tuple apart first: `let (a, b) = ...;`",
                ));
                return Body::error_expr(span);
            }
        }
        let is_int = |s: ScalarType| s.is_int();
        if matches!(op, BinOp::Shl | BinOp::Shr) {
            for side in [&a, &b] {
                if !side.ty.must_be(is_int) {
                    let d = diag::error(
                        self.file(),
                        side.span,
                        format!(
                            "`{}` needs integer operands, found `{}`",
                            op.symbol(),
                            side.ty
                        ),
                        "not an integer",
                    );
                    self.cx.diags.push(d);
                    return Body::error_expr(span);
                }
            }
            let a = self.default_if_other_concrete(a, &b);
            let mut b = b;
            if b.ty.is_flexible() {
                let t = if a.ty.is_flexible() {
                    Ty::IntLit
                } else {
                    a.ty.clone()
                };
                finalize(&mut b, &t);
            }
            let ty = a.ty.clone();
            return mk(TExprKind::Binary(op, Box::new(a), Box::new(b)), ty);
        }
        let Some(t) = unify(&a.ty, &b.ty) else {
            let d = diag::error(
                self.file(),
                b.span,
                format!(
                    "mismatched types in `{}`: `{}` and `{}`",
                    op.symbol(),
                    a.ty,
                    b.ty
                ),
                format!("this is `{}`", b.ty),
            );
            let d = diag::also(d, self.file(), a.span, format!("this is `{}`", a.ty));
            let d = if a.ty.is_single() && b.ty.is_single() && a.ty != Ty::BOOL && b.ty != Ty::BOOL
            {
                // Convert the literal side, or else the integer side to the float type (the
                // lossless direction), or else the right side.
                let a_first = a.ty.is_flexible()
                    || (a.ty.may_be(|s| s.is_int()) && b.ty.must_be(|s| s.is_float()));
                let target = if a_first { &b.ty } else { &a.ty };
                let other = if a_first { &a } else { &b };
                let text = self.cx.cast_operand(other.span);
                diag::help(d, format!("there are no implicit conversions; convert one side, e.g. `{text} as {target}`"))
            } else {
                d
            };
            self.cx.diags.push(d);
            return Body::error_expr(span);
        };
        let ok = match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                t.must_be(|s| s.is_numeric())
            }
            BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor => {
                t.must_be(|s| s.is_int() || s == ScalarType::Bool)
            }
            _ => t.is_single(),
        } && t.is_single();
        if !ok {
            let needs = match op {
                BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor => "integer or bool operands",
                BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                    "numeric operands"
                }
                _ => "scalar operands",
            };
            let mut d = diag::error(
                self.file(),
                span,
                format!("`{}` cannot be applied to `{t}`", op.symbol()),
                format!("`{}` needs {needs}", op.symbol()),
            );
            if let Ty::Param(_, name, class) = &t {
                d = diag::help(
                    d,
                    format!(
                        "`{name}: {}` includes types that do not support `{}`",
                        class.name(),
                        op.symbol()
                    ),
                );
            }
            self.cx.diags.push(d);
            return Body::error_expr(span);
        }
        let (mut a, mut b) = (a, b);
        if op.is_comparison() {
            let t = match t {
                Ty::IntLit => Ty::I64,
                Ty::FloatLit => Ty::Scalar(ScalarType::F64),
                t => t,
            };
            finalize(&mut a, &t);
            finalize(&mut b, &t);
            return mk(TExprKind::Binary(op, Box::new(a), Box::new(b)), Ty::BOOL);
        }
        finalize(&mut a, &t);
        finalize(&mut b, &t);
        mk(TExprKind::Binary(op, Box::new(a), Box::new(b)), t)
    }

    fn default_if_other_concrete(&mut self, a: TExpr, other: &TExpr) -> TExpr {
        if a.ty.is_flexible() && !other.ty.is_flexible() {
            self.default(a)
        } else {
            a
        }
    }

    fn cast(&mut self, x: &Expr, t: &TypeExpr, span: Span) -> TExpr {
        let v = self.expr(x);
        let v = self.default(v);
        let target = self.cx.resolve_type(t, &self.generics);
        if v.ty == Ty::Error || target == Ty::Error {
            return Body::error_expr(span);
        }
        if v.ty == Ty::Never {
            // `(return x) as T`: never produces a value, so any target type will do.
            return TExpr {
                kind: TExprKind::Cast(Box::new(v)),
                ty: target,
                span,
            };
        }
        if target == Ty::BOOL {
            let d = diag::error(
                self.file(),
                t.span(),
                "cannot cast to `bool`",
                "not a numeric type",
            );
            self.cx
                .diags
                .push(diag::help(d, "compare instead: `x != 0`"));
            return Body::error_expr(span);
        }
        if !matches!(v.ty, Ty::Scalar(_) | Ty::Param(..)) {
            self.cx.error(
                v.span,
                format!("cannot cast a value of type `{}`", v.ty),
                "not a scalar",
            );
            return Body::error_expr(span);
        }
        TExpr {
            kind: TExprKind::Cast(Box::new(v)),
            ty: target,
            span,
        }
    }

    fn call(&mut self, f: &ast::Ident, args: &[Expr], span: Span, hint: Option<&Ty>) -> TExpr {
        if let Some(id) = self.lookup_item(&f.name) {
            let sig = self.cx.sigs[id.0 as usize].clone();
            if sig.unsupported {
                self.cx.error(
                    f.span,
                    format!(
                        "`{}` cannot be called: {} items are not supported yet",
                        f.name,
                        sig.kind.keyword()
                    ),
                    "milestone M2",
                );
                return Body::error_expr(span);
            }
            match self.owner {
                Owner::Item(me) => self.cx.call_edges.push((me, id, f.span)),
                Owner::Const(me) => self.cx.const_item_edges.push((me, id)),
                Owner::Script => {}
            }
            let Some((targs, targs_exprs, ret)) = self.generic_call(
                &f.name,
                f.span,
                &sig.generics,
                &sig.params,
                &sig.ret,
                args,
                span,
                hint,
                false,
            ) else {
                return Body::error_expr(span);
            };
            return TExpr {
                kind: TExprKind::Call(id, targs, targs_exprs),
                ty: ret,
                span,
            };
        }
        if let Some(b @ (Builtin::ToBits | Builtin::FromBits)) = Builtin::from_name(&f.name) {
            return self.bits_builtin(b, args, span);
        }
        if let Some(b) = Builtin::from_name(&f.name) {
            let sig = b.signature();
            let generics: Vec<(String, Class)> = sig
                .class
                .map(|c| vec![("T".to_string(), c)])
                .unwrap_or_default();
            let Some((_, args, ret)) = self.generic_call(
                &f.name,
                f.span,
                &generics,
                &sig.params,
                &sig.ret,
                args,
                span,
                hint,
                true,
            ) else {
                return Body::error_expr(span);
            };
            return TExpr {
                kind: TExprKind::Builtin(b, args),
                ty: ret,
                span,
            };
        }
        if f.name == "print" {
            self.cx.error(
                f.span,
                "`print` can only be used as a statement of a script",
                "not allowed here",
            );
            return Body::error_expr(span);
        }
        if let Some(t) = self.array_builtin(f, args, span, hint) {
            return t;
        }
        let mut candidates: Vec<&str> = self.cx.item_ids.keys().map(String::as_str).collect();
        let builtins = Builtin::names();
        candidates.extend(builtins.iter().copied());
        let mut d = diag::error(
            self.file(),
            f.span,
            format!("unknown function `{}`", f.name),
            "not defined",
        );
        if let Some(s) = diag::suggest(&f.name, candidates) {
            d = diag::help(d, format!("did you mean `{s}`?"));
        }
        self.cx.diags.push(d);
        for a in args {
            let _ = self.expr(a);
        }
        Body::error_expr(span)
    }

    /// `to_bits(x)` (`f32 -> u32`, `f64 -> u64`) and `from_bits(b)` (`u32 -> f32`,
    /// `u64 -> f64`): the result type is a function of the argument's, so these are typed
    /// here rather than through a signature. An unsuffixed literal argument is `f64` or
    /// `u64`. In a generic item the argument must have a concrete type.
    fn bits_builtin(&mut self, b: Builtin, args: &[Expr], span: Span) -> TExpr {
        let name = b.name();
        let mut targs: Vec<TExpr> = args.iter().map(|a| self.expr(a)).collect();
        if targs.len() != 1 {
            let were = if targs.len() == 1 { "was" } else { "were" };
            self.cx.error(
                span,
                format!(
                    "`{name}` takes 1 argument, but {} {were} given",
                    targs.len()
                ),
                "expected 1 argument",
            );
            return Body::error_expr(span);
        }
        let a = &mut targs[0];
        if a.ty == Ty::Error {
            return Body::error_expr(span);
        }
        use ScalarType::*;
        let to_bits = b == Builtin::ToBits;
        let literal = if to_bits { Ty::FloatLit } else { Ty::IntLit };
        if a.ty == literal || (to_bits && a.ty == Ty::IntLit) {
            let t = Ty::Scalar(if to_bits { F64 } else { U64 });
            finalize(a, &t);
            a.ty = t;
        }
        let ret = match (to_bits, &a.ty) {
            (true, Ty::Scalar(F32)) => U32,
            (true, Ty::Scalar(F64)) => U64,
            (false, Ty::Scalar(U32)) => F32,
            (false, Ty::Scalar(U64)) => F64,
            (_, other) => {
                let (want, hint) = if to_bits {
                    ("`f32` or `f64`", "`to_bits` maps f32 -> u32 and f64 -> u64")
                } else {
                    (
                        "`u32` or `u64`",
                        "`from_bits` maps u32 -> f32 and u64 -> f64",
                    )
                };
                let generic = if matches!(other, Ty::Param(..)) {
                    "; in a generic item, write one version per type"
                } else {
                    ""
                };
                let d = diag::error(
                    self.file(),
                    a.span,
                    format!("`{name}` expects {want}, found `{other}`"),
                    format!("this is `{other}`"),
                );
                self.cx
                    .diags
                    .push(diag::help(d, format!("{hint}{generic}")));
                return Body::error_expr(span);
            }
        };
        TExpr {
            kind: TExprKind::Builtin(b, targs),
            ty: Ty::Scalar(ret),
            span,
        }
    }

    /// Checks a call's arguments against a (possibly generic) signature, infers the type
    /// arguments, and coerces the arguments. Returns the type arguments, the checked
    /// arguments and the result type, or `None` after reporting an error.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn generic_call(
        &mut self,
        name: &str,
        name_span: Span,
        generics: &[(String, Class)],
        params: &[Ty],
        ret: &Ty,
        args: &[Expr],
        span: Span,
        hint: Option<&Ty>,
        flexible_ok: bool,
    ) -> Option<(Vec<Ty>, Vec<TExpr>, Ty)> {
        let args: Vec<TExpr> = args.iter().map(|a| self.expr(a)).collect();
        if args.len() != params.len() {
            let s = if params.len() == 1 { "" } else { "s" };
            let were = if args.len() == 1 { "was" } else { "were" };
            self.cx.error(
                span,
                format!(
                    "`{name}` takes {} argument{s}, but {} {were} given",
                    params.len(),
                    args.len()
                ),
                format!("expected {} argument{s}", params.len()),
            );
            return None;
        }
        if args.iter().any(|a| a.ty == Ty::Error) {
            return None;
        }
        if let Some(a) = args
            .iter()
            .find(|a| matches!(a.ty, Ty::Tuple(_) | Ty::Unit | Ty::Str))
        {
            let what = match a.ty {
                Ty::Tuple(_) => "a tuple",
                Ty::Str => "a string",
                _ => "no value",
            };
            let d = diag::error(
                self.file(),
                a.span,
                format!("`{name}` takes scalar arguments, found {what}"),
                format!("this is `{}`", a.ty),
            );
            let d = if matches!(a.ty, Ty::Tuple(_)) {
                diag::help(d, "take the tuple apart first: `let (a, b) = ...;`")
            } else {
                d
            };
            self.cx.diags.push(d);
            return None;
        }
        let mut targs: Vec<Option<Ty>> = vec![None; generics.len()];
        // Concrete arguments fix the type parameters.
        for (a, p) in args.iter().zip(params) {
            if let Ty::Param(i, _, _) = p {
                let i = *i as usize;
                if matches!(a.ty, Ty::Scalar(_) | Ty::Param(..)) {
                    match &targs[i] {
                        None => targs[i] = Some(a.ty.clone()),
                        Some(prev) if *prev != a.ty => {
                            let d = diag::error(
                                self.file(),
                                a.span,
                                format!("mismatched types in call of `{name}`: expected `{prev}`, found `{}`", a.ty),
                                format!("this is `{}`", a.ty),
                            );
                            let d = diag::note(
                                d,
                                format!(
                                    "all arguments of type `{}` must have one type",
                                    generics[i].0
                                ),
                            );
                            let d = self.conversion_help(d, a, prev);
                            self.cx.diags.push(d);
                            return None;
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        // Flexible arguments, or the expected result type, fix the rest.
        for (i, (gname, class)) in generics.iter().enumerate() {
            if targs[i].is_some() {
                continue;
            }
            if let (Some(h @ (Ty::Scalar(_) | Ty::Param(..))), Ty::Param(j, _, _)) = (hint, ret) {
                // Only a hint the class admits: `x = linspace(..)` with an `i64` `x` must
                // not make `linspace`'s float arguments `i64` (the assignment reports it).
                let fits = match h {
                    Ty::Scalar(t) => class.contains(*t),
                    Ty::Param(_, _, c) => c.within(*class),
                    _ => false,
                };
                if *j as usize == i && fits {
                    targs[i] = Some(h.clone());
                    continue;
                }
            }
            let has_float = args.iter().zip(params).any(|(a, p)| {
                matches!(p, Ty::Param(j, ..) if *j as usize == i) && a.ty == Ty::FloatLit
            });
            let float = has_float || *class == Class::Float;
            if float && *class == Class::Int {
                let d = diag::error(
                    self.file(),
                    span,
                    format!("`{name}` needs an integer type for `{gname}`, found a float literal"),
                    "float literal",
                );
                self.cx.diags.push(d);
                return None;
            }
            // A builtin applied to literals only stays flexible (`2.0 * sqrt(2.0)` is f32 in
            // f32 context); an item call needs concrete type arguments to name its
            // specialisation, so it takes the defaults.
            targs[i] = Some(match (float, flexible_ok) {
                (true, true) => Ty::FloatLit,
                (false, true) => Ty::IntLit,
                (true, false) => Ty::Scalar(ScalarType::F64),
                (false, false) => Ty::I64,
            });
        }
        let targs: Vec<Ty> = targs.into_iter().map(|t| t.unwrap_or(Ty::Error)).collect();
        // Class membership.
        for (i, (gname, class)) in generics.iter().enumerate() {
            let ok = match &targs[i] {
                Ty::Scalar(s) => class.contains(*s),
                Ty::Param(_, _, c) => c.within(*class),
                Ty::FloatLit => *class != Class::Int,
                _ => true,
            };
            if !ok {
                let at = args
                    .iter()
                    .zip(params)
                    .find(|(_, p)| matches!(p, Ty::Param(j, ..) if *j as usize == i))
                    .map_or(name_span, |(a, _)| a.span);
                let what = match class {
                    Class::Float => "a float type (`f32` or `f64`)",
                    Class::Int => "an integer type",
                    Class::Num => "a numeric type",
                    Class::Any => "a scalar type",
                };
                let mut d = diag::error(
                    self.file(),
                    at,
                    format!("`{name}` needs {what}, found `{}`", targs[i]),
                    format!("this is `{}`", targs[i]),
                );
                if generics.len() > 1 || gname != "T" {
                    d = diag::note(
                        d,
                        format!("`{gname}: {}` in the signature of `{name}`", class.name()),
                    );
                }
                if let (Ty::Scalar(_), Class::Float) = (&targs[i], class) {
                    let text = self.cx.snippet(at);
                    d = diag::help(d, format!("convert with `as`: `{text} as f64`"));
                }
                if let Ty::Param(_, pname, pc) = &targs[i] {
                    d = diag::help(
                        d,
                        format!(
                            "`{pname}: {}` may be a type that `{name}` does not accept",
                            pc.name()
                        ),
                    );
                }
                self.cx.diags.push(d);
                return None;
            }
        }
        let subst = |t: &Ty| substitute(t, &targs);
        let mut out = Vec::new();
        for (a, p) in args.into_iter().zip(params) {
            let want = subst(p);
            let before = self.cx.diags.len();
            let a = self.coerce(a, &want, None);
            if self.cx.diags.len() > before {
                return None;
            }
            out.push(a);
        }
        Some((targs.clone(), out, subst(ret)))
    }

    fn block(&mut self, b: &ast::Block, span: Span) -> TExpr {
        self.scopes.push(HashMap::new());
        let mut stmts = Vec::new();
        let mut diverges = false;
        for s in &b.stmts {
            if let Some(t) = self.stmt(s) {
                diverges |= match &t {
                    TStmt::Expr(e) | TStmt::Let { value: e, .. } | TStmt::Assign(_, e) => {
                        e.ty == Ty::Never
                    }
                    TStmt::Print(..) => false,
                };
                stmts.push(t);
            }
        }
        let tail = b.tail.as_ref().map(|t| {
            // A block-like tail (`{ if c { print(x); } }`) is in statement position: it may
            // contain script statements. Any other tail is a value.
            let block_like = matches!(
                t.kind,
                ExprKind::If(..) | ExprKind::While(..) | ExprKind::For(..) | ExprKind::Block(_)
            );
            let script_level = self.script_level;
            self.script_level &= block_like;
            let t = self.expr(t);
            self.script_level = script_level;
            Box::new(t)
        });
        self.scopes.pop();
        let ty = match &tail {
            Some(t) => t.ty.clone(),
            None if diverges => Ty::Never,
            None => Ty::Unit,
        };
        TExpr {
            kind: TExprKind::Block(TBlock { stmts, tail }),
            ty,
            span,
        }
    }

    fn if_expr(&mut self, c: &Expr, then: &Expr, els: Option<&Expr>, span: Span) -> TExpr {
        let script_level = std::mem::replace(&mut self.script_level, false);
        let c = self.expr(c);
        let c = self.coerce(c, &Ty::BOOL, None);
        self.script_level = script_level;
        let mut t = self.expr(then);
        let Some(els) = els else {
            return TExpr {
                kind: TExprKind::If(Box::new(c), Box::new(t), None),
                ty: Ty::Unit,
                span,
            };
        };
        let mut e = self.expr(els);
        let ty = match unify(&t.ty, &e.ty) {
            Some(ty) => {
                finalize(&mut t, &ty);
                finalize(&mut e, &ty);
                ty
            }
            None => {
                let tail_span = |x: &TExpr| match &x.kind {
                    TExprKind::Block(b) => b.tail.as_ref().map_or(x.span, |t| t.span),
                    _ => x.span,
                };
                let d = diag::error(
                    self.file(),
                    tail_span(&e),
                    format!(
                        "`if` and `else` have different types: `{}` and `{}`",
                        t.ty, e.ty
                    ),
                    format!("this is `{}`", e.ty),
                );
                let d = diag::also(d, self.file(), tail_span(&t), format!("this is `{}`", t.ty));
                self.cx.diags.push(d);
                Ty::Error
            }
        };
        TExpr {
            kind: TExprKind::If(Box::new(c), Box::new(t), Some(Box::new(e))),
            ty,
            span,
        }
    }
}

/// Where an expression's value comes from: a block's tail rather than the whole block.
fn value_span(e: &TExpr) -> Span {
    match &e.kind {
        TExprKind::Block(TBlock { tail: Some(t), .. }) => value_span(t),
        _ => e.span,
    }
}
