//! Kiln IR → Cranelift IR, one kernel body at a time.
//!
//! A kernel body is emitted *inline* into whatever function is being built (a scalar entry,
//! a ufunc loop, a reduction loop, or the out-of-line body of a helper the optimiser left as
//! a `call`): its entry block receives the arguments, every `return` jumps to a fresh exit
//! block whose parameters are the results, and every operation that can fail branches to the
//! function's trap block with the number of a *trap site*. Trap sites are numbered per
//! compilation unit ([`Sites`]), so a status code means the same thing in every function of
//! the unit and a failing callee's code can be passed up unchanged.
//!
//! Semantics follow `kiln_ir::inst` exactly (and so the reference interpreter): integer
//! division is guarded against zero (an error) and `MIN / -1` (which wraps, where the
//! hardware would trap); shift amounts are taken modulo the width; float→int casts saturate
//! with `fcvt_to_*_sat`; `min`/`max` on floats are Cranelift's `fmin`/`fmax` (NaN-propagating,
//! `-0.0 < +0.0`); transcendental functions call the same `libm` routines as the interpreter
//! (see [`crate::math`]), so both give identical bits.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{self as cl, types, AbiParam, BlockArg, InstBuilder, MemFlagsData};
use cranelift_frontend::FunctionBuilder;
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Linkage, Module as _};
use kiln_interp::ErrorKind;
use kiln_ir::{BinaryOp, InstKind, Kernel, KernelId, Module, ScalarType, SourceLoc, UnaryOp};

use crate::math;

type ModResult<T> = std::result::Result<T, cranelift_module::ModuleError>;

/// The Cranelift type that holds a Kiln scalar type (`bool` is an `i8` holding 0 or 1).
pub fn cl_type(t: ScalarType) -> cl::Type {
    match t {
        ScalarType::Bool => types::I8,
        ScalarType::I32 | ScalarType::U32 => types::I32,
        ScalarType::I64 | ScalarType::U64 => types::I64,
        ScalarType::F32 => types::F32,
        ScalarType::F64 => types::F64,
    }
}

/// The float condition of a comparison operator (ordered, except `!=`: IEEE's).
pub fn float_cc(op: BinaryOp) -> FloatCC {
    match op {
        BinaryOp::Eq => FloatCC::Equal,
        BinaryOp::Ne => FloatCC::NotEqual,
        BinaryOp::Lt => FloatCC::LessThan,
        BinaryOp::Le => FloatCC::LessThanOrEqual,
        BinaryOp::Gt => FloatCC::GreaterThan,
        _ => FloatCC::GreaterThanOrEqual,
    }
}

/// The integer condition of a comparison operator.
pub fn int_cc(op: BinaryOp, signed: bool) -> IntCC {
    match (op, signed) {
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
    }
}

/// Size in bytes of an element of type `t` in memory.
pub fn byte_size(t: ScalarType) -> u32 {
    match t {
        ScalarType::Bool => 1,
        ScalarType::I32 | ScalarType::U32 | ScalarType::F32 => 4,
        ScalarType::I64 | ScalarType::U64 | ScalarType::F64 => 8,
    }
}

/// Loads and stores of array elements and argument slots: the runtime guarantees the
/// addresses are valid and aligned for the element type.
pub fn mem() -> MemFlagsData {
    MemFlagsData::trusted()
}

pub use kiln_interp::Site;

/// The trap sites of one compilation unit; status code `n` (≥ 1) is `sites[n - 1]`.
#[derive(Debug, Default)]
pub struct Sites(pub Vec<Site>);

impl Sites {
    fn add(&mut self, kind: ErrorKind, loc: Option<SourceLoc>) -> i64 {
        self.0.push(Site { kind, loc });
        self.0.len() as i64
    }
}

/// State shared by every function of a compilation unit.
pub struct Unit<'m> {
    /// The JIT module the unit is defined in.
    pub jit: &'m mut JITModule,
    /// The IR module the kernels come from.
    pub ir: &'m Module,
    /// Trap sites.
    pub sites: Sites,
    /// Out-of-line bodies of kernels reached through `call`, declared on first use.
    pub bodies: HashMap<KernelId, FuncId>,
    /// Bodies declared but not yet defined.
    pub pending: Vec<KernelId>,
    /// Math routines declared in the module.
    math: HashMap<&'static str, FuncId>,
    /// Whether ufunc loops get a SIMD variant.
    pub vectorize: bool,
    /// Where math library functions come from: compiled once per [`crate::Cpu`] and called
    /// by address (`None`: compiled into this unit like any callee).
    pub library: Option<&'m crate::Cpu>,
    /// The library code this unit's functions call, kept alive by what the unit builds.
    pub libs: Vec<std::sync::Arc<crate::LibFn>>,
}

impl<'m> Unit<'m> {
    /// A unit defining functions in `jit` for kernels of `ir`.
    pub fn new(jit: &'m mut JITModule, ir: &'m Module) -> Self {
        Unit {
            jit,
            ir,
            sites: Sites::default(),
            bodies: HashMap::new(),
            pending: Vec::new(),
            math: HashMap::new(),
            vectorize: true,
            library: None,
            libs: Vec::new(),
        }
    }

    /// The address of library kernel `id`'s shared code (`lanes`: its SIMD variant), if this
    /// unit takes library functions from a [`crate::Cpu`] and `id` is one.
    pub fn library_fn(&mut self, id: KernelId, lanes: Option<u8>) -> ModResult<Option<i64>> {
        let Some(cpu) = self.library else {
            return Ok(None);
        };
        if self.ir.kernel(id).kind != kiln_ir::KernelKind::Library {
            return Ok(None);
        }
        let f = cpu
            .library(self.ir, id, lanes)
            .map_err(|e| cranelift_module::ModuleError::Backend(anyhow::anyhow!(e.0)))?;
        let addr = f.ptr as i64;
        self.libs.push(f);
        Ok(Some(addr))
    }

    /// The signature of an out-of-line kernel body: the kernel's parameters and a pointer to
    /// 8-byte result slots; returns a status (0 = success, else a trap site).
    pub fn body_signature(&self, k: &Kernel) -> cl::Signature {
        let mut sig = self.jit.make_signature();
        for &p in &k.params {
            sig.params.push(AbiParam::new(cl_type(p)));
        }
        sig.params.push(AbiParam::new(self.pointer()));
        sig.returns.push(AbiParam::new(types::I32));
        sig
    }

    /// The target's pointer type.
    pub fn pointer(&self) -> cl::Type {
        self.jit.target_config().pointer_type()
    }

    fn body(&mut self, id: KernelId) -> ModResult<FuncId> {
        if let Some(&f) = self.bodies.get(&id) {
            return Ok(f);
        }
        let sig = self.body_signature(self.ir.kernel(id));
        let f = self.jit.declare_anonymous_function(&sig)?;
        self.bodies.insert(id, f);
        self.pending.push(id);
        Ok(f)
    }

    fn math_fn(&mut self, name: &'static str, ty: cl::Type, arity: usize) -> ModResult<FuncId> {
        if let Some(&f) = self.math.get(name) {
            return Ok(f);
        }
        let mut sig = self.jit.make_signature();
        for _ in 0..arity {
            sig.params.push(AbiParam::new(ty));
        }
        sig.returns.push(AbiParam::new(ty));
        let f = self.jit.declare_function(name, Linkage::Import, &sig)?;
        self.math.insert(name, f);
        Ok(f)
    }
}

/// Values of a kernel computed once before a loop ([`Emitter::hoist`]).
#[derive(Default)]
pub struct Hoisted(pub(crate) HashMap<kiln_ir::Value, cl::Value>);

/// Emits kernels inline into one Cranelift function.
pub struct Emitter<'a, 'b, 'm> {
    /// The function being built.
    pub b: &'a mut FunctionBuilder<'b>,
    /// The unit it belongs to.
    pub unit: &'a mut Unit<'m>,
    /// The function's trap block: one `i32` parameter, the trap site.
    pub trap: cl::Block,
    /// The function's parameters.
    pub params: Vec<cl::Value>,
}

type Result<T> = std::result::Result<T, cranelift_module::ModuleError>;

impl Emitter<'_, '_, '_> {
    /// An `i32` status constant.
    pub fn status(&mut self, code: i64) -> cl::Value {
        self.b.ins().iconst(types::I32, code)
    }

    /// Branches to the trap block with a new site unless `ok` (an `i8` 0/1) is true.
    fn guard(&mut self, ok: cl::Value, kind: ErrorKind, loc: Option<SourceLoc>) {
        let site = self.unit.sites.add(kind, loc);
        let code = self.status(site);
        let cont = self.b.create_block();
        self.b
            .ins()
            .brif(ok, cont, &[], self.trap, &[BlockArg::Value(code)]);
        self.b.switch_to_block(cont);
    }

    /// Fails with [`ErrorKind::Interrupted`] if [`kiln_interp::INTERRUPT`] is set: one byte
    /// load and a branch, emitted at every loop header, so that Ctrl-C stops a runaway loop.
    fn interrupt_check(&mut self) {
        let ptr = self.unit.pointer();
        let addr = &kiln_interp::INTERRUPT as *const std::sync::atomic::AtomicBool as i64;
        let addr = self.b.ins().iconst(ptr, addr);
        let flag = self.b.ins().load(types::I8, mem(), addr, 0);
        // Branch on the byte itself; the status is set in a cold block of its own, so the
        // loop pays a load, a test and a branch.
        let cold = self.b.create_block();
        let cont = self.b.create_block();
        self.b.ins().brif(flag, cold, &[], cont, &[]);
        self.b.set_cold_block(cold);
        self.b.switch_to_block(cold);
        let site = self.unit.sites.add(ErrorKind::Interrupted, None);
        let code = self.status(site);
        self.b.ins().jump(self.trap, &[BlockArg::Value(code)]);
        self.b.switch_to_block(cont);
    }

    /// Emits kernel `id` with `args` at the current position and returns its results; the
    /// builder is left in the block after the kernel.
    pub fn kernel(&mut self, id: KernelId, args: &[cl::Value]) -> Result<Vec<cl::Value>> {
        self.kernel_with(id, args, &Hoisted::default())
    }

    /// Emits, at the current position, the instructions of kernel `id`'s entry block that
    /// depend only on the arguments given (`Some`) and cannot fail: in a loop preheader,
    /// the work that is the same for every element (`sqrt(t)` and `exp(-r * t)` of a
    /// Black-Scholes kernel whose `t` and `r` are broadcast scalars). Math calls are pure,
    /// so they are hoisted too; integer division, asserts and calls are not.
    pub fn hoist(&mut self, id: KernelId, args: &[Option<cl::Value>]) -> Result<Hoisted> {
        let k = self.unit.ir.kernel(id);
        let entry = k.entry();
        let mut vals: Vec<Option<cl::Value>> = vec![None; k.values.len()];
        for (&p, a) in k.block(entry).params.iter().zip(args) {
            vals[p.index()] = *a;
        }
        let mut hoisted = Hoisted::default();
        for &inst in &k.block(entry).insts {
            let data = k.inst(inst);
            if let InstKind::Call(callee, cargs) = &data.kind {
                let library = self.unit.ir.kernel(*callee).kind == kiln_ir::KernelKind::Library;
                let ready: Option<Vec<cl::Value>> = cargs.iter().map(|v| vals[v.index()]).collect();
                if let (true, Some(cargs)) = (library, ready) {
                    if let Some(addr) = self.unit.library_fn(*callee, None)? {
                        let results = self.call_library(*callee, addr, &cargs);
                        for (&r, v) in data.results.iter().zip(results) {
                            vals[r.index()] = Some(v);
                            hoisted.0.insert(r, v);
                        }
                    }
                }
                continue;
            }
            let pure = match &data.kind {
                InstKind::Const(_)
                | InstKind::Unary(..)
                | InstKind::Fma(..)
                | InstKind::Select(..)
                | InstKind::Cast(_)
                | InstKind::Bitcast(_) => true,
                InstKind::Binary(op, a, _) => !(op.can_trap() && k.value_type(*a).is_int()),
                _ => false,
            };
            if !pure
                || data
                    .kind
                    .operands()
                    .iter()
                    .any(|v| vals[v.index()].is_none())
            {
                continue;
            }
            let Some(results) = self.value_inst(k, inst, &vals)? else {
                continue;
            };
            for (&r, v) in data.results.iter().zip(results) {
                vals[r.index()] = Some(v);
                hoisted.0.insert(r, v);
            }
        }
        Ok(hoisted)
    }

    /// Like [`Emitter::kernel`], with values already computed by [`Emitter::hoist`].
    pub fn kernel_with(
        &mut self,
        id: KernelId,
        args: &[cl::Value],
        pre: &Hoisted,
    ) -> Result<Vec<cl::Value>> {
        let k = self.unit.ir.kernel(id);
        // Reverse post-order puts every block after its dominators, so each value is
        // translated before its uses; unreachable blocks are left out.
        let order = kiln_ir::cfg::reverse_post_order(k);
        let blocks: HashMap<kiln_ir::Block, cl::Block> = order
            .iter()
            .map(|&bl| (bl, self.b.create_block()))
            .collect();
        let exit = self.b.create_block();
        for &r in &k.results {
            self.b.append_block_param(exit, cl_type(r));
        }
        // Loop headers: targets of back-edges (to a block no later in reverse post-order);
        // every cycle has one, so checking for an interrupt there bounds any loop.
        let pos: HashMap<kiln_ir::Block, usize> =
            order.iter().enumerate().map(|(i, &b)| (b, i)).collect();
        let pos = &pos;
        let headers: std::collections::HashSet<kiln_ir::Block> = order
            .iter()
            .filter_map(|&src| Some((src, k.terminator(src)?)))
            .flat_map(|(src, t)| {
                let from = pos[&src];
                k.inst(t)
                    .kind
                    .successors()
                    .into_iter()
                    .map(|c| c.block)
                    .filter(move |b| pos.get(b).is_some_and(|&to| to <= from))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut vals: Vec<Option<cl::Value>> = vec![None; k.values.len()];
        let entry = blocks[&k.entry()];
        for (&p, &a) in k.block(k.entry()).params.iter().zip(args) {
            vals[p.index()] = Some(a);
        }
        for (&v, &c) in &pre.0 {
            vals[v.index()] = Some(c);
        }
        let entry_args: Vec<BlockArg> = Vec::new();
        self.b.ins().jump(entry, &entry_args);
        for &bl in &order {
            let clb = blocks[&bl];
            self.b.switch_to_block(clb);
            if bl != k.entry() {
                for &p in &k.block(bl).params {
                    let v = self.b.append_block_param(clb, cl_type(k.value_type(p)));
                    vals[p.index()] = Some(v);
                }
            }
            // Library functions are total and their loops bounded (and have no way to
            // fail): no check there.
            if headers.contains(&bl) && k.kind != kiln_ir::KernelKind::Library {
                self.interrupt_check();
            }
            for &inst in &k.block(bl).insts {
                let results = &k.inst(inst).results;
                if !results.is_empty() && results.iter().all(|r| pre.0.contains_key(r)) {
                    continue;
                }
                self.inst(k, inst, &mut vals, &blocks, exit)?;
            }
        }
        self.b.switch_to_block(exit);
        Ok(self.b.block_params(exit).to_vec())
    }

    /// Emits an instruction that computes values (not control flow, asserts or calls);
    /// `None` for the others.
    fn value_inst(
        &mut self,
        k: &Kernel,
        inst: kiln_ir::Inst,
        vals: &[Option<cl::Value>],
    ) -> Result<Option<Vec<cl::Value>>> {
        let get =
            |v: kiln_ir::Value| vals[v.index()].expect("verified IR defines values before use");
        let data = k.inst(inst);
        let loc = k.locs[inst.index()];
        Ok(Some(match &data.kind {
            InstKind::Const(c) => vec![self.constant(*c)],
            InstKind::Unary(op, x) => vec![self.unary(*op, k.value_type(*x), get(*x))?],
            InstKind::Binary(op, a, b) => {
                let (ty, bty) = (k.value_type(*a), k.value_type(*b));
                vec![self.binary(*op, ty, bty, get(*a), get(*b), loc)?]
            }
            InstKind::Fma(a, b, c) => vec![self.b.ins().fma(get(*a), get(*b), get(*c))],
            InstKind::Select(c, a, b) => vec![self.b.ins().select(get(*c), get(*a), get(*b))],
            InstKind::Cast(x) => {
                let (from, to) = (k.value_type(*x), k.value_type(data.results[0]));
                vec![self.cast(get(*x), from, to)]
            }
            InstKind::Bitcast(x) => {
                let to = cl_type(k.value_type(data.results[0]));
                vec![self.b.ins().bitcast(to, MemFlagsData::new(), get(*x))]
            }
            _ => return Ok(None),
        }))
    }

    fn inst(
        &mut self,
        k: &Kernel,
        inst: kiln_ir::Inst,
        vals: &mut [Option<cl::Value>],
        blocks: &HashMap<kiln_ir::Block, cl::Block>,
        exit: cl::Block,
    ) -> Result<()> {
        let data = k.inst(inst);
        if let Some(results) = self.value_inst(k, inst, vals)? {
            for (&r, v) in data.results.iter().zip(results) {
                vals[r.index()] = Some(v);
            }
            return Ok(());
        }
        let get = |vals: &[Option<cl::Value>], v: kiln_ir::Value| {
            vals[v.index()].expect("verified IR defines values before use")
        };
        let loc = k.locs[inst.index()];
        let args_of = |vals: &[Option<cl::Value>], t: &kiln_ir::BlockCall| -> Vec<BlockArg> {
            t.args
                .iter()
                .map(|&a| BlockArg::Value(get(vals, a)))
                .collect()
        };
        let results: Vec<cl::Value> = match &data.kind {
            InstKind::Call(callee, args) => {
                let args: Vec<cl::Value> = args.iter().map(|&a| get(vals, a)).collect();
                self.call(*callee, &args)?
            }
            InstKind::Assert(c) => {
                self.guard(get(vals, *c), ErrorKind::AssertionFailed, loc);
                vec![]
            }
            InstKind::Jump(t) => {
                let a = args_of(vals, t);
                self.b.ins().jump(blocks[&t.block], &a);
                vec![]
            }
            InstKind::Branch(c, t, e) => {
                let (ta, ea) = (args_of(vals, t), args_of(vals, e));
                let c = get(vals, *c);
                self.b
                    .ins()
                    .brif(c, blocks[&t.block], &ta, blocks[&e.block], &ea);
                vec![]
            }
            InstKind::Return(vs) => {
                let a: Vec<BlockArg> = vs.iter().map(|&v| BlockArg::Value(get(vals, v))).collect();
                self.b.ins().jump(exit, &a);
                vec![]
            }
            _ => unreachable!("value instructions are handled above"),
        };
        for (&r, v) in data.results.iter().zip(results) {
            vals[r.index()] = Some(v);
        }
        Ok(())
    }

    /// A constant of a Kiln scalar.
    pub fn constant(&mut self, c: kiln_ir::Scalar) -> cl::Value {
        use kiln_ir::Scalar;
        match c {
            Scalar::F32(v) => self.b.ins().f32const(v),
            Scalar::F64(v) => self.b.ins().f64const(v),
            other => {
                let ty = cl_type(other.ty());
                // Integer immediates are sign-extended bit patterns of the type's width.
                let bits = other.to_bits();
                let imm = match ty.bits() {
                    8 => bits as u8 as i8 as i64,
                    32 => bits as u32 as i32 as i64,
                    _ => bits as i64,
                };
                self.b.ins().iconst(ty, imm)
            }
        }
    }

    fn call_math(
        &mut self,
        name: &'static str,
        ty: cl::Type,
        args: &[cl::Value],
    ) -> Result<cl::Value> {
        let f = self.unit.math_fn(name, ty, args.len())?;
        let fref = self.unit.jit.declare_func_in_func(f, self.b.func);
        let call = self.b.ins().call(fref, args);
        Ok(self.b.inst_results(call)[0])
    }

    pub(crate) fn unary(&mut self, op: UnaryOp, ty: ScalarType, x: cl::Value) -> Result<cl::Value> {
        let ins = self.b.ins();
        Ok(match op {
            UnaryOp::Neg if ty.is_float() => ins.fneg(x),
            UnaryOp::Neg => ins.ineg(x),
            UnaryOp::Not if ty == ScalarType::Bool => {
                let one = self.b.ins().iconst(types::I8, 1);
                self.b.ins().bxor(x, one)
            }
            UnaryOp::Not => ins.bnot(x),
            UnaryOp::Abs if ty.is_float() => ins.fabs(x),
            UnaryOp::Abs if ty.is_signed_int() => ins.iabs(x),
            UnaryOp::Abs => x,
            UnaryOp::Sqrt => ins.sqrt(x),
            UnaryOp::Floor => ins.floor(x),
            UnaryOp::Ceil => ins.ceil(x),
            UnaryOp::Trunc => ins.trunc(x),
            UnaryOp::IsNan => ins.fcmp(FloatCC::Unordered, x, x),
            UnaryOp::IsInf | UnaryOp::IsFinite => {
                let a = ins.fabs(x);
                let inf = if ty == ScalarType::F32 {
                    self.b.ins().f32const(f32::INFINITY)
                } else {
                    self.b.ins().f64const(f64::INFINITY)
                };
                let cc = if op == UnaryOp::IsInf {
                    FloatCC::Equal
                } else {
                    FloatCC::LessThan
                };
                self.b.ins().fcmp(cc, a, inf)
            }
            _ => {
                let name = math::unary_symbol(op, ty).expect("every other unary op is a libm call");
                return self.call_math(name, cl_type(ty), &[x]);
            }
        })
    }

    pub(crate) fn binary(
        &mut self,
        op: BinaryOp,
        ty: ScalarType,
        amount_ty: ScalarType,
        a: cl::Value,
        b: cl::Value,
        loc: Option<SourceLoc>,
    ) -> Result<cl::Value> {
        if op.is_shift() {
            let (from, to) = (cl_type(amount_ty), cl_type(ty));
            // Only the low log2(width) bits of the amount matter, so any extension will do.
            let amount = match from.bits().cmp(&to.bits()) {
                std::cmp::Ordering::Less => self.b.ins().uextend(to, b),
                std::cmp::Ordering::Greater => self.b.ins().ireduce(to, b),
                std::cmp::Ordering::Equal => b,
            };
            let ins = self.b.ins();
            return Ok(match op {
                BinaryOp::Shl => ins.ishl(a, amount),
                _ if ty.is_signed_int() => ins.sshr(a, amount),
                _ => ins.ushr(a, amount),
            });
        }
        if op.is_comparison() {
            return Ok(self.compare(op, ty, a, b));
        }
        if ty.is_float() {
            let ins = self.b.ins();
            return Ok(match op {
                BinaryOp::Add => ins.fadd(a, b),
                BinaryOp::Sub => ins.fsub(a, b),
                BinaryOp::Mul => ins.fmul(a, b),
                BinaryOp::Div => ins.fdiv(a, b),
                BinaryOp::Min => ins.fmin(a, b),
                BinaryOp::Max => ins.fmax(a, b),
                BinaryOp::Copysign => ins.fcopysign(a, b),
                _ => {
                    let name = math::binary_symbol(op, ty).expect("a libm binary operator");
                    return self.call_math(name, cl_type(ty), &[a, b]);
                }
            });
        }
        let signed = ty.is_signed_int();
        Ok(match op {
            BinaryOp::Add => self.b.ins().iadd(a, b),
            BinaryOp::Sub => self.b.ins().isub(a, b),
            BinaryOp::Mul => self.b.ins().imul(a, b),
            BinaryOp::And => self.b.ins().band(a, b),
            BinaryOp::Or => self.b.ins().bor(a, b),
            BinaryOp::Xor => self.b.ins().bxor(a, b),
            BinaryOp::Min if signed => self.b.ins().smin(a, b),
            BinaryOp::Min => self.b.ins().umin(a, b),
            BinaryOp::Max if signed => self.b.ins().smax(a, b),
            BinaryOp::Max => self.b.ins().umax(a, b),
            BinaryOp::Div | BinaryOp::Rem => {
                let kind = if op == BinaryOp::Div {
                    ErrorKind::DivisionByZero
                } else {
                    ErrorKind::RemainderByZero
                };
                let nonzero = self.b.ins().icmp_imm_s(IntCC::NotEqual, b, 0);
                self.guard(nonzero, kind, loc);
                if !signed {
                    return Ok(if op == BinaryOp::Div {
                        self.b.ins().udiv(a, b)
                    } else {
                        self.b.ins().urem(a, b)
                    });
                }
                // `MIN / -1` overflows (a hardware trap on x86): divide by 1 instead and
                // negate, which wraps to MIN; the remainder by ±1 is 0 either way.
                let ity = cl_type(ty);
                let minus_one = self.b.ins().icmp_imm_s(IntCC::Equal, b, -1);
                let one = self.b.ins().iconst(ity, 1);
                let divisor = self.b.ins().select(minus_one, one, b);
                if op == BinaryOp::Div {
                    let q = self.b.ins().sdiv(a, divisor);
                    let neg = self.b.ins().ineg(a);
                    self.b.ins().select(minus_one, neg, q)
                } else {
                    self.b.ins().srem(a, divisor)
                }
            }
            other => unreachable!("verified IR: integer {}", other.name()),
        })
    }

    fn compare(&mut self, op: BinaryOp, ty: ScalarType, a: cl::Value, b: cl::Value) -> cl::Value {
        if ty.is_float() {
            return self.b.ins().fcmp(float_cc(op), a, b);
        }
        self.b.ins().icmp(int_cc(op, ty.is_signed_int()), a, b)
    }

    /// Spec §2's `as`, which is Rust's.
    pub(crate) fn cast(&mut self, x: cl::Value, from: ScalarType, to: ScalarType) -> cl::Value {
        let (cf, ct) = (cl_type(from), cl_type(to));
        let ins = self.b.ins();
        if from == ScalarType::Bool {
            if to.is_int() {
                return ins.uextend(ct, x);
            }
            let wide = ins.uextend(types::I32, x);
            return self.b.ins().fcvt_from_uint(ct, wide);
        }
        match (from.is_float(), to.is_float()) {
            (false, false) => match cf.bits().cmp(&ct.bits()) {
                std::cmp::Ordering::Equal => x,
                std::cmp::Ordering::Greater => ins.ireduce(ct, x),
                std::cmp::Ordering::Less if from.is_signed_int() => ins.sextend(ct, x),
                std::cmp::Ordering::Less => ins.uextend(ct, x),
            },
            (false, true) if from.is_signed_int() => ins.fcvt_from_sint(ct, x),
            (false, true) => ins.fcvt_from_uint(ct, x),
            (true, false) if to.is_signed_int() => ins.fcvt_to_sint_sat(ct, x),
            (true, false) => ins.fcvt_to_uint_sat(ct, x),
            (true, true) => match cf.bits().cmp(&ct.bits()) {
                std::cmp::Ordering::Equal => x,
                std::cmp::Ordering::Less => ins.fpromote(ct, x),
                std::cmp::Ordering::Greater => ins.fdemote(ct, x),
            },
        }
    }

    /// A call of a math library function's shared scalar code (at `addr`): the body
    /// signature, results through a stack slot; library functions cannot fail.
    fn call_library(&mut self, callee: KernelId, addr: i64, args: &[cl::Value]) -> Vec<cl::Value> {
        let k = self.unit.ir.kernel(callee);
        let sig = self.unit.body_signature(k);
        let sigref = self.b.import_signature(sig);
        let (slot, out) = self.result_slots(k);
        let f = self.b.ins().iconst(self.unit.pointer(), addr);
        let mut all = args.to_vec();
        all.push(out);
        self.b.ins().call_indirect(sigref, f, &all);
        self.load_results(k, slot)
    }

    /// 8-byte slots for the results of a call of `k`, and their address.
    fn result_slots(&mut self, k: &Kernel) -> (cl::StackSlot, cl::Value) {
        let slot = self.b.create_sized_stack_slot(cl::StackSlotData::new(
            cl::StackSlotKind::ExplicitSlot,
            8 * k.results.len().max(1) as u32,
            3,
        ));
        let addr = self.b.ins().stack_addr(self.unit.pointer(), slot, 0);
        (slot, addr)
    }

    /// The results of a call of `k`, from the slots of [`Emitter::result_slots`].
    fn load_results(&mut self, k: &Kernel, slot: cl::StackSlot) -> Vec<cl::Value> {
        let ptr_ty = self.unit.pointer();
        k.results
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                self.b
                    .ins()
                    .stack_load(ptr_ty, cl_type(t), slot, 8 * i as i32)
            })
            .collect()
    }

    /// A call of a kernel the optimiser did not inline: its out-of-line body, results
    /// through a stack slot, and a non-zero status passed on to this function's trap block.
    fn call(&mut self, callee: KernelId, args: &[cl::Value]) -> Result<Vec<cl::Value>> {
        if let Some(addr) = self.unit.library_fn(callee, None)? {
            return Ok(self.call_library(callee, addr, args));
        }
        let f = self.unit.body(callee)?;
        let fref = self.unit.jit.declare_func_in_func(f, self.b.func);
        // The JIT places functions wherever it gets memory, possibly more than 2 GiB apart
        // (seen under AddressSanitizer): call through an absolute address, not a 32-bit
        // PC-relative one, whose relocation would fail when the module is finalised.
        self.b.func.dfg.ext_funcs[fref].colocated = false;
        let k = self.unit.ir.kernel(callee);
        let (slot, addr) = self.result_slots(k);
        let mut all = args.to_vec();
        all.push(addr);
        let call = self.b.ins().call(fref, &all);
        let status = self.b.inst_results(call)[0];
        let ok = self.b.ins().icmp_imm_s(IntCC::Equal, status, 0);
        let cont = self.b.create_block();
        self.b
            .ins()
            .brif(ok, cont, &[], self.trap, &[BlockArg::Value(status)]);
        self.b.switch_to_block(cont);
        Ok(self.load_results(k, slot))
    }
}
