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

use crate::translate::{byte_size, float_cc, int_cc, Emitter};

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
    *wide |= k
        .values
        .iter()
        .any(|v| matches!(v.ty, ScalarType::F64 | ScalarType::I64 | ScalarType::U64));
    for &b in &order {
        for &i in &k.block(b).insts {
            match &k.inst(i).kind {
                InstKind::Binary(op, a, _) if op.can_trap() && k.value_type(*a).is_int() => {
                    return false
                }
                InstKind::Call(callee, _) if !vectorizable(m, *callee, wide, seen) => return false,
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

/// Registers per value: a group is `U` vectors, and every operation is emitted once per
/// register, side by side, so that two independent dependency chains (a polynomial's
/// Horner steps, say) are in flight at once.
pub const U: usize = 2;

/// A value of the group: `U` registers.
type V = [cl::Value; U];

/// The vector emitter's fixed context.
pub struct Simd {
    /// Lanes per register (2 or 4); a group is `lanes * U` elements.
    pub lanes: u8,
    /// Where a group goes when it must run on the scalar path (a failing assert).
    pub fallback: cl::Block,
}

/// One inlined kernel instance: its values live in Cranelift variables, because a value
/// defined in a block that the run time may skip is still read (and then ignored, by the
/// masks) further on.
struct Instance {
    vars: Vec<Option<[Variable; U]>>,
    edges: HashMap<(Block, usize), [Variable; U]>,
}

fn map1(e: &mut Emitter, x: V, mut f: impl FnMut(&mut Emitter, cl::Value) -> cl::Value) -> V {
    std::array::from_fn(|r| f(e, x[r]))
}

fn map2(
    e: &mut Emitter,
    x: V,
    y: V,
    mut f: impl FnMut(&mut Emitter, cl::Value, cl::Value) -> cl::Value,
) -> V {
    std::array::from_fn(|r| f(e, x[r], y[r]))
}

impl Simd {
    /// Elements per group.
    pub fn group(&self) -> u32 {
        u32::from(self.lanes) * U as u32
    }

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

    fn ones(&self, e: &mut Emitter) -> V {
        self.splat_const(e, Scalar::Bool(true))
    }

    fn recast(e: &mut Emitter, x: cl::Value, ty: cl::Type) -> cl::Value {
        if e.b.func.dfg.value_type(x) == ty {
            x
        } else {
            e.b.ins().bitcast(ty, little(), x)
        }
    }

    /// The low 32 bits of each 64-bit lane: an `i64x2` as an `i32x4` whose two low lanes
    /// are meaningful (a mask narrowed, or `i64 as i32`).
    fn narrow(e: &mut Emitter, m: cl::Value) -> cl::Value {
        let bytes = Self::recast(e, m, types::I8X16);
        let pick: Vec<u8> = [0u8, 1, 2, 3, 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11].to_vec();
        let imm = e.b.func.dfg.immediates.push(pick.into());
        let s = e.b.ins().shuffle(bytes, bytes, imm);
        Self::recast(e, s, types::I32X4)
    }

    /// A comparison's raw result (lanes as wide as the operands) as a group mask.
    fn mask_from(&self, e: &mut Emitter, raw: V, operand: ScalarType) -> V {
        let it = self.int_of(operand);
        let widen = self.lanes == 2 && byte_size(operand) == 4;
        map1(e, raw, |e, x| {
            let x = Self::recast(e, x, it);
            if widen {
                e.b.ins().swiden_low(x)
            } else {
                x
            }
        })
    }

    /// Lane by lane, `a` where mask `m` is set, else `b` (`a`, `b` of type `t`).
    fn choose(&self, e: &mut Emitter, m: V, t: ScalarType, a: V, b: V) -> V {
        let narrow = self.lanes == 2 && byte_size(t) == 4;
        let vt = self.vtype(t);
        std::array::from_fn(|r| {
            let m = if narrow { Self::narrow(e, m[r]) } else { m[r] };
            let m = Self::recast(e, m, vt);
            e.b.ins().bitselect(m, a[r], b[r])
        })
    }

    /// The integer vector type with `t`'s lane layout.
    fn int_of(&self, t: ScalarType) -> cl::Type {
        match t {
            ScalarType::F64 | ScalarType::I64 | ScalarType::U64 => types::I64X2,
            ScalarType::F32 | ScalarType::I32 | ScalarType::U32 => types::I32X4,
            ScalarType::Bool => self.mask_type(),
        }
    }

    fn and(e: &mut Emitter, p: Option<V>, c: V) -> V {
        match p {
            None => c,
            Some(p) => map2(e, p, c, |e, p, c| e.b.ins().band(p, c)),
        }
    }

    fn and_not(e: &mut Emitter, p: Option<V>, c: V) -> V {
        match p {
            None => map1(e, c, |e, c| e.b.ins().bnot(c)),
            Some(p) => map2(e, p, c, |e, p, c| e.b.ins().band_not(p, c)),
        }
    }

    /// Whether any lane of mask `m` is set (an `i8`).
    fn any(e: &mut Emitter, m: V) -> cl::Value {
        let mut acc = m[0];
        for &x in &m[1..] {
            acc = e.b.ins().bor(acc, x);
        }
        e.b.ins().vany_true(acc)
    }

    /// A constant in every lane.
    pub fn splat_const(&self, e: &mut Emitter, c: Scalar) -> V {
        let v = if let Scalar::Bool(b) = c {
            let lane = e.b.ins().iconst(self.mask_lane(), if b { -1 } else { 0 });
            e.b.ins().splat(self.mask_type(), lane)
        } else {
            let s = e.constant(c);
            e.b.ins().splat(self.vtype(c.ty()), s)
        };
        [v; U]
    }

    /// A scalar (in its scalar representation: `bool` is an `i8` 0/1) in every lane.
    pub fn splat(&self, e: &mut Emitter, x: cl::Value, t: ScalarType) -> V {
        let x = if t == ScalarType::Bool {
            self.bool_to_lane(e, x)
        } else {
            x
        };
        [e.b.ins().splat(self.vtype(t), x); U]
    }

    fn bool_to_lane(&self, e: &mut Emitter, b: cl::Value) -> cl::Value {
        let w = e.b.ins().uextend(self.mask_lane(), b);
        e.b.ins().ineg(w)
    }

    /// Element `i` of the group `v` as a scalar of type `t`.
    fn extract(&self, e: &mut Emitter, v: V, t: ScalarType, i: usize) -> cl::Value {
        let (r, lane) = (i / self.lanes as usize, (i % self.lanes as usize) as u8);
        let x = e.b.ins().extractlane(v[r], lane);
        if t == ScalarType::Bool {
            e.b.ins().icmp_imm_s(IntCC::NotEqual, x, 0)
        } else {
            x
        }
    }

    /// A group of type `t` from one scalar per element.
    fn build(&self, e: &mut Emitter, t: ScalarType, elems: &[cl::Value]) -> V {
        let elems: Vec<cl::Value> = if t == ScalarType::Bool {
            elems.iter().map(|&b| self.bool_to_lane(e, b)).collect()
        } else {
            elems.to_vec()
        };
        let n = self.lanes as usize;
        std::array::from_fn(|r| {
            let mut v = e.b.ins().splat(self.vtype(t), elems[r * n]);
            for i in 1..n {
                v = e.b.ins().insertlane(v, elems[r * n + i], i as u8);
            }
            v
        })
    }

    /// Applies a scalar operation element by element.
    fn scalarize(
        &self,
        e: &mut Emitter,
        ins: &[(V, ScalarType)],
        out: ScalarType,
        f: &mut dyn FnMut(&mut Emitter, &[cl::Value]) -> Result<cl::Value>,
    ) -> Result<V> {
        let mut elems = Vec::with_capacity(self.group() as usize);
        for i in 0..self.group() as usize {
            let args: Vec<cl::Value> = ins.iter().map(|&(v, t)| self.extract(e, v, t, i)).collect();
            elems.push(f(e, &args)?);
        }
        Ok(self.build(e, out, &elems))
    }

    /// Loads a group of consecutive elements of type `t` at `addr`.
    pub fn load(&self, e: &mut Emitter, t: ScalarType, addr: cl::Value) -> V {
        let size = byte_size(t);
        let n = u32::from(self.lanes);
        if t == ScalarType::Bool {
            let elems: Vec<cl::Value> = (0..self.group())
                .map(|i| {
                    let x =
                        e.b.ins()
                            .load(types::I8, crate::translate::mem(), addr, i as i32);
                    e.b.ins().icmp_imm_s(IntCC::NotEqual, x, 0)
                })
                .collect();
            return self.build(e, t, &elems);
        }
        let vt = self.vtype(t);
        std::array::from_fn(|r| {
            let off = (r as u32 * n * size) as i32;
            if size * n == 16 {
                e.b.ins().load(vt, vmem(), addr, off)
            } else {
                // Two 32-bit lanes: one 64-bit load into the low half.
                let x = e.b.ins().load(types::I64, vmem(), addr, off);
                let v = e.b.ins().scalar_to_vector(types::I64X2, x);
                Self::recast(e, v, vt)
            }
        })
    }

    /// Stores the group `v` (type `t`) at `addr`.
    pub fn store(&self, e: &mut Emitter, t: ScalarType, v: V, addr: cl::Value) {
        let size = byte_size(t);
        let n = u32::from(self.lanes);
        if t == ScalarType::Bool {
            for i in 0..self.group() as usize {
                let b = self.extract(e, v, t, i);
                e.b.ins().store(crate::translate::mem(), b, addr, i as i32);
            }
            return;
        }
        for (r, &x) in v.iter().enumerate() {
            let off = (r as u32 * n * size) as i32;
            if size * n == 16 {
                e.b.ins().store(vmem(), x, addr, off);
            } else {
                let w = Self::recast(e, x, types::I64X2);
                let low = e.b.ins().extractlane(w, 0);
                e.b.ins().store(vmem(), low, addr, off);
            }
        }
    }

    /// Emits kernel `id` on a group: `args` are groups, `pred` the lanes that run it
    /// (`None`: all), `pre` values already computed (hoisted) by IR value. Returns the
    /// result groups (lanes outside `pred` hold unspecified values).
    pub fn kernel(
        &self,
        e: &mut Emitter,
        id: KernelId,
        args: &[V],
        pred: Option<V>,
        pre: &HashMap<Value, V>,
    ) -> Result<Vec<V>> {
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
        for (&v, &x) in pre {
            self.def(e, &mut inst, k, v, x);
        }
        // Every edge starts inactive: a block skipped at run time leaves its edges so, even
        // in a loop whose previous group took them.
        let none = self.splat_const(e, Scalar::Bool(false));
        for edges in incoming.values() {
            for &(from, si, _) in edges {
                let var = self.edge_var(e, &mut inst, from, si);
                for r in 0..U {
                    e.b.def_var(var[r], none[r]);
                }
            }
        }
        let results: Vec<[Variable; U]> = k
            .results
            .iter()
            .map(|&t| std::array::from_fn(|_| e.b.declare_var(self.vtype(t))))
            .collect();
        for &bl in &order {
            let full = bl == k.entry() || always.contains(&bl);
            let p = if full {
                pred
            } else {
                let mut m: Option<V> = None;
                for &(from, si, _) in incoming.get(&bl).map_or(&[][..], |v| v.as_slice()) {
                    let var = self.edge_var(e, &mut inst, from, si);
                    let x: V = std::array::from_fn(|r| e.b.use_var(var[r]));
                    m = Some(match m {
                        None => x,
                        Some(m) => map2(e, m, x, |e, a, b| e.b.ins().bor(a, b)),
                    });
                }
                Some(match m {
                    Some(m) => m,
                    None => self.splat_const(e, Scalar::Bool(false)),
                })
            };
            let after = if full {
                None
            } else {
                let body = e.b.create_block();
                let after = e.b.create_block();
                let any = Self::any(e, p.expect("a partial block has a mask"));
                e.b.ins().brif(any, body, &[], after, &[]);
                e.b.switch_to_block(body);
                Some(after)
            };
            // Parameters: each lane takes the argument of the edge it came by.
            for (pi, &param) in k.block(bl).params.iter().enumerate() {
                let t = k.value_type(param);
                let mut val: Option<V> = None;
                for (from, si, args) in incoming.get(&bl).map_or(&[][..], |v| v.as_slice()) {
                    let a = self.get(e, &inst, args[pi]);
                    val = Some(match val {
                        None => a,
                        Some(v) => {
                            let var = self.edge_var(e, &mut inst, *from, *si);
                            let m: V = std::array::from_fn(|r| e.b.use_var(var[r]));
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
                        for r in 0..U {
                            e.b.def_var(var[r], m[r]);
                        }
                    }
                    InstKind::Branch(c, _, _) => {
                        let c = self.get(e, &inst, *c);
                        let t = Self::and(e, p, c);
                        let f = Self::and_not(e, p, c);
                        let (vt, vf) = (
                            self.edge_var(e, &mut inst, bl, 0),
                            self.edge_var(e, &mut inst, bl, 1),
                        );
                        for r in 0..U {
                            e.b.def_var(vt[r], t[r]);
                            e.b.def_var(vf[r], f[r]);
                        }
                    }
                    InstKind::Return(vs) => {
                        for ((&v, var), &t) in vs.iter().zip(&results).zip(&k.results) {
                            let x = self.get(e, &inst, v);
                            let x = match p {
                                None => x,
                                Some(m) => {
                                    let old: V = std::array::from_fn(|r| e.b.use_var(var[r]));
                                    self.choose(e, m, t, x, old)
                                }
                            };
                            for r in 0..U {
                                e.b.def_var(var[r], x[r]);
                            }
                        }
                    }
                    InstKind::Assert(c) => {
                        let c = self.get(e, &inst, *c);
                        let fail = Self::and_not(e, p, c);
                        let any = Self::any(e, fail);
                        let cont = e.b.create_block();
                        e.b.ins().brif(any, self.fallback, &[], cont, &[]);
                        e.b.switch_to_block(cont);
                    }
                    InstKind::Call(callee, args) => {
                        let args: Vec<V> = args.iter().map(|&a| self.get(e, &inst, a)).collect();
                        let rs = match e.unit.library_fn(*callee, Some(self.lanes))? {
                            // A library function is pure and total: its shared SIMD code runs
                            // on every lane, active or not.
                            Some(addr) => self.call_library(e, *callee, addr, &args),
                            None => self.kernel(e, *callee, &args, p, &HashMap::new())?,
                        };
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
        Ok(results
            .iter()
            .map(|var| std::array::from_fn(|r| e.b.use_var(var[r])))
            .collect())
    }

    fn call_library(&self, e: &mut Emitter, callee: KernelId, addr: i64, args: &[V]) -> Vec<V> {
        let k = e.unit.ir.kernel(callee);
        let sig = library_signature(e.unit, k, self.lanes);
        let sigref = e.b.import_signature(sig);
        let ptr_ty = e.unit.pointer();
        let slot = e.b.create_sized_stack_slot(cl::StackSlotData::new(
            cl::StackSlotKind::ExplicitSlot,
            (16 * U * k.results.len().max(1)) as u32,
            4,
        ));
        let out = e.b.ins().stack_addr(ptr_ty, slot, 0);
        let f = e.b.ins().iconst(ptr_ty, addr);
        let mut all: Vec<cl::Value> = args.iter().flatten().copied().collect();
        all.push(out);
        e.b.ins().call_indirect(sigref, f, &all);
        let results = k.results.clone();
        results
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let vt = self.vtype(t);
                std::array::from_fn(|r| {
                    e.b.ins()
                        .stack_load(ptr_ty, vt, slot, (16 * (i * U + r)) as i32)
                })
            })
            .collect()
    }

    /// The body of a library function's SIMD code (see [`Simd::library_signature`]).
    pub fn library_body(&self, e: &mut Emitter, id: KernelId) -> Result<()> {
        let k = e.unit.ir.kernel(id);
        let n = k.params.len();
        let params = e.params.clone();
        let args: Vec<V> = (0..n)
            .map(|j| std::array::from_fn(|r| params[j * U + r]))
            .collect();
        let out = params[n * U];
        let rs = self.kernel(e, id, &args, None, &HashMap::new())?;
        for (i, v) in rs.into_iter().enumerate() {
            for (r, x) in v.into_iter().enumerate() {
                e.b.ins().store(vmem(), x, out, (16 * (i * U + r)) as i32);
            }
        }
        let ok = e.status(0);
        e.b.ins().return_(&[ok]);
        Ok(())
    }

    fn def(&self, e: &mut Emitter, inst: &mut Instance, k: &Kernel, v: Value, x: V) {
        let ty = self.vtype(k.value_type(v));
        let var = *inst.vars[v.index()]
            .get_or_insert_with(|| std::array::from_fn(|_| e.b.declare_var(ty)));
        for r in 0..U {
            e.b.def_var(var[r], x[r]);
        }
    }

    fn get(&self, e: &mut Emitter, inst: &Instance, v: Value) -> V {
        let var = inst.vars[v.index()].expect("verified IR defines values before use");
        std::array::from_fn(|r| e.b.use_var(var[r]))
    }

    fn edge_var(
        &self,
        e: &mut Emitter,
        inst: &mut Instance,
        from: Block,
        si: usize,
    ) -> [Variable; U] {
        let ty = self.mask_type();
        *inst
            .edges
            .entry((from, si))
            .or_insert_with(|| std::array::from_fn(|_| e.b.declare_var(ty)))
    }

    /// A value instruction on a group.
    fn value(&self, e: &mut Emitter, inst: &Instance, k: &Kernel, i: kiln_ir::Inst) -> Result<V> {
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
                std::array::from_fn(|r| e.b.ins().fma(a[r], b[r], c[r]))
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
                let vt = self.vtype(rty);
                map1(e, xv, |e, x| Self::recast(e, x, vt))
            }
            other => unreachable!("not a value instruction: {other:?}"),
        })
    }

    fn unary(&self, e: &mut Emitter, op: UnaryOp, t: ScalarType, x: V) -> Result<V> {
        Ok(match op {
            UnaryOp::Neg if t.is_float() => map1(e, x, |e, x| e.b.ins().fneg(x)),
            UnaryOp::Neg => map1(e, x, |e, x| e.b.ins().ineg(x)),
            UnaryOp::Not => map1(e, x, |e, x| e.b.ins().bnot(x)),
            UnaryOp::Abs if t.is_float() => map1(e, x, |e, x| e.b.ins().fabs(x)),
            UnaryOp::Abs if t == ScalarType::I32 => map1(e, x, |e, x| e.b.ins().iabs(x)),
            UnaryOp::Abs if !t.is_signed_int() => x,
            UnaryOp::Sqrt => map1(e, x, |e, x| e.b.ins().sqrt(x)),
            UnaryOp::Floor => map1(e, x, |e, x| e.b.ins().floor(x)),
            UnaryOp::Ceil => map1(e, x, |e, x| e.b.ins().ceil(x)),
            UnaryOp::Trunc => map1(e, x, |e, x| e.b.ins().trunc(x)),
            UnaryOp::IsNan => {
                let raw = map1(e, x, |e, x| e.b.ins().fcmp(FloatCC::Unordered, x, x));
                self.mask_from(e, raw, t)
            }
            UnaryOp::IsInf | UnaryOp::IsFinite => {
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
                let raw = map2(e, x, inf, |e, x, inf| {
                    let a = e.b.ins().fabs(x);
                    e.b.ins().fcmp(cc, a, inf)
                });
                self.mask_from(e, raw, t)
            }
            // i64 `abs`, `round` and the libm functions: element by element.
            _ => self.scalarize(e, &[(x, t)], t, &mut |e, a| e.unary(op, t, a[0]))?,
        })
    }

    fn binary(&self, e: &mut Emitter, op: BinaryOp, t: ScalarType, a: V, b: V) -> Result<V> {
        if op.is_comparison() {
            let raw = if t.is_float() {
                let cc = float_cc(op);
                map2(e, a, b, |e, a, b| e.b.ins().fcmp(cc, a, b))
            } else {
                let cc = int_cc(op, t.is_signed_int());
                map2(e, a, b, |e, a, b| e.b.ins().icmp(cc, a, b))
            };
            return Ok(self.mask_from(e, raw, t));
        }
        let lane_by_lane = |e: &mut Emitter| {
            self.scalarize(e, &[(a, t), (b, t)], t, &mut |e, x| {
                e.binary(op, t, t, x[0], x[1], None)
            })
        };
        if t.is_float() {
            return Ok(match op {
                BinaryOp::Add => map2(e, a, b, |e, a, b| e.b.ins().fadd(a, b)),
                BinaryOp::Sub => map2(e, a, b, |e, a, b| e.b.ins().fsub(a, b)),
                BinaryOp::Mul => map2(e, a, b, |e, a, b| e.b.ins().fmul(a, b)),
                BinaryOp::Div => map2(e, a, b, |e, a, b| e.b.ins().fdiv(a, b)),
                BinaryOp::Min => map2(e, a, b, |e, a, b| e.b.ins().fmin(a, b)),
                BinaryOp::Max => map2(e, a, b, |e, a, b| e.b.ins().fmax(a, b)),
                BinaryOp::Copysign => {
                    // |a| with b's sign bit: the scalar `fcopysign`, bit for bit.
                    let (it, vt) = (self.int_of(t), self.vtype(t));
                    let sign = if t == ScalarType::F32 {
                        Scalar::U32(1 << 31)
                    } else {
                        Scalar::U64(1 << 63)
                    };
                    let sign = self.splat_const(e, sign);
                    std::array::from_fn(|r| {
                        let (ai, bi) = (Self::recast(e, a[r], it), Self::recast(e, b[r], it));
                        let mag = e.b.ins().band_not(ai, sign[r]);
                        let sgn = e.b.ins().band(bi, sign[r]);
                        let x = e.b.ins().bor(mag, sgn);
                        Self::recast(e, x, vt)
                    })
                }
                // `%`, `atan2`, `pow`, `hypot` without a library function: lane by lane.
                _ => lane_by_lane(e)?,
            });
        }
        let signed = t.is_signed_int();
        let wide = byte_size(t) == 8;
        Ok(match op {
            BinaryOp::Add => map2(e, a, b, |e, a, b| e.b.ins().iadd(a, b)),
            BinaryOp::Sub => map2(e, a, b, |e, a, b| e.b.ins().isub(a, b)),
            BinaryOp::Mul => map2(e, a, b, |e, a, b| e.b.ins().imul(a, b)),
            BinaryOp::And => map2(e, a, b, |e, a, b| e.b.ins().band(a, b)),
            BinaryOp::Or => map2(e, a, b, |e, a, b| e.b.ins().bor(a, b)),
            BinaryOp::Xor => map2(e, a, b, |e, a, b| e.b.ins().bxor(a, b)),
            BinaryOp::Min if !wide && signed => map2(e, a, b, |e, a, b| e.b.ins().smin(a, b)),
            BinaryOp::Min if !wide => map2(e, a, b, |e, a, b| e.b.ins().umin(a, b)),
            BinaryOp::Max if !wide && signed => map2(e, a, b, |e, a, b| e.b.ins().smax(a, b)),
            BinaryOp::Max if !wide => map2(e, a, b, |e, a, b| e.b.ins().umax(a, b)),
            _ => lane_by_lane(e)?,
        })
    }

    /// Shifts by a constant amount become one vector shift; others go element by element.
    #[allow(clippy::too_many_arguments)]
    fn shift(
        &self,
        e: &mut Emitter,
        inst: &Instance,
        k: &Kernel,
        op: BinaryOp,
        t: ScalarType,
        a: V,
        amount: Value,
        amount_ty: ScalarType,
    ) -> Result<V> {
        let konst = match k.values[amount.index()].def {
            ValueDef::Result(i, 0) => match k.inst(i).kind {
                InstKind::Const(c) => Some(c.to_bits()),
                _ => None,
            },
            _ => None,
        };
        if let Some(bits) = konst {
            let lane = self.vtype(t).lane_type();
            let s =
                e.b.ins()
                    .iconst(types::I32, (bits % u64::from(lane.bits())) as i64);
            let signed = t.is_signed_int();
            return Ok(map1(e, a, |e, x| match op {
                BinaryOp::Shl => e.b.ins().ishl(x, s),
                _ if signed => e.b.ins().sshr(x, s),
                _ => e.b.ins().ushr(x, s),
            }));
        }
        let b = self.get(e, inst, amount);
        self.scalarize(e, &[(a, t), (b, amount_ty)], t, &mut |e, x| {
            e.binary(op, t, amount_ty, x[0], x[1], None)
        })
    }

    fn cast(&self, e: &mut Emitter, x: V, from: ScalarType, to: ScalarType) -> Result<V> {
        use ScalarType::*;
        if self.vtype(from) == self.vtype(to) && from.is_int() && to.is_int() {
            return Ok(x); // i32 ↔ u32, i64 ↔ u64: the same bits
        }
        Ok(match (from, to) {
            (F32, F64) => map1(e, x, |e, x| e.b.ins().fvpromote_low(x)),
            (F64, F32) => map1(e, x, |e, x| e.b.ins().fvdemote(x)),
            (I32, F32) => map1(e, x, |e, x| e.b.ins().fcvt_from_sint(types::F32X4, x)),
            (F32, I32) => map1(e, x, |e, x| e.b.ins().fcvt_to_sint_sat(types::I32X4, x)),
            (I32, I64 | U64) if self.lanes == 2 => map1(e, x, |e, x| e.b.ins().swiden_low(x)),
            (U32, I64 | U64) if self.lanes == 2 => map1(e, x, |e, x| e.b.ins().uwiden_low(x)),
            (I64 | U64, I32 | U32) if self.lanes == 2 => map1(e, x, Self::narrow),
            _ => self.scalarize(e, &[(x, from)], to, &mut |e, a| Ok(e.cast(a[0], from, to)))?,
        })
    }
}

/// The signature of a library function's SIMD code for groups of `lanes`-lane registers:
/// `U` registers per parameter, then a pointer to `U` 16-byte slots per result; returns 0.
pub fn library_signature(unit: &crate::translate::Unit, k: &Kernel, lanes: u8) -> cl::Signature {
    let sv = Simd {
        lanes,
        fallback: cl::Block::from_u32(0),
    };
    let mut sig = cranelift_module::Module::make_signature(&*unit.jit);
    for &p in &k.params {
        for _ in 0..U {
            sig.params.push(cl::AbiParam::new(sv.vtype(p)));
        }
    }
    sig.params.push(cl::AbiParam::new(unit.pointer()));
    sig.returns.push(cl::AbiParam::new(types::I32));
    sig
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
