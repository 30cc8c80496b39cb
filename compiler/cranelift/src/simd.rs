//! SIMD ufunc bodies: a kernel emitted on vectors of `lanes` elements at once.
//!
//! Cranelift offers 128-bit vectors on every target Kiln runs on, so a group is 2 lanes when
//! the kernel (with everything it calls) touches a 64-bit type and 4 lanes otherwise. Every
//! Kiln type lives in one 128-bit register: `f64` in `f64x2`, `f32` in `f32x4` (with 2 lanes,
//! only the low two are meaningful), `i64`/`u64` in `i64x2`, `i32`/`u32` in `i32x4`, and
//! `bool` as a lane mask of the group's width (`i64x2` for 2 lanes, `i32x4` for 4: all ones
//! or all zeros).
//!
//! Control flow is *if-converted*. The kernel's CFG must be acyclic; blocks are emitted in
//! reverse post-order, each under a lane mask (the OR of its incoming edges' masks; a
//! branch splits its block's mask by the condition). A block's parameters select, lane by
//! lane, the argument of the edge that lane took, and so do the results of several
//! `return`s. A block that not every path executes is skipped at run time when no lane is
//! in it, so rare paths (NaN, overflow, huge arguments) cost one test when unused. Callees
//! are emitted inline under the caller's mask.
//!
//! Every operation computes exactly what the scalar code computes, lane by lane (IEEE
//! operations are the same instructions on vectors; those without a vector form, such as
//! `libm` calls or 64-bit int↔float conversions, are *scalarised*: lanes extracted, the
//! scalar operation applied, lanes re-inserted), so the SIMD and scalar loops agree bit
//! for bit. A failing `assert` in an active lane sends the whole group to the *fallback*:
//! the scalar loop re-runs those elements and reports the first failure exactly. Kernels
//! with integer division, loops, or anything else [`plan`] rejects keep the scalar loop.

use std::collections::{HashMap, HashSet};

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{self as cl, types, InstBuilder, MemFlagsData};
use cranelift_frontend::Variable;
use kiln_ir::{
    BinaryOp, Block, InstKind, Kernel, KernelId, Module, Scalar, ScalarType, UnaryOp, Value,
    ValueDef,
};

use crate::translate::{byte_size, Emitter};

type Result<T> = std::result::Result<T, cranelift_module::ModuleError>;

/// How a kernel is vectorised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Elements per group: 2 when a 64-bit type occurs, else 4.
    pub lanes: u8,
}

/// Whether kernel `id` can run on vectors, and how: its CFG and its callees' are acyclic
/// and free of integer division (which has no vector form and can fail).
pub fn plan(m: &Module, id: KernelId) -> Option<Plan> {
    let mut wide = false;
    let mut seen = HashSet::new();
    vectorizable(m, id, &mut wide, &mut seen).then_some(Plan {
        lanes: if wide { 2 } else { 4 },
    })
}

fn vectorizable(m: &Module, id: KernelId, wide: &mut bool, seen: &mut HashSet<KernelId>) -> bool {
    if !seen.insert(id) {
        return true;
    }
    let k = m.kernel(id);
    let order = kiln_ir::cfg::reverse_post_order(k);
    let index: HashMap<Block, usize> = order.iter().enumerate().map(|(i, &b)| (b, i)).collect();
    for &b in &order {
        if kiln_ir::cfg::successors(k, b)
            .iter()
            .any(|s| index.get(s).is_none_or(|&j| j <= index[&b]))
        {
            return false; // a loop
        }
    }
    *wide |= k.values.iter().any(|v| {
        matches!(
            v.ty,
            ScalarType::F64 | ScalarType::I64 | ScalarType::U64
        )
    });
    for &b in &order {
        for &i in &k.block(b).insts {
            match &k.inst(i).kind {
                InstKind::Binary(op, a, _) if op.can_trap() && k.value_type(*a).is_int() => {
                    return false
                }
                InstKind::Call(callee, _) => {
                    if !vectorizable(m, *callee, wide, seen) {
                        return false;
                    }
                }
                _ => {}
            }
        }
    }
    true
}

fn little() -> MemFlagsData {
    MemFlagsData::new().with_endianness(cl::Endianness::Little)
}

/// Vector loads and stores: valid addresses, but only element alignment.
fn vmem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// The vector emitter's fixed context.
pub struct Simd {
    /// Elements per group.
    pub lanes: u8,
    /// Where a group goes when it must run on the scalar path (a failing assert).
    pub fallback: cl::Block,
}

/// One inlined kernel instance: its values live in Cranelift variables, because a value
/// defined in a block that the run time may skip is still read (and then ignored, by the
/// masks) further on.
struct Instance {
    vars: Vec<Option<Variable>>,
    edges: HashMap<(Block, usize), Variable>,
}

impl Simd {
    /// The register type holding a Kiln type.
    pub fn vtype(&self, t: ScalarType) -> cl::Type {
        match t {
            ScalarType::F64 => types::F64X2,
            ScalarType::F32 => types::F32X4,
            ScalarType::I64 | ScalarType::U64 => types::I64X2,
            ScalarType::I32 | ScalarType::U32 => types::I32X4,
            ScalarType::Bool => self.mask_type(),
        }
    }

    fn mask_type(&self) -> cl::Type {
        if self.lanes == 2 {
            types::I64X2
        } else {
            types::I32X4
        }
    }

    fn mask_lane(&self) -> cl::Type {
        self.mask_type().lane_type()
    }

    fn ones(&self, e: &mut Emitter) -> cl::Value {
        let lane = e.b.ins().iconst(self.mask_lane(), -1);
        e.b.ins().splat(self.mask_type(), lane)
    }

    fn recast(e: &mut Emitter, x: cl::Value, ty: cl::Type) -> cl::Value {
        if e.b.func.dfg.value_type(x) == ty {
            x
        } else {
            e.b.ins().bitcast(ty, little(), x)
        }
    }

    /// Lane `i` of the low 32 bits of each 64-bit lane: an `i64x2` mask as an `i32x4` mask
    /// whose two low lanes are meaningful.
    fn narrow_mask(e: &mut Emitter, m: cl::Value) -> cl::Value {
        let bytes = Self::recast(e, m, types::I8X16);
        let pick: Vec<u8> = [0u8, 1, 2, 3, 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11].to_vec();
        let imm = e.b.func.dfg.immediates.push(pick.into());
        let s = e.b.ins().shuffle(bytes, bytes, imm);
        Self::recast(e, s, types::I32X4)
    }

    /// A comparison's raw result (lanes as wide as the operands) as a group mask.
    fn mask_from(&self, e: &mut Emitter, raw: cl::Value, operand: ScalarType) -> cl::Value {
        let raw = Self::recast(e, raw, self.int_of(operand));
        if self.lanes == 2 && byte_size(operand) == 4 {
            e.b.ins().swiden_low(raw)
        } else {
            raw
        }
    }

    /// Lane by lane, `a` where mask `m` is set, else `b` (`a`, `b` of type `t`).
    fn choose(&self, e: &mut Emitter, m: cl::Value, t: ScalarType, a: cl::Value, b: cl::Value) -> cl::Value {
        let m = if self.lanes == 2 && byte_size(t) == 4 {
            Self::narrow_mask(e, m)
        } else {
            m
        };
        let m = Self::recast(e, m, self.vtype(t));
        e.b.ins().bitselect(m, a, b)
    }

    /// The integer vector type with `t`'s lane layout.
    fn int_of(&self, t: ScalarType) -> cl::Type {
        match t {
            ScalarType::F64 | ScalarType::I64 | ScalarType::U64 => types::I64X2,
            ScalarType::F32 | ScalarType::I32 | ScalarType::U32 => types::I32X4,
            ScalarType::Bool => self.mask_type(),
        }
    }

    fn and(e: &mut Emitter, p: Option<cl::Value>, c: cl::Value) -> cl::Value {
        match p {
            None => c,
            Some(p) => e.b.ins().band(p, c),
        }
    }

    fn and_not(e: &mut Emitter, p: Option<cl::Value>, c: cl::Value) -> cl::Value {
        match p {
            None => e.b.ins().bnot(c),
            Some(p) => e.b.ins().band_not(p, c),
        }
    }

    /// A constant in every lane.
    pub fn splat_const(&self, e: &mut Emitter, c: Scalar) -> cl::Value {
        if let Scalar::Bool(v) = c {
            let lane = e.b.ins().iconst(self.mask_lane(), if v { -1 } else { 0 });
            return e.b.ins().splat(self.mask_type(), lane);
        }
        let s = e.constant(c);
        e.b.ins().splat(self.vtype(c.ty()), s)
    }

    /// A scalar (in its scalar representation: `bool` is an `i8` 0/1) in every lane.
    pub fn splat(&self, e: &mut Emitter, x: cl::Value, t: ScalarType) -> cl::Value {
        let x = if t == ScalarType::Bool {
            self.bool_to_lane(e, x)
        } else {
            x
        };
        e.b.ins().splat(self.vtype(t), x)
    }

    fn bool_to_lane(&self, e: &mut Emitter, b: cl::Value) -> cl::Value {
        let w = e.b.ins().uextend(self.mask_lane(), b);
        e.b.ins().ineg(w)
    }

    /// Lane `i` of `v` as a scalar of type `t`.
    fn extract(&self, e: &mut Emitter, v: cl::Value, t: ScalarType, i: u8) -> cl::Value {
        let x = e.b.ins().extractlane(v, i);
        if t == ScalarType::Bool {
            e.b.ins().icmp_imm_s(IntCC::NotEqual, x, 0)
        } else {
            x
        }
    }

    /// A vector of type `t` from one scalar per lane.
    fn build(&self, e: &mut Emitter, t: ScalarType, lanes: &[cl::Value]) -> cl::Value {
        let lanes: Vec<cl::Value> = if t == ScalarType::Bool {
            lanes.iter().map(|&b| self.bool_to_lane(e, b)).collect()
        } else {
            lanes.to_vec()
        };
        let mut v = e.b.ins().splat(self.vtype(t), lanes[0]);
        for (i, &x) in lanes.iter().enumerate().skip(1) {
            v = e.b.ins().insertlane(v, x, i as u8);
        }
        v
    }

    /// Applies a scalar operation lane by lane.
    fn scalarize(
        &self,
        e: &mut Emitter,
        ins: &[(cl::Value, ScalarType)],
        out: ScalarType,
        f: &mut dyn FnMut(&mut Emitter, &[cl::Value]) -> Result<cl::Value>,
    ) -> Result<cl::Value> {
        let mut lanes = Vec::with_capacity(self.lanes as usize);
        for i in 0..self.lanes {
            let args: Vec<cl::Value> = ins
                .iter()
                .map(|&(v, t)| self.extract(e, v, t, i))
                .collect();
            lanes.push(f(e, &args)?);
        }
        Ok(self.build(e, out, &lanes))
    }

    /// Loads `lanes` consecutive elements of type `t` at `addr`.
    pub fn load(&self, e: &mut Emitter, t: ScalarType, addr: cl::Value) -> cl::Value {
        let size = byte_size(t);
        if t == ScalarType::Bool {
            let lanes: Vec<cl::Value> = (0..self.lanes)
                .map(|i| {
                    let x = e.b.ins().load(types::I8, crate::translate::mem(), addr, i32::from(i));
                    e.b.ins().icmp_imm_s(IntCC::NotEqual, x, 0)
                })
                .collect();
            return self.build(e, t, &lanes);
        }
        if size * u32::from(self.lanes) == 16 {
            return e.b.ins().load(self.vtype(t), vmem(), addr, 0);
        }
        // Two 32-bit lanes: one 64-bit load into the low half.
        let x = e.b.ins().load(types::I64, vmem(), addr, 0);
        let v = e.b.ins().scalar_to_vector(types::I64X2, x);
        Self::recast(e, v, self.vtype(t))
    }

    /// Stores the group's elements of `v` (type `t`) at `addr`.
    pub fn store(&self, e: &mut Emitter, t: ScalarType, v: cl::Value, addr: cl::Value) {
        let size = byte_size(t);
        if t == ScalarType::Bool {
            for i in 0..self.lanes {
                let b = self.extract(e, v, t, i);
                e.b.ins().store(crate::translate::mem(), b, addr, i32::from(i));
            }
            return;
        }
        if size * u32::from(self.lanes) == 16 {
            e.b.ins().store(vmem(), v, addr, 0);
            return;
        }
        let w = Self::recast(e, v, types::I64X2);
        let low = e.b.ins().extractlane(w, 0);
        e.b.ins().store(vmem(), low, addr, 0);
    }

    /// Emits kernel `id` on vectors: `args` are vectors, `pred` the lanes that run it
    /// (`None`: all), `pre` values already computed (hoisted) by IR value. Returns the
    /// result vectors (lanes outside `pred` hold unspecified values).
    pub fn kernel(
        &self,
        e: &mut Emitter,
        id: KernelId,
        args: &[cl::Value],
        pred: Option<cl::Value>,
        pre: &HashMap<Value, cl::Value>,
    ) -> Result<Vec<cl::Value>> {
        let k = e.unit.ir.kernel(id);
        let order = kiln_ir::cfg::reverse_post_order(k);
        let always = always_executed(k, &order);
        let mut incoming: HashMap<Block, Vec<(Block, usize, Vec<Value>)>> = HashMap::new();
        for &b in &order {
            if let Some(t) = k.terminator(b) {
                for (si, bc) in k.inst(t).kind.successors().into_iter().enumerate() {
                    incoming
                        .entry(bc.block)
                        .or_default()
                        .push((b, si, bc.args.clone()));
                }
            }
        }
        let mut inst = Instance {
            vars: vec![None; k.values.len()],
            edges: HashMap::new(),
        };
        for (&p, &a) in k.block(k.entry()).params.iter().zip(args) {
            self.def(e, &mut inst, k, p, a);
        }
        // Every edge starts inactive: a block skipped at run time leaves its edges so, even
        // in a loop whose previous group took them.
        let none = self.splat_const(e, Scalar::Bool(false));
        for edges in incoming.values() {
            for &(from, si, _) in edges {
                let var = self.edge_var(e, &mut inst, from, si);
                e.b.def_var(var, none);
            }
        }
        for (&v, &x) in pre {
            self.def(e, &mut inst, k, v, x);
        }
        let results: Vec<Variable> = k
            .results
            .iter()
            .map(|&t| e.b.declare_var(self.vtype(t)))
            .collect();
        for &bl in &order {
            let full = bl == k.entry() || always.contains(&bl);
            let p = if full {
                pred
            } else {
                let mut m: Option<cl::Value> = None;
                for &(from, si, _) in incoming.get(&bl).map_or(&[][..], |v| v.as_slice()) {
                    let var = self.edge_var(e, &mut inst, from, si);
                    let x = e.b.use_var(var);
                    m = Some(match m {
                        None => x,
                        Some(m) => e.b.ins().bor(m, x),
                    });
                }
                let m = match m {
                    Some(m) => m,
                    None => self.splat_const(e, Scalar::Bool(false)),
                };
                Some(m)
            };
            let after = if full {
                None
            } else {
                let body = e.b.create_block();
                let after = e.b.create_block();
                let any = e.b.ins().vany_true(p.expect("a partial block has a mask"));
                e.b.ins().brif(any, body, &[], after, &[]);
                e.b.switch_to_block(body);
                Some(after)
            };
            // Parameters: each lane takes the argument of the edge it came by.
            for (pi, &param) in k.block(bl).params.iter().enumerate() {
                let t = k.value_type(param);
                let mut val: Option<cl::Value> = None;
                for (from, si, args) in incoming.get(&bl).map_or(&[][..], |v| v.as_slice()) {
                    let a = self.get(e, &inst, args[pi]);
                    val = Some(match val {
                        None => a,
                        Some(v) => {
                            let var = self.edge_var(e, &mut inst, *from, *si);
                            let m = e.b.use_var(var);
                            self.choose(e, m, t, a, v)
                        }
                    });
                }
                if let Some(v) = val {
                    self.def(e, &mut inst, k, param, v);
                }
            }
            for &i in &k.block(bl).insts {
                let data = k.inst(i);
                if !data.results.is_empty() && data.results.iter().all(|r| pre.contains_key(r)) {
                    continue;
                }
                match &data.kind {
                    InstKind::Jump(_) => {
                        let m = match p {
                            Some(m) => m,
                            None => self.ones(e),
                        };
                        let var = self.edge_var(e, &mut inst, bl, 0);
                        e.b.def_var(var, m);
                    }
                    InstKind::Branch(c, _, _) => {
                        let c = self.get(e, &inst, *c);
                        let t = Self::and(e, p, c);
                        let f = Self::and_not(e, p, c);
                        let vt = self.edge_var(e, &mut inst, bl, 0);
                        e.b.def_var(vt, t);
                        let vf = self.edge_var(e, &mut inst, bl, 1);
                        e.b.def_var(vf, f);
                    }
                    InstKind::Return(vs) => {
                        for ((&v, &var), &t) in vs.iter().zip(&results).zip(&k.results) {
                            let x = self.get(e, &inst, v);
                            let x = match p {
                                None => x,
                                Some(m) => {
                                    let old = e.b.use_var(var);
                                    self.choose(e, m, t, x, old)
                                }
                            };
                            e.b.def_var(var, x);
                        }
                    }
                    InstKind::Assert(c) => {
                        let c = self.get(e, &inst, *c);
                        let fail = Self::and_not(e, p, c);
                        let any = e.b.ins().vany_true(fail);
                        let cont = e.b.create_block();
                        e.b.ins().brif(any, self.fallback, &[], cont, &[]);
                        e.b.switch_to_block(cont);
                    }
                    InstKind::Call(callee, args) => {
                        let args: Vec<cl::Value> =
                            args.iter().map(|&a| self.get(e, &inst, a)).collect();
                        let rs = self.kernel(e, *callee, &args, p, &HashMap::new())?;
                        for (&r, x) in data.results.iter().zip(rs) {
                            self.def(e, &mut inst, k, r, x);
                        }
                    }
                    _ => {
                        let x = self.value(e, &inst, k, i)?;
                        self.def(e, &mut inst, k, data.results[0], x);
                    }
                }
            }
            if let Some(after) = after {
                e.b.ins().jump(after, &[]);
                e.b.switch_to_block(after);
            }
        }
        Ok(results.iter().map(|&v| e.b.use_var(v)).collect())
    }

    fn def(&self, e: &mut Emitter, inst: &mut Instance, k: &Kernel, v: Value, x: cl::Value) {
        let var = *inst.vars[v.index()]
            .get_or_insert_with(|| e.b.declare_var(self.vtype(k.value_type(v))));
        e.b.def_var(var, x);
    }

    fn get(&self, e: &mut Emitter, inst: &Instance, v: Value) -> cl::Value {
        let var = inst.vars[v.index()].expect("verified IR defines values before use");
        e.b.use_var(var)
    }

    fn edge_var(&self, e: &mut Emitter, inst: &mut Instance, from: Block, si: usize) -> Variable {
        *inst
            .edges
            .entry((from, si))
            .or_insert_with(|| e.b.declare_var(self.mask_type()))
    }

    /// A value instruction on vectors.
    fn value(
        &self,
        e: &mut Emitter,
        inst: &Instance,
        k: &Kernel,
        i: kiln_ir::Inst,
    ) -> Result<cl::Value> {
        let data = k.inst(i);
        let rty = k.value_type(data.results[0]);
        Ok(match &data.kind {
            InstKind::Const(c) => self.splat_const(e, *c),
            InstKind::Unary(op, x) => {
                let t = k.value_type(*x);
                let x = self.get(e, inst, *x);
                self.unary(e, *op, t, x)?
            }
            InstKind::Binary(op, a, b) => {
                let (t, bt) = (k.value_type(*a), k.value_type(*b));
                let av = self.get(e, inst, *a);
                if op.is_shift() {
                    return self.shift(e, inst, k, *op, t, av, *b, bt);
                }
                let bv = self.get(e, inst, *b);
                self.binary(e, *op, t, av, bv)?
            }
            InstKind::Fma(a, b, c) => {
                let (a, b, c) = (
                    self.get(e, inst, *a),
                    self.get(e, inst, *b),
                    self.get(e, inst, *c),
                );
                e.b.ins().fma(a, b, c)
            }
            InstKind::Select(c, a, b) => {
                let (c, a, b) = (
                    self.get(e, inst, *c),
                    self.get(e, inst, *a),
                    self.get(e, inst, *b),
                );
                self.choose(e, c, rty, a, b)
            }
            InstKind::Cast(x) => {
                let from = k.value_type(*x);
                let xv = self.get(e, inst, *x);
                self.cast(e, xv, from, rty)?
            }
            InstKind::Bitcast(x) => {
                let xv = self.get(e, inst, *x);
                Self::recast(e, xv, self.vtype(rty))
            }
            other => unreachable!("not a value instruction: {other:?}"),
        })
    }

    fn unary(
        &self,
        e: &mut Emitter,
        op: UnaryOp,
        t: ScalarType,
        x: cl::Value,
    ) -> Result<cl::Value> {
        let ins = e.b.ins();
        Ok(match op {
            UnaryOp::Neg if t.is_float() => ins.fneg(x),
            UnaryOp::Neg => ins.ineg(x),
            UnaryOp::Not => ins.bnot(x),
            UnaryOp::Abs if t.is_float() => ins.fabs(x),
            UnaryOp::Abs if t.is_signed_int() && t == ScalarType::I32 => ins.iabs(x),
            UnaryOp::Abs if !t.is_signed_int() => x,
            UnaryOp::Sqrt => ins.sqrt(x),
            UnaryOp::Floor => ins.floor(x),
            UnaryOp::Ceil => ins.ceil(x),
            UnaryOp::Trunc => ins.trunc(x),
            UnaryOp::IsNan => {
                let raw = ins.fcmp(FloatCC::Unordered, x, x);
                self.mask_from(e, raw, t)
            }
            UnaryOp::IsInf | UnaryOp::IsFinite => {
                let a = ins.fabs(x);
                let inf = self.splat_const(
                    e,
                    if t == ScalarType::F32 {
                        Scalar::F32(f32::INFINITY)
                    } else {
                        Scalar::F64(f64::INFINITY)
                    },
                );
                let cc = if op == UnaryOp::IsInf {
                    FloatCC::Equal
                } else {
                    FloatCC::LessThan
                };
                let raw = e.b.ins().fcmp(cc, a, inf);
                self.mask_from(e, raw, t)
            }
            // i64 `abs`, `round` and the libm functions: lane by lane.
            _ => self.scalarize(e, &[(x, t)], t, &mut |e, a| e.unary(op, t, a[0]))?,
        })
    }

    fn binary(
        &self,
        e: &mut Emitter,
        op: BinaryOp,
        t: ScalarType,
        a: cl::Value,
        b: cl::Value,
    ) -> Result<cl::Value> {
        if op.is_comparison() {
            let raw = if t.is_float() {
                let cc = match op {
                    BinaryOp::Eq => FloatCC::Equal,
                    BinaryOp::Ne => FloatCC::NotEqual,
                    BinaryOp::Lt => FloatCC::LessThan,
                    BinaryOp::Le => FloatCC::LessThanOrEqual,
                    BinaryOp::Gt => FloatCC::GreaterThan,
                    _ => FloatCC::GreaterThanOrEqual,
                };
                e.b.ins().fcmp(cc, a, b)
            } else {
                let signed = t.is_signed_int();
                let cc = match (op, signed) {
                    (BinaryOp::Eq, _) => IntCC::Equal,
                    (BinaryOp::Ne, _) => IntCC::NotEqual,
                    (BinaryOp::Lt, true) => IntCC::SignedLessThan,
                    (BinaryOp::Le, true) => IntCC::SignedLessThanOrEqual,
                    (BinaryOp::Gt, true) => IntCC::SignedGreaterThan,
                    (BinaryOp::Ge, true) => IntCC::SignedGreaterThanOrEqual,
                    (BinaryOp::Lt, false) => IntCC::UnsignedLessThan,
                    (BinaryOp::Le, false) => IntCC::UnsignedLessThanOrEqual,
                    (BinaryOp::Gt, false) => IntCC::UnsignedGreaterThan,
                    (_, false) => IntCC::UnsignedGreaterThanOrEqual,
                    (_, true) => IntCC::SignedGreaterThanOrEqual,
                };
                e.b.ins().icmp(cc, a, b)
            };
            return Ok(self.mask_from(e, raw, t));
        }
        let ins = e.b.ins();
        if t.is_float() {
            return Ok(match op {
                BinaryOp::Add => ins.fadd(a, b),
                BinaryOp::Sub => ins.fsub(a, b),
                BinaryOp::Mul => ins.fmul(a, b),
                BinaryOp::Div => ins.fdiv(a, b),
                BinaryOp::Min => ins.fmin(a, b),
                BinaryOp::Max => ins.fmax(a, b),
                BinaryOp::Copysign => {
                    // |a| with b's sign bit: the scalar `fcopysign`, bit for bit.
                    let it = self.int_of(t);
                    let sign = if t == ScalarType::F32 {
                        Scalar::U32(1 << 31)
                    } else {
                        Scalar::U64(1 << 63)
                    };
                    let s = e.constant(sign);
                    let sign = e.b.ins().splat(it, s);
                    let (ai, bi) = (Self::recast(e, a, it), Self::recast(e, b, it));
                    let mag = e.b.ins().band_not(ai, sign);
                    let sgn = e.b.ins().band(bi, sign);
                    let r = e.b.ins().bor(mag, sgn);
                    Self::recast(e, r, self.vtype(t))
                }
                // `%`, `atan2`, `pow`, `hypot` without a library function: lane by lane.
                _ => self.scalarize(e, &[(a, t), (b, t)], t, &mut |e, x| {
                    e.binary(op, t, t, x[0], x[1], None)
                })?,
            });
        }
        let signed = t.is_signed_int();
        let wide = byte_size(t) == 8;
        Ok(match op {
            BinaryOp::Add => ins.iadd(a, b),
            BinaryOp::Sub => ins.isub(a, b),
            BinaryOp::Mul => ins.imul(a, b),
            BinaryOp::And => ins.band(a, b),
            BinaryOp::Or => ins.bor(a, b),
            BinaryOp::Xor => ins.bxor(a, b),
            BinaryOp::Min if !wide && signed => ins.smin(a, b),
            BinaryOp::Min if !wide => ins.umin(a, b),
            BinaryOp::Max if !wide && signed => ins.smax(a, b),
            BinaryOp::Max if !wide => ins.umax(a, b),
            _ => self.scalarize(e, &[(a, t), (b, t)], t, &mut |e, x| {
                e.binary(op, t, t, x[0], x[1], None)
            })?,
        })
    }

    /// Shifts by a constant amount become one vector shift; others go lane by lane.
    #[allow(clippy::too_many_arguments)]
    fn shift(
        &self,
        e: &mut Emitter,
        inst: &Instance,
        k: &Kernel,
        op: BinaryOp,
        t: ScalarType,
        a: cl::Value,
        amount: Value,
        amount_ty: ScalarType,
    ) -> Result<cl::Value> {
        let konst = match k.values[amount.index()].def {
            ValueDef::Result(i, 0) => match k.inst(i).kind {
                InstKind::Const(c) => Some(c.to_bits()),
                _ => None,
            },
            _ => None,
        };
        if let Some(bits) = konst {
            let lane = self.vtype(t).lane_type();
            let s = e.b.ins().iconst(types::I32, (bits % u64::from(lane.bits())) as i64);
            let ins = e.b.ins();
            return Ok(match op {
                BinaryOp::Shl => ins.ishl(a, s),
                _ if t.is_signed_int() => ins.sshr(a, s),
                _ => ins.ushr(a, s),
            });
        }
        let b = self.get(e, inst, amount);
        self.scalarize(e, &[(a, t), (b, amount_ty)], t, &mut |e, x| {
            e.binary(op, t, amount_ty, x[0], x[1], None)
        })
    }

    fn cast(
        &self,
        e: &mut Emitter,
        x: cl::Value,
        from: ScalarType,
        to: ScalarType,
    ) -> Result<cl::Value> {
        use ScalarType::*;
        if self.vtype(from) == self.vtype(to) && from.is_int() && to.is_int() {
            return Ok(x); // i32 ↔ u32, i64 ↔ u64: the same bits
        }
        let ins = e.b.ins();
        Ok(match (from, to) {
            (F32, F64) => ins.fvpromote_low(x),
            (F64, F32) => ins.fvdemote(x),
            (I32, F32) => ins.fcvt_from_sint(types::F32X4, x),
            (F32, I32) => ins.fcvt_to_sint_sat(types::I32X4, x),
            (I32 | U32, I64 | U64) if self.lanes == 2 => {
                if from == I32 {
                    ins.swiden_low(x)
                } else {
                    ins.uwiden_low(x)
                }
            }
            (I64 | U64, I32 | U32) if self.lanes == 2 => Self::narrow_mask(e, x),
            _ => self.scalarize(e, &[(x, from)], to, &mut |e, a| Ok(e.cast(a[0], from, to)))?,
        })
    }
}

/// Blocks on every path from the entry to a `return` (they run for every lane that runs
/// the kernel, so they need no mask of their own).
fn always_executed(k: &Kernel, order: &[Block]) -> HashSet<Block> {
    let returns = |b: Block| {
        k.terminator(b)
            .is_some_and(|t| matches!(k.inst(t).kind, InstKind::Return(_)))
    };
    let mut out = HashSet::new();
    for &avoid in order.iter().skip(1) {
        // Is a return reachable from the entry without passing `avoid`?
        let mut stack = vec![k.entry()];
        let mut seen = HashSet::from([k.entry()]);
        let mut escapes = false;
        while let Some(b) = stack.pop() {
            if returns(b) {
                escapes = true;
                break;
            }
            for s in kiln_ir::cfg::successors(k, b) {
                if s != avoid && seen.insert(s) {
                    stack.push(s);
                }
            }
        }
        if !escapes {
            out.insert(avoid);
        }
    }
    out
}
