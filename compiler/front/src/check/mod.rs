//! The checker: name resolution, types, generics, and the rules of spec §2–§5 that can be
//! decided before running anything. It produces the typed AST of [`crate::typed`].
//!
//! Design notes:
//! - Three passes: item signatures (so items may be used before they are defined), bodies,
//!   then whole-program rules (recursion, const cycles).
//! - Generic items are checked once, with each parameter `T` an opaque type of its class:
//!   an operation is allowed only if it is allowed for every member (`&` needs `T: int`,
//!   `sqrt` needs `T: float`, `-x` needs a class without unsigned types). Literal ranges are
//!   checked again per specialisation, by lowering.
//! - Unsuffixed literals get the flexible types `{integer}`/`{float}`. An operator unifies
//!   its operands and `finalize` pushes the resulting type down into the literals; a
//!   flexible type that meets no constraint defaults to `i64`/`f64` (spec §1).
//! - An expression with an error has type `Ty::Error`, which unifies with everything: one
//!   mistake, one diagnostic. Every independent error in the file is reported.

use std::collections::{HashMap, HashSet};

use kiln_ir::ScalarType;
use kiln_syntax::ast::{
    self, BinOp, Expr, ExprKind, ItemKind, Literal, Pattern, Stmt, StmtKind, TypeExpr, UnOp,
};
use kiln_syntax::{FileId, Span};

use crate::builtins::Builtin;
use crate::diag::{self, Diag};
use crate::typed::*;
use crate::types::{Class, Ty};
use crate::Program;

mod arrays;
pub use arrays::NAMES as ARRAY_BUILTINS;
mod body;
mod unify;

use body::{Body, Owner};

/// The most specialisations one generic item may have (each is compiled eagerly).
pub const MAX_SPECIALISATIONS: usize = 64;

/// What other items need to know of an item.
#[derive(Clone, Debug)]
struct Sig {
    kind: ItemKind,
    generics: Vec<(String, Class)>,
    params: Vec<Ty>,
    ret: Ty,
    /// `gufunc`/`kernel`: known, but not callable yet.
    unsupported: bool,
}

struct Checker<'s> {
    file: FileId,
    src: &'s str,
    sigs: Vec<Sig>,
    item_ids: HashMap<String, ItemId>,
    const_ids: HashMap<String, ConstId>,
    const_tys: Vec<Ty>,
    diags: Vec<Diag>,
    /// (caller, callee, call site) among items, for recursion detection.
    call_edges: Vec<(ItemId, ItemId, Span)>,
    /// (user, used, use site) among consts, for cycle detection.
    const_edges: Vec<(ConstId, ConstId, Span)>,
    /// Consts read by items, and items called by const initialisers: with the two edge lists
    /// above they form the graph in which a const may depend on itself.
    item_const_edges: Vec<(ItemId, ConstId)>,
    const_item_edges: Vec<(ConstId, ItemId)>,
    /// Names bound by top-level `let`/`var`, for a precise message when an item uses one.
    script_names: HashSet<String>,
}

/// Checks a parsed module. Returns the typed program and the diagnostics (in source order);
/// the program may only be lowered when there are none.
pub fn check(file: FileId, src: &str, module: &ast::Module) -> (Program, Vec<Diag>) {
    let mut cx = Checker {
        file,
        src,
        sigs: Vec::new(),
        item_ids: HashMap::new(),
        const_ids: HashMap::new(),
        const_tys: Vec::new(),
        diags: Vec::new(),
        call_edges: Vec::new(),
        const_edges: Vec::new(),
        item_const_edges: Vec::new(),
        const_item_edges: Vec::new(),
        script_names: HashSet::new(),
    };
    for entry in &module.entries {
        if let ast::TopLevel::Stmt(Stmt {
            kind: StmtKind::Let { pat, .. },
            ..
        }) = entry
        {
            match pat {
                Pattern::Name(n) => {
                    cx.script_names.insert(n.name.clone());
                }
                Pattern::Tuple(ns, _) => cx.script_names.extend(ns.iter().map(|n| n.name.clone())),
            }
        }
        if let ast::TopLevel::Stmt(Stmt {
            kind: StmtKind::Var { name, .. },
            ..
        }) = entry
        {
            cx.script_names.insert(name.name.clone());
        }
    }
    let mut funcs: Vec<&ast::FuncDef> = Vec::new();
    let mut consts: Vec<&ast::ConstDef> = Vec::new();
    let mut seen: HashMap<String, Span> = HashMap::new();
    for entry in &module.entries {
        let ast::TopLevel::Item(item) = entry else {
            continue;
        };
        let name = item.name();
        if let Some(&first) = seen.get(&name.name) {
            let d = diag::error(
                file,
                name.span,
                format!("`{}` is defined twice", name.name),
                "redefined here",
            );
            cx.diags
                .push(diag::also(d, file, first, "first defined here"));
            continue;
        }
        if Builtin::from_name(&name.name).is_some()
            || NamedConst::from_name(&name.name).is_some()
            || name.name == "print"
        {
            cx.diags.push(diag::error(
                file,
                name.span,
                format!("`{}` is a builtin and cannot be redefined", name.name),
                "choose another name",
            ));
            continue;
        }
        if ScalarType::from_name(&name.name).is_some() {
            cx.diags.push(diag::error(
                file,
                name.span,
                format!("`{}` is a type name", name.name),
                "choose another name",
            ));
            continue;
        }
        seen.insert(name.name.clone(), name.span);
        match item.as_ref() {
            ast::Item::Func(f) => {
                let sig = cx.signature(f);
                cx.item_ids
                    .insert(f.name.name.clone(), ItemId(cx.sigs.len() as u32));
                cx.sigs.push(sig);
                funcs.push(f);
            }
            ast::Item::Const(c) => {
                let ty = cx.resolve_type(&c.ty, &[]);
                if !matches!(ty, Ty::Scalar(_) | Ty::Error) {
                    cx.diags.push(diag::error(
                        file,
                        c.ty.span(),
                        "a const must have a scalar type",
                        "not a scalar type",
                    ));
                }
                cx.const_ids
                    .insert(c.name.name.clone(), ConstId(cx.const_tys.len() as u32));
                cx.const_tys.push(ty);
                consts.push(c);
            }
        }
    }

    let mut checked_consts = Vec::new();
    for (i, c) in consts.iter().enumerate() {
        checked_consts.push(cx.check_const(ConstId(i as u32), c));
    }
    let mut items = Vec::new();
    for (i, f) in funcs.iter().enumerate() {
        items.push(cx.check_item(ItemId(i as u32), f));
    }
    let stmts: Vec<&Stmt> = module
        .entries
        .iter()
        .filter_map(|e| match e {
            ast::TopLevel::Stmt(s) => Some(s),
            ast::TopLevel::Item(_) => None,
        })
        .collect();
    let script = cx.check_script(&stmts);
    cx.check_recursion(&items);
    let const_order = cx.check_const_cycles(&items, &checked_consts);

    let mut diags = std::mem::take(&mut cx.diags);
    diags.sort_by_key(diag::sort_key);
    let program = Program {
        file,
        src: src.to_string(),
        items,
        consts: checked_consts,
        script,
        item_ids: cx.item_ids,
        const_ids: cx.const_ids,
        line_starts: line_starts(src),
        const_order,
        const_values: Default::default(),
    };
    (program, diags)
}

fn line_starts(src: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(src.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

impl Checker<'_> {
    fn error(&mut self, span: Span, message: impl Into<String>, label: impl Into<String>) {
        let d = diag::error(self.file, span, message, label);
        self.diags.push(d);
    }

    fn snippet(&self, span: Span) -> &str {
        self.src.get(span.range()).unwrap_or("")
    }

    /// The source of `span` as the operand of a suggested `as` cast: parenthesised unless it
    /// is a name, literal or call-free atom.
    fn cast_operand(&self, span: Span) -> String {
        let text = self.snippet(span);
        if text
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            text.to_string()
        } else {
            format!("({text})")
        }
    }

    /// Resolves a written type in the scope of `generics`.
    fn resolve_type(&mut self, te: &TypeExpr, generics: &[(String, Class)]) -> Ty {
        match te {
            TypeExpr::Named(id) => {
                if let Some(s) = ScalarType::from_name(&id.name) {
                    return Ty::Scalar(s);
                }
                if let Some(i) = generics.iter().position(|(n, _)| *n == id.name) {
                    return Ty::Param(i as u32, id.name.clone(), generics[i].1);
                }
                let candidates: Vec<&str> = ScalarType::ALL
                    .iter()
                    .map(|t| t.name())
                    .chain(generics.iter().map(|(n, _)| n.as_str()))
                    .collect();
                let mut d = diag::error(
                    self.file,
                    id.span,
                    format!("unknown type `{}`", id.name),
                    "not a type",
                );
                d = match diag::suggest(&id.name, candidates) {
                    Some(s) => diag::help(d, format!("did you mean `{s}`?")),
                    None => diag::help(
                        d,
                        "the scalar types are bool, i32, i64, u32, u64, f32 and f64",
                    ),
                };
                self.diags.push(d);
                Ty::Error
            }
            TypeExpr::Tuple(ts, span) => {
                let mut out = Vec::new();
                for t in ts {
                    let r = self.resolve_type(t, generics);
                    if !r.is_single() {
                        self.error(t.span(), "tuples cannot nest", "expected a scalar type");
                        return Ty::Error;
                    }
                    out.push(r);
                }
                if out.len() < 2 {
                    self.error(
                        *span,
                        "a tuple type needs at least two elements",
                        "write the type without parentheses",
                    );
                    return Ty::Error;
                }
                Ty::Tuple(out)
            }
            TypeExpr::Array(_, _, span) => {
                let d = diag::error(
                    self.file,
                    *span,
                    "array types are not supported yet",
                    "array type (milestone M2)",
                );
                self.diags.push(diag::note(d, "array parameters belong to `gufunc` and `kernel` items, which come in milestone M2"));
                Ty::Error
            }
        }
    }

    fn signature(&mut self, f: &ast::FuncDef) -> Sig {
        let unsupported = matches!(f.kind, ItemKind::Gufunc | ItemKind::Kernel);
        if unsupported {
            let what = if f.kind == ItemKind::Gufunc {
                "generalized ufuncs (`gufunc`)"
            } else {
                "index-space kernels (`kernel`)"
            };
            let d = diag::error(
                self.file,
                f.header_span,
                format!("{what} are not supported yet"),
                "milestone M2",
            );
            self.diags.push(diag::note(d, "Kiln v0 compiles `fn`, `ufunc` and `reduce` items; this item is parsed but not compiled"));
            return Sig {
                kind: f.kind,
                generics: vec![],
                params: vec![],
                ret: Ty::Error,
                unsupported,
            };
        }
        let mut generics = Vec::new();
        for g in &f.generics {
            let class = match Class::from_name(&g.class.name) {
                Some(c) => c,
                None => {
                    let mut d = diag::error(
                        self.file,
                        g.class.span,
                        format!("unknown type class `{}`", g.class.name),
                        "not a class",
                    );
                    if let Some(c) = diag::suggest(&g.class.name, ["float", "int", "num"]) {
                        d = diag::help(d, format!("did you mean `{c}`?"));
                    }
                    d = diag::help(d, "the classes are `float` (f32, f64), `int` (i32, i64, u32, u64) and `num` (both)");
                    self.diags.push(d);
                    Class::Num
                }
            };
            if generics
                .iter()
                .any(|(n, _): &(String, Class)| *n == g.name.name)
            {
                self.error(
                    g.name.span,
                    format!("generic parameter `{}` is declared twice", g.name.name),
                    "declared again",
                );
            }
            generics.push((g.name.name.clone(), class));
        }
        let mut params = Vec::new();
        for p in &f.params {
            let t = self.resolve_type(&p.ty, &generics);
            if p.is_out {
                self.error(
                    p.span,
                    "`out` parameters are not supported yet",
                    "milestone M2 (gufunc and kernel)",
                );
            } else if !t.is_single() {
                self.error(
                    p.ty.span(),
                    "a parameter must have a scalar type",
                    "not a scalar type",
                );
            }
            params.push(t);
        }
        let ret = match &f.ret {
            Some(t) => self.resolve_type(t, &generics),
            None => Ty::Unit,
        };
        // Checked, in u128: 32 `int` parameters give 4^32 combinations, which wraps to 0 in
        // a u64 and slipped past the limit; 25 `num` parameters give 6^25 > 2^64.
        let count = generics
            .iter()
            .try_fold(1u128, |n, (_, c)| n.checked_mul(c.members().len() as u128));
        if count.is_none_or(|n| n > MAX_SPECIALISATIONS as u128) {
            let count = count.map_or_else(|| "more than 10^38".to_string(), |n| n.to_string());
            let d = diag::error(
                self.file,
                f.header_span,
                format!("`{}` would have {count} specialisations", f.name.name),
                "too many type parameter combinations",
            );
            self.diags.push(diag::note(d, format!("every specialisation is compiled and checked; at most {MAX_SPECIALISATIONS} are allowed per item")));
        }
        for (i, (name, _)) in generics.iter().enumerate() {
            let used = params
                .iter()
                .any(|p| matches!(p, Ty::Param(j, ..) if *j == i as u32));
            if !used {
                let span = f.generics[i].name.span;
                self.error(
                    span,
                    format!("generic parameter `{name}` is not used by any parameter"),
                    "its type could never be inferred",
                );
            }
        }
        match f.kind {
            ItemKind::Ufunc if ret == Ty::Unit && !f.params.iter().any(|p| p.is_out) => {
                self.error(
                    f.header_span,
                    "a ufunc must return a value",
                    "add `-> T` to the header",
                );
            }
            ItemKind::Reduce => {
                let ok = params.len() == 2
                    && params[0] == params[1]
                    && params[0] == ret
                    && ret.is_single();
                if !ok {
                    let d = diag::error(
                        self.file,
                        f.header_span,
                        "a reduce takes two parameters and returns one value, all of one type",
                        "wrong signature",
                    );
                    self.diags.push(diag::help(
                        d,
                        "write it as `reduce name(a: T, b: T) -> T identity e { ... }`",
                    ));
                }
                if f.identity.is_none() {
                    self.error(
                        f.header_span,
                        "a reduce needs an identity",
                        "add `identity e` before the body",
                    );
                }
            }
            _ => {
                if f.identity.is_some() {
                    self.error(
                        f.header_span,
                        format!("only a reduce has an identity, not a {}", f.kind.keyword()),
                        "remove `identity ...`",
                    );
                }
            }
        }
        if f.over.is_some() && !unsupported {
            self.error(
                f.header_span,
                "only a `kernel` has an `over` clause",
                "remove `over ...`",
            );
        }
        Sig {
            kind: f.kind,
            generics,
            params,
            ret,
            unsupported,
        }
    }

    fn check_const(&mut self, id: ConstId, c: &ast::ConstDef) -> CheckedConst {
        let ty = self.const_tys[id.0 as usize].clone();
        let mut body = Body::new(self, Owner::Const(id), vec![], None);
        let v = body.expr(&c.value);
        let value = body.coerce(v, &ty, Some(c.ty.span()));
        let locals = body.locals;
        CheckedConst {
            name: c.name.name.clone(),
            ty,
            value,
            locals,
            doc: c.doc.clone(),
            span: c.span,
        }
    }

    fn check_item(&mut self, id: ItemId, f: &ast::FuncDef) -> CheckedItem {
        let sig = self.sigs[id.0 as usize].clone();
        let mut item = CheckedItem {
            name: f.name.name.clone(),
            kind: f.kind,
            generics: sig.generics.clone(),
            params: vec![],
            ret: sig.ret.clone(),
            identity: None,
            body: TExpr {
                kind: TExprKind::Error,
                ty: Ty::Error,
                span: f.body.span,
            },
            locals: vec![],
            doc: f.doc.clone(),
            header_span: f.header_span,
        };
        if sig.unsupported {
            return item;
        }
        if let Some(identity) = &f.identity {
            let mut body = Body::new(self, Owner::Item(id), sig.generics.clone(), None);
            let v = body.expr(identity);
            let before = body.cx.diags.len();
            item.identity = Some(body.coerce(v, &sig.ret, f.ret.as_ref().map(TypeExpr::span)));
            if let Some(d) = body.cx.diags.get_mut(before) {
                d.message = format!(
                    "the identity of `{}` must have its result type: {}",
                    f.name.name, d.message
                );
            }
        }
        let mut body = Body::new(
            self,
            Owner::Item(id),
            sig.generics.clone(),
            Some(sig.ret.clone()),
        );
        body.scopes.push(HashMap::new());
        for (p, ty) in f.params.iter().zip(&sig.params) {
            if body.scopes[0].contains_key(&p.name.name) {
                body.cx.error(
                    p.name.span,
                    format!("parameter `{}` is declared twice", p.name.name),
                    "declared again",
                );
            }
            let local = body.declare_as(&p.name, ty.clone(), false, LocalOrigin::Param);
            item.params.push((p.name.name.clone(), ty.clone(), local));
        }
        let v = body.expr(&f.body);
        let ret_span = f.ret.as_ref().map(TypeExpr::span);
        item.body = if v.ty == Ty::Unit && sig.ret != Ty::Unit && sig.ret != Ty::Error {
            let d = diag::error(
                body.cx.file,
                f.body.span,
                format!(
                    "the body of `{}` has no value; expected `{}`",
                    f.name.name, sig.ret
                ),
                "no value",
            );
            let d = diag::help(d, "the last expression of a body is its value: remove the trailing `;`, or `return` a value");
            body.cx.diags.push(d);
            v
        } else {
            body.coerce(v, &sig.ret, ret_span)
        };
        item.locals = body.locals;
        item
    }

    fn check_script(&mut self, stmts: &[&Stmt]) -> Script {
        let mut body = Body::new(self, Owner::Script, vec![], None);
        body.script_level = true;
        body.scopes.push(HashMap::new());
        let mut out = Vec::new();
        for s in stmts {
            if let Some(t) = body.stmt(s) {
                out.push(t);
            }
        }
        Script {
            stmts: out,
            locals: body.locals,
        }
    }

    fn check_recursion(&mut self, items: &[CheckedItem]) {
        let mut graph: HashMap<ItemId, Vec<(ItemId, Span)>> = HashMap::new();
        for &(a, b, s) in &self.call_edges {
            graph.entry(a).or_default().push((b, s));
        }
        // Iterative DFS with colours; each back edge closes a cycle, reported once per
        // distinct set of items.
        let mut color: HashMap<ItemId, u8> = HashMap::new();
        let mut reported: HashSet<Vec<ItemId>> = HashSet::new();
        for start in 0..items.len() as u32 {
            let start = ItemId(start);
            if color.get(&start).copied().unwrap_or(0) != 0 {
                continue;
            }
            let mut path: Vec<ItemId> = vec![start];
            let mut stack: Vec<(ItemId, usize)> = vec![(start, 0)];
            color.insert(start, 1);
            while let Some((node, i)) = stack.last_mut() {
                let node = *node;
                let edges = graph.get(&node).map(Vec::as_slice).unwrap_or(&[]);
                if let Some(&(next, span)) = edges.get(*i) {
                    *i += 1;
                    match color.get(&next).copied().unwrap_or(0) {
                        0 => {
                            color.insert(next, 1);
                            stack.push((next, 0));
                            path.push(next);
                        }
                        1 => {
                            let pos = path.iter().position(|&n| n == next).unwrap_or(0);
                            let cycle: Vec<ItemId> = path[pos..].to_vec();
                            let mut key = cycle.clone();
                            key.sort();
                            if reported.insert(key) {
                                let mut names: Vec<&str> = cycle
                                    .iter()
                                    .map(|c| items[c.0 as usize].name.as_str())
                                    .collect();
                                names.push(&items[next.0 as usize].name);
                                let d = diag::error(
                                    self.file,
                                    span,
                                    format!(
                                        "recursive call: {}",
                                        names
                                            .iter()
                                            .map(|n| format!("`{n}`"))
                                            .collect::<Vec<_>>()
                                            .join(" → ")
                                    ),
                                    "this call closes the cycle",
                                );
                                let d = diag::note(d, "calls of `fn`, `ufunc` and `reduce` items are inlined, so recursion is not allowed; use a loop");
                                self.diags.push(d);
                            }
                        }
                        _ => {}
                    }
                } else {
                    color.insert(node, 2);
                    stack.pop();
                    path.pop();
                }
            }
        }
    }

    /// Reports each const that depends on itself, directly or through items (`const A =
    /// f();` where `f` reads `A`), once per cycle. Returns the consts in an order in which
    /// each comes after every const it depends on (meaningful when there is no cycle).
    fn check_const_cycles(
        &mut self,
        items: &[CheckedItem],
        consts: &[CheckedConst],
    ) -> Vec<ConstId> {
        // Nodes: items first, then consts.
        let n_items = items.len();
        let node_of_const = |c: ConstId| n_items + c.0 as usize;
        let mut edges: Vec<(usize, usize)> = Vec::new();
        edges.extend(
            self.call_edges
                .iter()
                .map(|&(a, b, _)| (a.0 as usize, b.0 as usize)),
        );
        edges.extend(
            self.const_edges
                .iter()
                .map(|&(a, b, _)| (node_of_const(a), node_of_const(b))),
        );
        edges.extend(
            self.item_const_edges
                .iter()
                .map(|&(a, b)| (a.0 as usize, node_of_const(b))),
        );
        edges.extend(
            self.const_item_edges
                .iter()
                .map(|&(a, b)| (node_of_const(a), b.0 as usize)),
        );
        let self_loops: HashSet<usize> = edges
            .iter()
            .filter(|(a, b)| a == b)
            .map(|&(a, _)| a)
            .collect();
        let sccs = strongly_connected(n_items + consts.len(), &edges);
        // Components come out users first (edges point from a user to what it uses).
        let order = sccs
            .iter()
            .rev()
            .flatten()
            .filter(|&&n| n >= n_items)
            .map(|&n| ConstId((n - n_items) as u32))
            .collect();
        for scc in sccs {
            let cyclic = scc.len() > 1 || self_loops.contains(&scc[0]);
            let Some(&first) = scc.iter().filter(|&&n| n >= n_items).min() else {
                continue;
            };
            if !cyclic {
                continue;
            }
            let c = &consts[first - n_items];
            let mut d = diag::error(
                self.file,
                c.span,
                format!("const `{}` depends on itself", c.name),
                "its value refers back to it",
            );
            let through: Vec<String> = scc
                .iter()
                .filter(|&&n| n < n_items)
                .map(|&n| format!("`{}`", items[n].name))
                .collect();
            if !through.is_empty() {
                d = diag::note(d, format!("through {}", through.join(", ")));
            }
            self.diags.push(d);
        }
        order
    }
}

/// The strongly connected components of a graph with nodes `0..n` (Kosaraju's algorithm,
/// iterative so deep graphs cannot overflow the stack).
fn strongly_connected(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let mut fwd = vec![Vec::new(); n];
    let mut rev = vec![Vec::new(); n];
    for &(a, b) in edges {
        fwd[a].push(b);
        rev[b].push(a);
    }
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    for start in 0..n {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut stack = vec![(start, 0usize)];
        while let Some((node, i)) = stack.last_mut() {
            let node = *node;
            if let Some(&next) = fwd[node].get(*i) {
                *i += 1;
                if !seen[next] {
                    seen[next] = true;
                    stack.push((next, 0));
                }
            } else {
                order.push(node);
                stack.pop();
            }
        }
    }
    let mut component = vec![usize::MAX; n];
    let mut out = Vec::new();
    for &start in order.iter().rev() {
        if component[start] != usize::MAX {
            continue;
        }
        let id = out.len();
        let mut members = vec![start];
        component[start] = id;
        let mut stack = vec![start];
        while let Some(node) = stack.pop() {
            for &prev in &rev[node] {
                if component[prev] == usize::MAX {
                    component[prev] = id;
                    members.push(prev);
                    stack.push(prev);
                }
            }
        }
        out.push(members);
    }
    out
}
