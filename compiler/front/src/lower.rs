//! Lowering: typed AST → IR, one kernel per item specialisation (plus thunks for script
//! expressions), in the style of cranelift-jit-demo's `FunctionTranslator`.
//!
//! SSA construction is structural, which the language allows because control flow is
//! structured: at every join (after `if`, at a loop header, at a loop exit, after `&&`/`||`)
//! the join block gets one parameter per *carried* local — a local declared outside the
//! construct and assigned inside it — and every edge into the join passes the local's current
//! value. Locals not assigned in a construct keep their value and need no parameter.
//!
//! Code after `return`, `break` or `continue` is lowered into a fresh block with no
//! predecessors; [`kiln_ir::cfg`]'s unreachable-block removal deletes such blocks at the end,
//! so the output has no dead blocks.
//!
//! Lowering is also where generic items are specialised: `Ty::Param` is replaced by the
//! concrete type, and literals are checked against that type (`300` does not fit every
//! specialisation a generic item might get).

use std::collections::{HashMap, HashSet};

use kiln_ir::{
    BinaryOp, Block, BlockCall, InstKind, Kernel, KernelId, KernelKind, Module, Scalar, ScalarType,
    SourceLoc, UnaryOp, Value,
};
use kiln_syntax::ast::{BinOp, ItemKind, UnOp};
use kiln_syntax::Span;

use crate::builtins::Builtin;
use crate::diag::{self, Diag};
use crate::typed::*;
use crate::types::Ty;
use crate::Program;

/// Lowers items of a checked [`Program`] into one IR [`Module`], specialising on demand and
/// sharing specialisations between callers.
pub struct Lowerer<'p> {
    p: &'p Program,
    module: Module,
    instances: HashMap<(ItemId, Vec<ScalarType>), KernelId>,
    in_progress: HashSet<(ItemId, Vec<ScalarType>)>,
    errors: Vec<Diag>,
    /// Lowering the math library itself: its builtins resolve to its own items.
    library: bool,
    /// Math library kernels copied into `module`, by their id in the library.
    imported: HashMap<KernelId, KernelId>,
    /// The math library builtins come from (`None`: host `libm` operations).
    math: Option<&'static crate::mathlib::MathLib>,
    /// While consts are being evaluated ([`crate::consts::evaluate`]): the values known so
    /// far, used instead of the program's (not yet computed) table.
    known_consts: Option<&'p [Option<Vec<Scalar>>]>,
    /// Set when a const read during evaluation has no value (its own evaluation failed).
    missing_const: bool,
    /// Whether the consts' evaluation errors were already added to `errors`.
    const_errors_reported: bool,
}

/// The name of a specialisation: `axpy` or `axpy<f32>`.
pub fn instance_name(name: &str, targs: &[ScalarType]) -> String {
    if targs.is_empty() {
        name.to_string()
    } else {
        let t: Vec<&str> = targs.iter().map(|t| t.name()).collect();
        format!("{name}<{}>", t.join(", "))
    }
}

impl<'p> Lowerer<'p> {
    /// A lowerer with an empty module.
    pub fn new(p: &'p Program) -> Self {
        Lowerer {
            p,
            module: Module::default(),
            instances: HashMap::new(),
            in_progress: HashSet::new(),
            errors: Vec::new(),
            library: false,
            imported: HashMap::new(),
            math: None,
            known_consts: None,
            missing_const: false,
            const_errors_reported: false,
        }
    }

    /// A lowerer for evaluating consts: a const reads its value from `known` (see
    /// [`crate::consts`]).
    pub(crate) fn evaluating(
        p: &'p Program,
        library: bool,
        math: Option<&'static crate::mathlib::MathLib>,
        known: &'p [Option<Vec<Scalar>>],
    ) -> Self {
        Lowerer {
            library,
            math,
            known_consts: Some(known),
            ..Lowerer::new(p)
        }
    }

    /// Whether a const read while evaluating consts had no value.
    pub(crate) fn missing_const(&self) -> bool {
        self.missing_const
    }

    /// The value of const `id`: every const of the program is evaluated on first use.
    fn const_value(&mut self, id: ConstId) -> Vec<Scalar> {
        let p = self.p;
        if let Some(known) = self.known_consts {
            if let Some(v) = &known[id.0 as usize] {
                return v.clone();
            }
            self.missing_const = true;
            return crate::consts::placeholder(p, id);
        }
        if let Err(e) = self.evaluate_consts() {
            self.errors.extend(e);
        }
        match p.const_values.get() {
            Some(Ok(values)) => values[id.0 as usize].clone(),
            _ => crate::consts::placeholder(p, id),
        }
    }

    /// Evaluates every const of the program (once per program; see [`crate::consts`]).
    /// Their errors are returned to the first caller only.
    pub fn evaluate_consts(&mut self) -> Result<(), Vec<Diag>> {
        let (p, library, math) = (self.p, self.library, self.math);
        let values = p
            .const_values
            .get_or_init(|| crate::consts::evaluate(p, library, math));
        match values {
            Err(e) if !self.const_errors_reported => {
                self.const_errors_reported = true;
                Err(e.clone())
            }
            _ => Ok(()),
        }
    }

    /// Takes the math library's functions from `lib` (the root crate passes one optimised
    /// once per process); without this, from [`crate::mathlib::library`] as lowered.
    pub fn with_math(mut self, lib: Option<&'static crate::mathlib::MathLib>) -> Self {
        self.math = lib;
        self
    }

    /// A lowerer for the math library's own program (see [`crate::mathlib`]).
    pub fn library(p: &'p Program) -> Self {
        Lowerer {
            library: true,
            ..Lowerer::new(p)
        }
    }

    /// The kernel implementing builtin `name` at type `t` (`exp` at `f64`: the library's
    /// `exp_f64`), if the math library has one: imported into the module on first use.
    /// Inside the library, a function's own builtin is the host routine (its fallback).
    fn math_fn(&mut self, name: &str, t: ScalarType) -> Option<KernelId> {
        let fname = crate::mathlib::fn_name(name, t);
        if self.library {
            let id = *self.p.item_ids.get(&fname)?;
            if self.in_progress.contains(&(id, vec![])) {
                return None;
            }
            return self.item_inner(id, &[]);
        }
        let lib = match self.math {
            Some(lib) => lib,
            None => crate::mathlib::library()?,
        };
        let id = *lib.fns.get(&fname)?;
        Some(crate::mathlib::import(
            lib,
            id,
            &mut self.module,
            &mut self.imported,
        ))
    }

    /// The module built so far.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Consumes the lowerer.
    pub fn finish(self) -> Module {
        self.module
    }

    fn take_errors(&mut self) -> Result<(), Vec<Diag>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            let mut e = std::mem::take(&mut self.errors);
            e.dedup_by(|a, b| a.message == b.message && a.labels == b.labels);
            Err(e)
        }
    }

    /// The kernel of item `id` specialised for `targs` (one type per generic parameter),
    /// lowering it and its callees if needed.
    pub fn item(&mut self, id: ItemId, targs: &[ScalarType]) -> Result<KernelId, Vec<Diag>> {
        let r = self.item_inner(id, targs);
        self.take_errors()?;
        r.ok_or_else(Vec::new)
    }

    fn item_inner(&mut self, id: ItemId, targs: &[ScalarType]) -> Option<KernelId> {
        let key = (id, targs.to_vec());
        if let Some(&k) = self.instances.get(&key) {
            return Some(k);
        }
        let p = self.p;
        let item = &p.items[id.0 as usize];
        if !self.in_progress.insert(key.clone()) || item.generics.len() != targs.len() {
            self.errors.push(diag::error(
                p.file,
                item.header_span,
                format!(
                    "internal compiler error: cannot specialise `{}` (this is a compiler bug)",
                    item.name
                ),
                "here",
            ));
            return None;
        }
        let kind = match item.kind {
            ItemKind::Fn => KernelKind::Fn,
            ItemKind::Ufunc => KernelKind::Ufunc,
            ItemKind::Reduce => KernelKind::Reduce,
            ItemKind::Gufunc | ItemKind::Kernel => {
                self.errors.push(diag::error(
                    p.file,
                    item.header_span,
                    "this item kind is not supported yet",
                    "milestone M2",
                ));
                return None;
            }
        };
        let params: Vec<ScalarType> = item
            .params
            .iter()
            .flat_map(|(_, t, _)| t.flatten(targs))
            .collect();
        let results = item.ret.flatten(targs);
        let kernel = Kernel::new(instance_name(&item.name, targs), kind, params, results);
        let mut fx = Fx::new(self, kernel, targs.to_vec());
        let entry_params = fx.k.block(fx.k.entry()).params.clone();
        let mut next = entry_params.into_iter();
        for (_, ty, local) in &item.params {
            let n = ty.flatten(targs).len();
            let vals: Vec<Value> = next.by_ref().take(n).collect();
            fx.frames
                .last_mut()
                .expect("a frame")
                .vals
                .insert(*local, vals);
        }
        let vals = fx.expr(&item.body);
        fx.ret(vals);
        let k = fx.finish();
        self.in_progress.remove(&key);
        let kid = self.module.push(k);
        self.instances.insert(key, kid);
        Some(kid)
    }

    /// A kernel with no parameters computing reduce `id`'s identity for `targs`.
    pub fn identity(&mut self, id: ItemId, targs: &[ScalarType]) -> Result<KernelId, Vec<Diag>> {
        let p = self.p;
        let item = &p.items[id.0 as usize];
        let Some(identity) = &item.identity else {
            return Err(vec![diag::error(
                p.file,
                item.header_span,
                format!("`{}` is not a reduce", item.name),
                "no identity",
            )]);
        };
        let name = format!("{}::identity", instance_name(&item.name, targs));
        if let Some(k) = self.module.find(&name) {
            return Ok(k);
        }
        let kernel = Kernel::new(name, KernelKind::Identity, vec![], item.ret.flatten(targs));
        let mut fx = Fx::new(self, kernel, targs.to_vec());
        let vals = fx.expr(identity);
        fx.ret(vals);
        let k = fx.finish();
        self.take_errors()?;
        Ok(self.module.push(k))
    }

    /// A kernel with no parameters computing const `id` (so that its literals are checked
    /// even when nothing uses it, and so tools can show its value).
    pub fn constant(&mut self, id: ConstId) -> Result<KernelId, Vec<Diag>> {
        let p = self.p;
        let c = &p.consts[id.0 as usize];
        let kernel = Kernel::new(c.name.clone(), KernelKind::Const, vec![], c.ty.flatten(&[]));
        let mut fx = Fx::new(self, kernel, vec![]);
        fx.frames.push(Frame {
            vals: HashMap::new(),
        });
        let vals = fx.expr(&c.value);
        fx.ret(vals);
        let k = fx.finish();
        self.take_errors()?;
        Ok(self.module.push(k))
    }

    /// A thunk evaluating a script expression: its parameters are the script locals the
    /// expression reads (returned in order, each flattened), its results the value.
    pub fn thunk(
        &mut self,
        name: &str,
        locals: &'p [LocalInfo],
        expr: &TExpr,
    ) -> Result<(KernelId, Vec<LocalId>), Vec<Diag>> {
        let free = free_locals(expr);
        let params: Vec<ScalarType> = free
            .iter()
            .flat_map(|l| locals[l.0 as usize].ty.flatten(&[]))
            .collect();
        let kernel = Kernel::new(name, KernelKind::Thunk, params, expr.ty.flatten(&[]));
        let mut fx = Fx::new(self, kernel, vec![]);
        let entry_params = fx.k.block(fx.k.entry()).params.clone();
        let mut next = entry_params.into_iter();
        for l in &free {
            let n = locals[l.0 as usize].ty.flatten(&[]).len();
            let vals: Vec<Value> = next.by_ref().take(n).collect();
            fx.frames.last_mut().expect("a frame").vals.insert(*l, vals);
        }
        let vals = fx.expr(expr);
        fx.ret(vals);
        let k = fx.finish();
        self.take_errors()?;
        Ok((self.module.push(k), free))
    }
}

/// Locals read by `e` that it does not declare itself, sorted.
pub fn free_locals(e: &TExpr) -> Vec<LocalId> {
    let mut used = HashSet::new();
    let mut declared = HashSet::new();
    walk_locals(e, &mut used, &mut declared);
    let mut v: Vec<LocalId> = used.difference(&declared).copied().collect();
    v.sort();
    v
}

fn walk_locals(e: &TExpr, used: &mut HashSet<LocalId>, declared: &mut HashSet<LocalId>) {
    visit(e, &mut |e| match &e.kind {
        TExprKind::Local(l) => {
            used.insert(*l);
        }
        TExprKind::For { var, .. } => {
            declared.insert(*var);
        }
        TExprKind::Block(b) => {
            for s in &b.stmts {
                match s {
                    TStmt::Let { locals, .. } => declared.extend(locals.iter().copied()),
                    TStmt::Assign(l, _) => {
                        used.insert(*l);
                    }
                    TStmt::Expr(_) | TStmt::Print(..) => {}
                }
            }
        }
        _ => {}
    });
}

/// Locals assigned anywhere inside `e`.
fn assigned_locals(e: &TExpr) -> Vec<LocalId> {
    let mut set = HashSet::new();
    visit(e, &mut |e| {
        if let TExprKind::Block(b) = &e.kind {
            for s in &b.stmts {
                if let TStmt::Assign(l, _) = s {
                    set.insert(*l);
                }
            }
        }
    });
    let mut v: Vec<LocalId> = set.into_iter().collect();
    v.sort();
    v
}

/// Pre-order visit of every expression in `e` (statements' expressions included).
pub fn visit(e: &TExpr, f: &mut dyn FnMut(&TExpr)) {
    f(e);
    match &e.kind {
        TExprKind::Lit(_)
        | TExprKind::Local(_)
        | TExprKind::Const(_)
        | TExprKind::Break
        | TExprKind::Continue
        | TExprKind::Error => {}
        TExprKind::Unary(_, x) | TExprKind::Cast(x) => visit(x, f),
        TExprKind::Binary(_, a, b) | TExprKind::While(a, b) => {
            visit(a, f);
            visit(b, f);
        }
        TExprKind::Builtin(_, args)
        | TExprKind::Call(_, _, args)
        | TExprKind::Tuple(args)
        | TExprKind::Array(_, args) => {
            for a in args {
                visit(a, f);
            }
        }
        TExprKind::Block(b) => {
            for s in &b.stmts {
                match s {
                    TStmt::Let { value, .. } | TStmt::Assign(_, value) | TStmt::Expr(value) => {
                        visit(value, f)
                    }
                    TStmt::Print(args, _) => {
                        for a in args {
                            visit(a, f);
                        }
                    }
                }
            }
            if let Some(t) = &b.tail {
                visit(t, f);
            }
        }
        TExprKind::If(c, t, e) => {
            visit(c, f);
            visit(t, f);
            if let Some(e) = e {
                visit(e, f);
            }
        }
        TExprKind::For {
            start, end, body, ..
        } => {
            visit(start, f);
            visit(end, f);
            visit(body, f);
        }
        TExprKind::Return(v) => {
            if let Some(v) = v {
                visit(v, f);
            }
        }
    }
}

/// Locals in scope of one body: an item, a const initialiser being inlined, or the script.
struct Frame {
    vals: HashMap<LocalId, Vec<Value>>,
}

struct LoopCx {
    brk: Block,
    cont: Block,
    carried: Carried,
}

/// Locals carried across a join (declared before a construct, assigned inside it), with the
/// number of scalars and the types each one has.
#[derive(Clone, Debug)]
struct Carried {
    locals: Vec<LocalId>,
    counts: Vec<usize>,
    tys: Vec<ScalarType>,
}

/// Translates one kernel.
struct Fx<'l, 'p> {
    lw: &'l mut Lowerer<'p>,
    k: Kernel,
    cur: Block,
    subst: Vec<ScalarType>,
    frames: Vec<Frame>,
    loops: Vec<LoopCx>,
}

impl<'l, 'p> Fx<'l, 'p> {
    fn new(lw: &'l mut Lowerer<'p>, k: Kernel, subst: Vec<ScalarType>) -> Self {
        let cur = k.entry();
        Fx {
            lw,
            k,
            cur,
            subst,
            frames: vec![Frame {
                vals: HashMap::new(),
            }],
            loops: vec![],
        }
    }

    fn finish(mut self) -> Kernel {
        kiln_ir::cfg::remove_unreachable_blocks(&mut self.k);
        self.k
    }

    fn loc(&self, span: Span) -> SourceLoc {
        let lc = self.lw.p.line_col(span.start as usize);
        SourceLoc {
            line: lc.line,
            col: lc.col,
            len: span.end - span.start,
        }
    }

    fn error(&mut self, span: Span, msg: impl Into<String>, label: impl Into<String>) {
        let d = diag::error(self.lw.p.file, span, msg, label);
        self.lw.errors.push(d);
    }

    fn scalar(&self, t: &Ty) -> ScalarType {
        t.flatten(&self.subst)
            .first()
            .copied()
            .unwrap_or(ScalarType::I64)
    }

    fn ins(&mut self, kind: InstKind, tys: &[ScalarType], loc: Option<SourceLoc>) -> Vec<Value> {
        let i = self.k.append_inst(self.cur, kind, tys, loc);
        self.k.inst(i).results.clone()
    }

    fn ins1(&mut self, kind: InstKind, ty: ScalarType, loc: Option<SourceLoc>) -> Value {
        self.ins(kind, &[ty], loc)[0]
    }

    fn konst(&mut self, c: Scalar) -> Value {
        self.ins1(InstKind::Const(c), c.ty(), None)
    }

    /// Ends the current block with `term` and continues in a fresh block without
    /// predecessors (code after `return`/`break`/`continue`).
    fn terminate(&mut self, term: InstKind) {
        self.ins(term, &[], None);
        self.cur = self.k.create_block();
    }

    fn jump(&mut self, block: Block, args: Vec<Value>) {
        self.ins(InstKind::Jump(BlockCall { block, args }), &[], None);
    }

    /// Ends the current block with a two-way branch.
    fn br(
        &mut self,
        cond: Value,
        then: Block,
        then_args: Vec<Value>,
        els: Block,
        else_args: Vec<Value>,
    ) {
        let t = BlockCall {
            block: then,
            args: then_args,
        };
        let e = BlockCall {
            block: els,
            args: else_args,
        };
        self.ins(InstKind::Branch(cond, t, e), &[], None);
    }

    fn ret(&mut self, vals: Vec<Value>) {
        let vals = self.canonical_nans(vals);
        self.ins(InstKind::Return(vals), &[], None);
    }

    /// `vals` with every float NaN replaced by the canonical quiet NaN (f32 `0x7fc00000`,
    /// f64 `0x7ff8000000000000`), where NaN bits become observable: what a kernel returns,
    /// what `to_bits` sees, the sign `copysign` takes. Kiln has one NaN (docs/language.md
    /// §6): inside a kernel an operation may make a NaN of any sign and payload (x86
    /// makes negative ones, PTX positive ones, a vector `min` may take either operand's), so
    /// the executors agree on NaN bits only because every way out goes through here. The
    /// math library's own functions are exempt: their results only ever reach user code.
    fn canonical_nans(&mut self, vals: Vec<Value>) -> Vec<Value> {
        if self.lw.library {
            return vals;
        }
        vals.into_iter()
            .map(|v| {
                let t = self.k.value_type(v);
                let nan = match t {
                    ScalarType::F32 => Scalar::F32(f32::NAN),
                    ScalarType::F64 => Scalar::F64(f64::NAN),
                    _ => return v,
                }
                .canonical_nan();
                let is_nan = self.ins1(InstKind::Unary(UnaryOp::IsNan, v), ScalarType::Bool, None);
                let nan = self.konst(nan);
                self.ins1(InstKind::Select(is_nan, nan, v), t, None)
            })
            .collect()
    }

    fn frame(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("a frame is open")
    }

    fn get(&self, l: LocalId) -> Vec<Value> {
        self.frames
            .last()
            .and_then(|f| f.vals.get(&l))
            .cloned()
            .unwrap_or_default()
    }

    /// The current values of carried locals, flattened.
    fn carried(&self, c: &Carried) -> Vec<Value> {
        c.locals.iter().flat_map(|&l| self.get(l)).collect()
    }

    /// Rebinds carried locals to `vals` (block parameters), in order.
    fn rebind(&mut self, c: &Carried, vals: &[Value]) {
        let mut it = vals.iter().copied();
        for (&l, &n) in c.locals.iter().zip(&c.counts) {
            let v: Vec<Value> = it.by_ref().take(n).collect();
            self.frame().vals.insert(l, v);
        }
    }

    /// The locals of `assigned` that exist before the construct, with their shapes fixed now:
    /// code after a `return` inside the construct may leave a local without a value, and
    /// the join blocks must still have one parameter per scalar.
    fn carried_set(&self, assigned: Vec<LocalId>) -> Carried {
        let f = self.frames.last().expect("a frame is open");
        let locals: Vec<LocalId> = assigned
            .into_iter()
            .filter(|l| f.vals.contains_key(l))
            .collect();
        let counts = locals.iter().map(|&l| self.get(l).len()).collect();
        let tys = locals
            .iter()
            .flat_map(|&l| self.get(l))
            .map(|v| self.k.value_type(v))
            .collect();
        Carried {
            locals,
            counts,
            tys,
        }
    }

    fn new_block_with(&mut self, tys: &[ScalarType]) -> (Block, Vec<Value>) {
        let b = self.k.create_block();
        let ps = tys
            .iter()
            .map(|&t| self.k.append_block_param(b, t))
            .collect();
        (b, ps)
    }

    /// Lowers an expression that has one value. `None` means it diverged (`return`,
    /// `break`, `continue` inside it): the code that would use the value is unreachable,
    /// and the caller stops lowering the enclosing expression.
    fn value(&mut self, e: &TExpr) -> Option<Value> {
        self.expr(e).first().copied()
    }

    fn stmt(&mut self, s: &TStmt) {
        match s {
            TStmt::Let {
                locals,
                destructure,
                value,
            } => {
                let vals = self.expr(value);
                if *destructure {
                    for (l, v) in locals.iter().zip(vals) {
                        self.frame().vals.insert(*l, vec![v]);
                    }
                } else if let Some(l) = locals.first() {
                    self.frame().vals.insert(*l, vals);
                }
            }
            TStmt::Assign(l, value) => {
                let vals = self.expr(value);
                self.frame().vals.insert(*l, vals);
            }
            TStmt::Expr(e) => {
                self.expr(e);
            }
            TStmt::Print(_, span) => self.error(
                *span,
                "`print` cannot be used inside an expression",
                "only as a script statement",
            ),
        }
    }

    fn expr(&mut self, e: &TExpr) -> Vec<Value> {
        match &e.kind {
            TExprKind::Lit(lit) => {
                let ty = self.scalar(&e.ty);
                let c = self.literal(lit, ty, e.span);
                vec![self.konst(c)]
            }
            TExprKind::Local(l) => self.get(*l),
            TExprKind::Const(id) => {
                let vals = self.lw.const_value(*id);
                vals.into_iter().map(|v| self.konst(v)).collect()
            }
            TExprKind::Unary(op, x) => {
                let Some(v) = self.value(x) else {
                    return vec![];
                };
                let ty = self.k.value_type(v);
                let op = match op {
                    UnOp::Neg => UnaryOp::Neg,
                    UnOp::Not => UnaryOp::Not,
                };
                vec![self.ins1(InstKind::Unary(op, v), ty, None)]
            }
            TExprKind::Binary(BinOp::And, a, b) => self.short_circuit(true, a, b),
            TExprKind::Binary(BinOp::Or, a, b) => self.short_circuit(false, a, b),
            TExprKind::Binary(op, a, b) => {
                let Some(va) = self.value(a) else {
                    return vec![];
                };
                let Some(vb) = self.value(b) else {
                    return vec![];
                };
                let ty = self.k.value_type(va);
                let op = binary_op(*op);
                let rty = if op.is_comparison() {
                    ScalarType::Bool
                } else {
                    ty
                };
                // `%` on floats is the math library's `fmod` (exact on every back end).
                if op == BinaryOp::Rem && ty.is_float() {
                    if let Some(kid) = self.lw.math_fn("fmod", ty) {
                        return self.ins(InstKind::Call(kid, vec![va, vb]), &[ty], None);
                    }
                }
                let loc = (op.can_trap() && ty.is_int()).then(|| self.loc(e.span));
                vec![self.ins1(InstKind::Binary(op, va, vb), rty, loc)]
            }
            TExprKind::Cast(x) => {
                let Some(v) = self.value(x) else {
                    return vec![];
                };
                let to = self.scalar(&e.ty);
                if self.k.value_type(v) == to {
                    vec![v]
                } else {
                    vec![self.ins1(InstKind::Cast(v), to, None)]
                }
            }
            TExprKind::Builtin(b, args) => self.builtin(*b, args, e),
            TExprKind::Call(id, targs, args) => {
                let mut vals = Vec::new();
                for a in args {
                    let v = self.expr(a);
                    if v.len() < a.ty.flatten(&self.subst).len() {
                        return vec![]; // the argument diverged
                    }
                    vals.extend(v);
                }
                let targs: Vec<ScalarType> = targs.iter().map(|t| self.scalar(t)).collect();
                match self.lw.item_inner(*id, &targs) {
                    Some(kid) => {
                        let results = self.lw.module.kernel(kid).results.clone();
                        let loc = Some(self.loc(e.span));
                        self.ins(InstKind::Call(kid, vals), &results, loc)
                    }
                    None => {
                        let tys = e.ty.flatten(&self.subst);
                        tys.iter()
                            .map(|&t| self.konst(Scalar::from_bits(t, 0)))
                            .collect()
                    }
                }
            }
            TExprKind::Tuple(items) => items.iter().flat_map(|it| self.expr(it)).collect(),
            TExprKind::Block(b) => {
                for s in &b.stmts {
                    self.stmt(s);
                }
                match &b.tail {
                    Some(t) => self.expr(t),
                    None => vec![],
                }
            }
            TExprKind::If(c, t, els) => self.if_expr(c, t, els.as_deref(), &e.ty, e),
            TExprKind::While(c, body) => {
                self.while_loop(c, body, e);
                vec![]
            }
            TExprKind::For {
                var,
                start,
                end,
                inclusive,
                body,
            } => {
                self.for_loop(*var, start, end, *inclusive, body);
                vec![]
            }
            TExprKind::Break | TExprKind::Continue => {
                let Some(lp) = self.loops.last() else {
                    self.error(
                        e.span,
                        "`break`/`continue` cannot leave a script expression",
                        "not inside a loop of this expression",
                    );
                    return vec![];
                };
                let (target, carried) = if matches!(e.kind, TExprKind::Break) {
                    (lp.brk, lp.carried.clone())
                } else {
                    (lp.cont, lp.carried.clone())
                };
                let args = self.carried(&carried);
                self.terminate(InstKind::Jump(BlockCall {
                    block: target,
                    args,
                }));
                vec![]
            }
            TExprKind::Return(v) => {
                let vals = match v {
                    Some(v) => self.expr(v),
                    None => vec![],
                };
                let vals = self.canonical_nans(vals);
                self.terminate(InstKind::Return(vals));
                vec![]
            }
            TExprKind::Error => {
                self.error(e.span, "internal compiler error: lowering an expression with a type error (this is a compiler bug)", "here");
                vec![]
            }
            TExprKind::Array(f, _) => {
                self.error(e.span, format!("internal compiler error: `{}` reached the lowerer; the script runner evaluates array builtins (this is a compiler bug)", f.name()), "here");
                vec![]
            }
        }
    }

    fn literal(&mut self, lit: &TLit, ty: ScalarType, span: Span) -> Scalar {
        match lit {
            TLit::Int {
                magnitude,
                negative,
            } => {
                let v = if *negative {
                    -(*magnitude as i128)
                } else {
                    *magnitude as i128
                };
                let fits = |lo: i128, hi: i128| (lo..=hi).contains(&v);
                let (ok, c) = match ty {
                    ScalarType::I32 => (
                        fits(i32::MIN as i128, i32::MAX as i128),
                        Scalar::I32(v as i32),
                    ),
                    ScalarType::I64 => (
                        fits(i64::MIN as i128, i64::MAX as i128),
                        Scalar::I64(v as i64),
                    ),
                    ScalarType::U32 => (fits(0, u32::MAX as i128), Scalar::U32(v as u32)),
                    ScalarType::U64 => (fits(0, u64::MAX as i128), Scalar::U64(v as u64)),
                    ScalarType::F32 => {
                        let m = *magnitude as f32;
                        (true, Scalar::F32(if *negative { -m } else { m }))
                    }
                    ScalarType::F64 => {
                        let m = *magnitude as f64;
                        (true, Scalar::F64(if *negative { -m } else { m }))
                    }
                    ScalarType::Bool => (false, Scalar::Bool(false)),
                };
                if !ok {
                    let shown = if *negative {
                        format!("-{magnitude}")
                    } else {
                        magnitude.to_string()
                    };
                    let ctx = if self.subst.is_empty() {
                        String::new()
                    } else {
                        format!(" (in `{}`)", self.k.name)
                    };
                    self.error(
                        span,
                        format!("literal `{shown}` does not fit in `{ty}`{ctx}"),
                        format!("`{ty}` cannot hold this value"),
                    );
                }
                c
            }
            TLit::Float(text) => {
                let c = match ty {
                    ScalarType::F32 => text.parse::<f32>().map(Scalar::F32),
                    _ => text.parse::<f64>().map(Scalar::F64),
                };
                match c {
                    Ok(c)
                        if !matches!(c, Scalar::F32(v) if v.is_infinite())
                            && !matches!(c, Scalar::F64(v) if v.is_infinite()) =>
                    {
                        c
                    }
                    _ => {
                        self.error(
                            span,
                            format!("float literal `{text}` is out of range for `{ty}`"),
                            "overflows to infinity",
                        );
                        Scalar::from_bits(ty, 0)
                    }
                }
            }
            TLit::Bool(b) => Scalar::Bool(*b),
            TLit::Named(c) => match ty {
                ScalarType::F32 => Scalar::F32(c.f32()),
                _ => Scalar::F64(c.f64()),
            },
            TLit::Str(_) => {
                self.error(
                    span,
                    "strings can only be passed to script builtins such as `load` and `save`",
                    "a string",
                );
                Scalar::Bool(false)
            }
        }
    }

    fn builtin(&mut self, b: Builtin, args: &[TExpr], e: &TExpr) -> Vec<Value> {
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            let Some(v) = self.value(a) else {
                return vec![];
            };
            vals.push(v);
        }
        let ty = |fx: &Self, i: usize| fx.k.value_type(vals[i]);
        // Transcendental functions (and `round`, `ldexp`) come from the math library.
        let library_op = match b {
            Builtin::Unary(op) => op.float_only() && !op.is_predicate(),
            Builtin::Binary(op) => op.float_only() && op != BinaryOp::Copysign,
            Builtin::Ldexp => true,
            _ => false,
        };
        if library_op {
            let t = ty(self, 0);
            if let Some(kid) = self.lw.math_fn(b.name(), t) {
                return self.ins(InstKind::Call(kid, vals), &[t], None);
            }
        }
        match b {
            Builtin::Unary(op) => vec![self.ins1(InstKind::Unary(op, vals[0]), ty(self, 0), None)],
            Builtin::Predicate(op) => {
                vec![self.ins1(InstKind::Unary(op, vals[0]), ScalarType::Bool, None)]
            }
            Builtin::Binary(BinaryOp::Copysign) => {
                // The sign of a NaN is that of the canonical NaN: positive.
                let sign = self.canonical_nans(vec![vals[1]])[0];
                let op = BinaryOp::Copysign;
                vec![self.ins1(InstKind::Binary(op, vals[0], sign), ty(self, 0), None)]
            }
            Builtin::Binary(op) => {
                vec![self.ins1(InstKind::Binary(op, vals[0], vals[1]), ty(self, 0), None)]
            }
            Builtin::Fma => {
                vec![self.ins1(InstKind::Fma(vals[0], vals[1], vals[2]), ty(self, 0), None)]
            }
            Builtin::Clamp => {
                let t = ty(self, 0);
                let lo = self.ins1(InstKind::Binary(BinaryOp::Max, vals[0], vals[1]), t, None);
                vec![self.ins1(InstKind::Binary(BinaryOp::Min, lo, vals[2]), t, None)]
            }
            Builtin::Select => vec![self.ins1(
                InstKind::Select(vals[0], vals[1], vals[2]),
                ty(self, 1),
                None,
            )],
            Builtin::Assert => {
                let loc = Some(self.loc(e.span));
                self.ins(InstKind::Assert(vals[0]), &[], loc);
                vec![]
            }
            Builtin::ToBits => {
                let to = self.scalar(&e.ty);
                let x = self.canonical_nans(vec![vals[0]])[0];
                vec![self.ins1(InstKind::Bitcast(x), to, None)]
            }
            Builtin::FromBits => {
                let to = self.scalar(&e.ty);
                vec![self.ins1(InstKind::Bitcast(vals[0]), to, None)]
            }
            Builtin::Ldexp => {
                // Only without a library (a compiler bug, caught by the library's tests):
                // x * 2^n by repeated exact scaling would be wrong near the subnormals, so
                // this is an error rather than a guess.
                self.error(
                    e.span,
                    "internal compiler error: `ldexp` needs the math library",
                    "here",
                );
                vec![]
            }
        }
    }

    /// `a && b` (`and` = true) or `a || b`: `b` runs only when it decides the result.
    fn short_circuit(&mut self, and: bool, a: &TExpr, b: &TExpr) -> Vec<Value> {
        let Some(va) = self.value(a) else {
            return vec![];
        };
        let carried = self.carried_set(assigned_locals(b));
        let decided = self.konst(Scalar::Bool(!and));
        let mut tys = vec![ScalarType::Bool];
        tys.extend(carried.tys.clone());
        let (merge, params) = self.new_block_with(&tys);
        let rhs = self.k.create_block();
        let mut skip_args = vec![decided];
        skip_args.extend(self.carried(&carried));
        if and {
            self.br(va, rhs, vec![], merge, skip_args);
        } else {
            self.br(va, merge, skip_args, rhs, vec![]);
        }
        self.cur = rhs;
        let vb = match self.value(b) {
            Some(v) => v,
            // `b` diverged: this is dead code; any bool keeps the jump well-formed.
            None => self.konst(Scalar::Bool(false)),
        };
        let mut args = vec![vb];
        args.extend(self.carried(&carried));
        self.jump(merge, args);
        self.cur = merge;
        self.rebind(&carried, &params[1..]);
        vec![params[0]]
    }

    fn if_expr(
        &mut self,
        c: &TExpr,
        t: &TExpr,
        els: Option<&TExpr>,
        ty: &Ty,
        whole: &TExpr,
    ) -> Vec<Value> {
        let Some(vc) = self.value(c) else {
            return vec![];
        };
        let carried = self.carried_set(assigned_locals(whole));
        let result_tys = if matches!(ty, Ty::Unit | Ty::Never) {
            vec![]
        } else {
            ty.flatten(&self.subst)
        };
        let mut tys = result_tys.clone();
        tys.extend(carried.tys.clone());
        let (merge, params) = self.new_block_with(&tys);
        let then_b = self.k.create_block();
        let else_b = self.k.create_block();
        self.br(vc, then_b, vec![], else_b, vec![]);
        let entry_vals: Vec<Vec<Value>> = carried.locals.iter().map(|&l| self.get(l)).collect();
        for (block, arm) in [(then_b, Some(t)), (else_b, els)] {
            // Each arm starts from the values before the `if`.
            for (l, v) in carried.locals.iter().zip(&entry_vals) {
                self.frame().vals.insert(*l, v.clone());
            }
            self.cur = block;
            let vals = match arm {
                Some(a) => self.expr(a),
                None => vec![],
            };
            let mut args: Vec<Value> = if result_tys.is_empty() { vec![] } else { vals };
            if args.len() != result_tys.len() {
                // An arm that diverges produced no value; it is in a dead block, so any
                // well-typed placeholder will do.
                args = result_tys
                    .iter()
                    .map(|&t| self.konst(Scalar::from_bits(t, 0)))
                    .collect();
            }
            args.extend(self.carried(&carried));
            self.jump(merge, args);
        }
        self.cur = merge;
        self.rebind(&carried, &params[result_tys.len()..]);
        params[..result_tys.len()].to_vec()
    }

    fn while_loop(&mut self, c: &TExpr, body: &TExpr, whole: &TExpr) {
        let carried = self.carried_set(assigned_locals(whole));
        let tys = carried.tys.clone();
        let (header, hparams) = self.new_block_with(&tys);
        let init = self.carried(&carried);
        self.jump(header, init);
        self.cur = header;
        self.rebind(&carried, &hparams);
        let Some(vc) = self.value(c) else { return };
        let tys = carried.tys.clone();
        let (exit, eparams) = self.new_block_with(&tys);
        let body_b = self.k.create_block();
        let out = self.carried(&carried);
        self.br(vc, body_b, vec![], exit, out);
        self.cur = body_b;
        self.loops.push(LoopCx {
            brk: exit,
            cont: header,
            carried: carried.clone(),
        });
        self.expr(body);
        self.loops.pop();
        let back = self.carried(&carried);
        self.jump(header, back);
        self.cur = exit;
        self.rebind(&carried, &eparams);
    }

    fn for_loop(
        &mut self,
        var: LocalId,
        start: &TExpr,
        end: &TExpr,
        inclusive: bool,
        body: &TExpr,
    ) {
        let Some(vs) = self.value(start) else { return };
        let Some(ve) = self.value(end) else { return };
        let carried = self.carried_set(assigned_locals(body));
        let mut tys = vec![ScalarType::I64];
        tys.extend(carried.tys.clone());
        let (header, hparams) = self.new_block_with(&tys);
        let mut init = vec![vs];
        init.extend(self.carried(&carried));
        self.jump(header, init);
        self.cur = header;
        let i = hparams[0];
        self.rebind(&carried, &hparams[1..]);
        let cmp = if inclusive {
            BinaryOp::Le
        } else {
            BinaryOp::Lt
        };
        let go = self.ins1(InstKind::Binary(cmp, i, ve), ScalarType::Bool, None);
        let ctys = carried.tys.clone();
        let (exit, eparams) = self.new_block_with(&ctys);
        let (latch, lparams) = self.new_block_with(&ctys);
        let body_b = self.k.create_block();
        let out = self.carried(&carried);
        self.br(go, body_b, vec![], exit, out);
        self.cur = body_b;
        self.frame().vals.insert(var, vec![i]);
        self.loops.push(LoopCx {
            brk: exit,
            cont: latch,
            carried: carried.clone(),
        });
        self.expr(body);
        self.loops.pop();
        let to_latch = self.carried(&carried);
        self.jump(latch, to_latch);
        // Latch: i + 1. For `..=`, leave when i == end first, so `0..=i64::MAX` terminates
        // instead of wrapping.
        self.cur = latch;
        self.rebind(&carried, &lparams);
        let one = self.konst(Scalar::I64(1));
        let next = self.ins1(
            InstKind::Binary(BinaryOp::Add, i, one),
            ScalarType::I64,
            None,
        );
        let mut back = vec![next];
        back.extend(self.carried(&carried));
        if inclusive {
            let at_end = self.ins1(
                InstKind::Binary(BinaryOp::Eq, i, ve),
                ScalarType::Bool,
                None,
            );
            let out = self.carried(&carried);
            self.br(at_end, exit, out, header, back);
        } else {
            self.jump(header, back);
        }
        self.cur = exit;
        self.rebind(&carried, &eparams);
    }
}

fn binary_op(op: BinOp) -> BinaryOp {
    match op {
        BinOp::Add => BinaryOp::Add,
        BinOp::Sub => BinaryOp::Sub,
        BinOp::Mul => BinaryOp::Mul,
        BinOp::Div => BinaryOp::Div,
        BinOp::Rem => BinaryOp::Rem,
        BinOp::BitAnd | BinOp::And => BinaryOp::And,
        BinOp::BitOr | BinOp::Or => BinaryOp::Or,
        BinOp::BitXor => BinaryOp::Xor,
        BinOp::Shl => BinaryOp::Shl,
        BinOp::Shr => BinaryOp::Shr,
        BinOp::Eq => BinaryOp::Eq,
        BinOp::Ne => BinaryOp::Ne,
        BinOp::Lt => BinaryOp::Lt,
        BinOp::Le => BinaryOp::Le,
        BinOp::Gt => BinaryOp::Gt,
        BinOp::Ge => BinaryOp::Ge,
    }
}
