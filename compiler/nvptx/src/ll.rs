//! Kiln IR kernels as LLVM IR text.
//!
//! Each IR kernel the entry reaches becomes one internal LLVM function, `@k<N>` for kernel
//! `N` of the module (its Kiln name in a comment). Library kernels (pure and total) return
//! their results; every other kernel returns `{ i32 status, results... }`, where status 0 is
//! success and `n ≥ 1` is trap site `n - 1` of the unit ([`Site`]), as in the CPU back end.
//!
//! The translation is one to one and states each operator's semantics (spec §5,
//! `kiln_ir::inst`) with LLVM instructions that mean exactly that on every target, so the
//! GPU computes what the interpreter computes, bit for bit:
//! - integer `+ - *` wrap (no `nsw`); `/` and `%` check for a zero divisor and guard
//!   `MIN / -1` (UB in LLVM) with a select;
//! - shift amounts are converted to the operand width and masked;
//! - float→int casts are `llvm.fpto[su]i.sat` (saturating, NaN → 0, which is Rust's `as`);
//! - `min`/`max` on floats are spelled out with compares and selects (NaN-propagating,
//!   `-0.0 < +0.0`), because LLVM 19's NVPTX back end cannot select `llvm.minimum.f64`;
//! - no fast-math flags anywhere, so LLVM and `ptxas` never contract `a * b + c` (the IR's
//!   own `fma`, which fast math introduces, is `llvm.fma`); the NVPTX back end then emits
//!   `add.rn`/`mul.rn`, which `ptxas` does not fuse either.
//!
//! Floating-point `%` and the transcendental operators reach a back end only as calls into
//! the math library (written in Kiln, imported into the module), so they are translated like
//! any other kernel; an IR operator without an exact LLVM counterpart (`frem` lowers to an
//! inexact sequence on NVPTX) is reported as unsupported instead of computed differently.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use kiln_interp::ErrorKind;
use kiln_ir::{
    BinaryOp, Block, BlockCall, InstKind, KernelId, KernelKind, Module, Scalar, ScalarType,
    SourceLoc, UnaryOp, Value,
};

use crate::BackendError;

pub use kiln_interp::Site;

/// The LLVM type of a value of `ty` in registers.
pub fn reg_ty(ty: ScalarType) -> &'static str {
    match ty {
        ScalarType::Bool => "i1",
        ScalarType::I32 | ScalarType::U32 => "i32",
        ScalarType::I64 | ScalarType::U64 => "i64",
        ScalarType::F32 => "float",
        ScalarType::F64 => "double",
    }
}

/// The LLVM type of a value of `ty` in memory (`bool` is a byte, as in Rust).
pub fn mem_ty(ty: ScalarType) -> &'static str {
    match ty {
        ScalarType::Bool => "i8",
        other => reg_ty(other),
    }
}

/// Bytes of `ty` in memory.
pub fn mem_size(ty: ScalarType) -> u32 {
    match ty {
        ScalarType::Bool => 1,
        other => other.bits() / 8,
    }
}

/// `ty`'s name in LLVM intrinsic suffixes (`llvm.sqrt.f64`).
fn suffix(ty: ScalarType) -> &'static str {
    match ty {
        ScalarType::F32 => "f32",
        ScalarType::F64 => "f64",
        ScalarType::I32 | ScalarType::U32 => "i32",
        ScalarType::I64 | ScalarType::U64 => "i64",
        ScalarType::Bool => "i1",
    }
}

/// A constant as an LLVM operand.
pub fn literal(s: Scalar) -> String {
    match s {
        Scalar::Bool(b) => b.to_string(),
        Scalar::I32(v) => v.to_string(),
        Scalar::I64(v) => v.to_string(),
        Scalar::U32(v) => (v as i32).to_string(),
        Scalar::U64(v) => (v as i64).to_string(),
        // LLVM spells a `float` constant as the `double` with the same value; for NaNs the
        // payload moves to the top of the double's significand (exactly what LLVM's own
        // printer does), which widening with `as` would not preserve for signalling NaNs.
        Scalar::F32(v) => {
            let b = v.to_bits() as u64;
            let bits = if v.is_nan() {
                ((b >> 31) << 63) | (0x7ff << 52) | ((b & 0x7f_ffff) << 29)
            } else {
                (v as f64).to_bits()
            };
            format!("0x{bits:016X}")
        }
        Scalar::F64(v) => format!("0x{:016X}", v.to_bits()),
    }
}

/// The LLVM text of the kernels an entry reaches, and the trap sites they use.
#[derive(Default)]
pub struct Unit {
    /// Function definitions, in the order they were emitted.
    pub functions: String,
    /// Declarations of the intrinsics used, by name.
    pub declarations: BTreeMap<String, String>,
    /// Trap sites (status `n` is `sites[n - 1]`).
    pub sites: Vec<Site>,
    /// Kernels emitted or queued.
    names: HashMap<KernelId, String>,
    /// Kernels queued for emission.
    pending: Vec<KernelId>,
}

impl Unit {
    /// The name of kernel `id`'s function, queueing it for emission on first use.
    pub fn function(&mut self, id: KernelId) -> String {
        if let Some(name) = self.names.get(&id) {
            return name.clone();
        }
        let name = format!("@k{}", id.index());
        self.names.insert(id, name.clone());
        self.pending.push(id);
        name
    }

    /// Emits every queued kernel (and the kernels they call).
    pub fn emit_pending(&mut self, m: &Module) -> Result<(), BackendError> {
        while let Some(id) = self.pending.pop() {
            FnEmitter::new(self, m, id).emit()?;
        }
        Ok(())
    }

    /// Declares an intrinsic (idempotent).
    pub fn declare(&mut self, name: &str, decl: String) {
        self.declarations.entry(name.to_string()).or_insert(decl);
    }

    /// Adds a trap site and returns its status code.
    pub fn site(&mut self, kind: ErrorKind, loc: Option<SourceLoc>) -> Result<u32, BackendError> {
        self.sites.push(Site { kind, loc });
        let n = self.sites.len();
        // Status codes travel in the low 16 bits of the error word (see `crate::entries`).
        u32::try_from(n)
            .ok()
            .filter(|&n| n < 1 << 16)
            .ok_or_else(|| {
                BackendError("more than 65535 places that can fail in one kernel".into())
            })
    }

    /// Calls `@name(args)` of a unary float intrinsic `llvm.NAME.fXX`, declaring it.
    pub fn float_intrinsic(&mut self, name: &str, ty: ScalarType, arity: usize) -> String {
        let t = reg_ty(ty);
        let full = format!("llvm.{name}.{}", suffix(ty));
        let params = vec![t; arity].join(", ");
        self.declare(&full, format!("declare {t} @{full}({params})"));
        format!("@{full}")
    }
}

/// Whether kernel `k` returns a status word (everything but library kernels).
pub fn has_status(kind: KernelKind) -> bool {
    kind != KernelKind::Library
}

/// The LLVM return type of a kernel's function.
pub fn return_type(m: &Module, id: KernelId) -> String {
    let k = m.kernel(id);
    let mut parts: Vec<&str> = Vec::new();
    if has_status(k.kind) {
        parts.push("i32");
    } else if k.results.len() == 1 {
        return reg_ty(k.results[0]).to_string();
    }
    parts.extend(k.results.iter().map(|&t| reg_ty(t)));
    format!("{{ {} }}", parts.join(", "))
}

/// A block's incoming edges: (predecessor label, arguments).
type Incoming = Vec<(String, Vec<String>)>;

/// Emits one kernel's function.
struct FnEmitter<'u, 'm> {
    unit: &'u mut Unit,
    m: &'m Module,
    id: KernelId,
    /// Operand text of values that need no instruction (constants, no-op casts).
    operand: HashMap<Value, String>,
    incoming: HashMap<Block, Incoming>,
    /// The body of the block being emitted.
    body: String,
    /// Blocks appended after the kernel's own (edge blocks, trap and propagation exits).
    tail: String,
    /// The label instructions are currently emitted under.
    label: String,
    tmp: usize,
}

impl<'u, 'm> FnEmitter<'u, 'm> {
    fn new(unit: &'u mut Unit, m: &'m Module, id: KernelId) -> Self {
        FnEmitter {
            unit,
            m,
            id,
            operand: HashMap::new(),
            incoming: HashMap::new(),
            body: String::new(),
            tail: String::new(),
            label: String::new(),
            tmp: 0,
        }
    }

    fn kernel(&self) -> &'m kiln_ir::Kernel {
        self.m.kernel(self.id)
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.tmp += 1;
        format!("{prefix}{}", self.tmp)
    }

    fn op(&self, v: Value) -> String {
        self.operand
            .get(&v)
            .cloned()
            .unwrap_or_else(|| format!("%v{}", v.index()))
    }

    fn ty(&self, v: Value) -> ScalarType {
        self.kernel().value_type(v)
    }

    fn line(&mut self, s: impl AsRef<str>) {
        self.body.push_str("  ");
        self.body.push_str(s.as_ref());
        self.body.push('\n');
    }

    /// Starts a new LLVM block (inside the current IR block) named `label`.
    fn start(&mut self, label: String) {
        let _ = writeln!(self.body, "{label}:");
        self.label = label;
    }

    fn emit(mut self) -> Result<(), BackendError> {
        let k = self.kernel();
        // Constants are operands, not instructions.
        for &b in &k.layout {
            for &inst in &k.block(b).insts {
                if let InstKind::Const(c) = k.inst(inst).kind {
                    self.operand.insert(k.inst(inst).results[0], literal(c));
                }
            }
        }
        let mut blocks: Vec<(Block, String)> = Vec::new();
        for &b in &k.layout {
            self.body.clear();
            self.label = format!("b{}", b.index());
            for &inst in &k.block(b).insts {
                self.inst(inst)?;
            }
            blocks.push((b, std::mem::take(&mut self.body)));
        }
        let ret = return_type(self.m, self.id);
        let params: Vec<String> = k
            .block(k.entry())
            .params
            .iter()
            .map(|&p| format!("{} %v{}", reg_ty(k.value_type(p)), p.index()))
            .collect();
        let f = &mut self.unit.functions;
        let _ = writeln!(f, "; {} {}", k.kind.keyword(), k.name);
        let _ = writeln!(
            f,
            "define internal {ret} @k{}({}) {{",
            self.id.index(),
            params.join(", ")
        );
        for (i, (b, body)) in blocks.iter().enumerate() {
            let _ = writeln!(f, "b{}:", b.index());
            if i > 0 {
                for (n, &p) in k.block(*b).params.iter().enumerate() {
                    let edges = self.incoming.get(b).map(Vec::as_slice).unwrap_or(&[]);
                    let arms: Vec<String> = edges
                        .iter()
                        .map(|(label, args)| format!("[ {}, %{label} ]", args[n]))
                        .collect();
                    let _ = writeln!(
                        f,
                        "  %v{} = phi {} {}",
                        p.index(),
                        reg_ty(k.value_type(p)),
                        arms.join(", ")
                    );
                }
            }
            f.push_str(body);
        }
        f.push_str(&self.tail);
        f.push_str("}\n\n");
        Ok(())
    }

    /// Records the edge into `call.block` from `from` and returns the target label.
    fn edge(&mut self, from: String, call: &BlockCall) -> String {
        let args = call.args.iter().map(|&a| self.op(a)).collect();
        self.incoming
            .entry(call.block)
            .or_default()
            .push((from, args));
        format!("b{}", call.block.index())
    }

    /// The exit that returns status `status` (an operand) from this kernel.
    fn status_exit(&mut self, status: &str) -> String {
        let label = self.fresh("exit");
        let ret = return_type(self.m, self.id);
        let _ = writeln!(
            self.tail,
            "{label}:\n  %{label}.r = insertvalue {ret} poison, i32 {status}, 0\n  ret {ret} %{label}.r"
        );
        label
    }

    /// Branches to a new trap exit unless `ok`, and continues in a new block.
    fn trap_unless(
        &mut self,
        ok: &str,
        kind: ErrorKind,
        inst: kiln_ir::Inst,
    ) -> Result<(), BackendError> {
        if !has_status(self.kernel().kind) {
            return Err(BackendError(format!(
                "library kernel `{}` can fail ({kind})",
                self.kernel().name
            )));
        }
        let loc = self.kernel().locs[inst.index()];
        let code = self.unit.site(kind, loc)?;
        let exit = self.status_exit(&code.to_string());
        let cont = self.fresh("ok");
        self.line(format!("br i1 {ok}, label %{cont}, label %{exit}"));
        self.start(cont);
        Ok(())
    }

    fn inst(&mut self, inst: kiln_ir::Inst) -> Result<(), BackendError> {
        let k = self.kernel();
        let data = k.inst(inst);
        let res = |n: usize| format!("%v{}", data.results[n].index());
        match &data.kind {
            InstKind::Const(_) => {}
            &InstKind::Unary(op, x) => self.unary(op, x, data.results[0])?,
            &InstKind::Binary(op, a, b) => self.binary(op, a, b, &res(0), inst)?,
            &InstKind::Fma(a, b, c) => {
                let ty = self.ty(a);
                let f = self.unit.float_intrinsic("fma", ty, 3);
                let t = reg_ty(ty);
                let (a, b, c) = (self.op(a), self.op(b), self.op(c));
                self.line(format!(
                    "{} = call {t} {f}({t} {a}, {t} {b}, {t} {c})",
                    res(0)
                ));
            }
            &InstKind::Select(c, a, b) => {
                let t = reg_ty(self.ty(a));
                let (c, a, b) = (self.op(c), self.op(a), self.op(b));
                self.line(format!("{} = select i1 {c}, {t} {a}, {t} {b}", res(0)));
            }
            &InstKind::Cast(x) => {
                let to = k.value_type(data.results[0]);
                self.cast(x, to, data.results[0]);
            }
            &InstKind::Bitcast(x) => {
                let to = reg_ty(k.value_type(data.results[0]));
                let from = reg_ty(self.ty(x));
                let x = self.op(x);
                self.line(format!("{} = bitcast {from} {x} to {to}", res(0)));
            }
            InstKind::Call(callee, args) => self.call(*callee, args, &data.results)?,
            &InstKind::Assert(c) => {
                let c = self.op(c);
                self.trap_unless(&c, ErrorKind::AssertionFailed, inst)?;
            }
            InstKind::Jump(t) => {
                let target = self.edge(self.label.clone(), t);
                self.line(format!("br label %{target}"));
            }
            InstKind::Branch(c, t, e) => {
                let c = self.op(*c);
                let mut labels = Vec::new();
                for call in [t, e] {
                    if k.block(call.block).params.is_empty() {
                        labels.push(format!("b{}", call.block.index()));
                    } else {
                        // An edge block per arm, so that both arms may target one block
                        // with different arguments.
                        let edge = self.fresh("edge");
                        let target = self.edge(edge.clone(), call);
                        let _ = writeln!(self.tail, "{edge}:\n  br label %{target}");
                        labels.push(edge);
                    }
                }
                self.line(format!(
                    "br i1 {c}, label %{}, label %{}",
                    labels[0], labels[1]
                ));
            }
            InstKind::Return(vals) => {
                let ret = return_type(self.m, self.id);
                if !has_status(k.kind) && vals.len() == 1 {
                    let v = self.op(vals[0]);
                    self.line(format!("ret {ret} {v}"));
                    return Ok(());
                }
                let mut fields: Vec<(String, String)> = Vec::new();
                if has_status(k.kind) {
                    fields.push(("i32".into(), "0".into()));
                }
                for &v in vals {
                    fields.push((reg_ty(self.ty(v)).into(), self.op(v)));
                }
                let mut acc = "poison".to_string();
                for (i, (t, v)) in fields.iter().enumerate() {
                    let name = self.fresh("%ret");
                    self.line(format!("{name} = insertvalue {ret} {acc}, {t} {v}, {i}"));
                    acc = name;
                }
                self.line(format!("ret {ret} {acc}"));
            }
        }
        Ok(())
    }

    fn call(
        &mut self,
        callee: KernelId,
        args: &[Value],
        results: &[Value],
    ) -> Result<(), BackendError> {
        let name = self.unit.function(callee);
        let ret = return_type(self.m, callee);
        let args: Vec<String> = args
            .iter()
            .map(|&a| format!("{} {}", reg_ty(self.ty(a)), self.op(a)))
            .collect();
        let r = self.fresh("%call");
        self.line(format!("{r} = call {ret} {name}({})", args.join(", ")));
        let callee_kind = self.m.kernel(callee).kind;
        let first = if has_status(callee_kind) {
            if !has_status(self.kernel().kind) {
                return Err(BackendError(format!(
                    "library kernel `{}` calls `{}`, which can fail",
                    self.kernel().name,
                    self.m.kernel(callee).name
                )));
            }
            // A failing callee's status is this kernel's status.
            let st = self.fresh("%st");
            let ok = self.fresh("%stok");
            self.line(format!("{st} = extractvalue {ret} {r}, 0"));
            self.line(format!("{ok} = icmp eq i32 {st}, 0"));
            let exit = self.status_exit(&st);
            let cont = self.fresh("ok");
            self.line(format!("br i1 {ok}, label %{cont}, label %{exit}"));
            self.start(cont);
            1
        } else if results.len() == 1 {
            self.operand.insert(results[0], r);
            return Ok(());
        } else {
            0
        };
        for (i, &v) in results.iter().enumerate() {
            self.line(format!(
                "%v{} = extractvalue {ret} {r}, {}",
                v.index(),
                i + first
            ));
        }
        Ok(())
    }

    fn unary(&mut self, op: UnaryOp, x: Value, result: Value) -> Result<(), BackendError> {
        use UnaryOp::*;
        let ty = self.ty(x);
        let t = reg_ty(ty);
        let xs = self.op(x);
        let r = &format!("%v{}", result.index());
        let mut out = String::new();
        let mut l = |s: String| {
            out.push_str("  ");
            out.push_str(&s);
            out.push('\n');
        };
        match op {
            Neg if ty.is_float() => l(format!("{r} = fneg {t} {xs}")),
            Neg => l(format!("{r} = sub {t} 0, {xs}")),
            Not if ty == ScalarType::Bool => l(format!("{r} = xor i1 {xs}, true")),
            Not => l(format!("{r} = xor {t} {xs}, -1")),
            Abs if ty.is_float() => {
                let f = self.unit.float_intrinsic("fabs", ty, 1);
                l(format!("{r} = call {t} {f}({t} {xs})"));
            }
            Abs if ty.is_signed_int() => {
                l(format!("{r}.neg = sub {t} 0, {xs}"));
                l(format!("{r}.lt = icmp slt {t} {xs}, 0"));
                l(format!("{r} = select i1 {r}.lt, {t} {r}.neg, {t} {xs}"));
            }
            // Unsigned: the value itself.
            Abs => {
                self.operand.insert(result, xs);
            }
            Sqrt | Floor | Ceil | Trunc | Round => {
                let name = match op {
                    Sqrt => "sqrt",
                    Floor => "floor",
                    Ceil => "ceil",
                    Trunc => "trunc",
                    _ => "round",
                };
                let f = self.unit.float_intrinsic(name, ty, 1);
                l(format!("{r} = call {t} {f}({t} {xs})"));
            }
            IsNan => l(format!("{r} = fcmp uno {t} {xs}, {xs}")),
            IsInf | IsFinite => {
                let f = self.unit.float_intrinsic("fabs", ty, 1);
                let inf = literal(if ty == ScalarType::F32 {
                    Scalar::F32(f32::INFINITY)
                } else {
                    Scalar::F64(f64::INFINITY)
                });
                l(format!("{r}.abs = call {t} {f}({t} {xs})"));
                let cc = if op == IsInf { "oeq" } else { "one" };
                l(format!("{r} = fcmp {cc} {t} {r}.abs, {inf}"));
            }
            other => {
                return Err(BackendError(format!(
                    "`{}` on {ty} is computed by the math library; this IR uses the operator \
                     directly, which the GPU back end does not implement",
                    other.name()
                )))
            }
        }
        self.body.push_str(&out);
        Ok(())
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        a: Value,
        b: Value,
        r: &str,
        inst: kiln_ir::Inst,
    ) -> Result<(), BackendError> {
        use BinaryOp::*;
        let ty = self.ty(a);
        let t = reg_ty(ty);
        let (x, y) = (self.op(a), self.op(b));
        let float = ty.is_float();
        let signed = ty.is_signed_int();
        match op {
            Add | Sub | Mul if float => {
                let i = ["fadd", "fsub", "fmul"][op as usize];
                self.line(format!("{r} = {i} {t} {x}, {y}"));
            }
            Add | Sub | Mul => {
                let i = ["add", "sub", "mul"][op as usize];
                self.line(format!("{r} = {i} {t} {x}, {y}"));
            }
            Div if float => self.line(format!("{r} = fdiv {t} {x}, {y}")),
            Rem if float => {
                return Err(BackendError(
                    "floating-point `%` is computed by the math library (`math.fmod`); this IR \
                     uses the operator directly, which the GPU back end does not implement"
                        .into(),
                ))
            }
            Div | Rem => {
                let kind = if op == Div {
                    ErrorKind::DivisionByZero
                } else {
                    ErrorKind::RemainderByZero
                };
                let nz = self.fresh("%nz");
                self.line(format!("{nz} = icmp ne {t} {y}, 0"));
                self.trap_unless(&nz, kind, inst)?;
                if signed {
                    // `MIN / -1` overflows (UB in LLVM): divide by 1 instead and fix up,
                    // giving Rust's wrapping results `MIN / -1 == MIN`, `MIN % -1 == 0`.
                    self.line(format!("{r}.m1 = icmp eq {t} {y}, -1"));
                    self.line(format!("{r}.d = select i1 {r}.m1, {t} 1, {t} {y}"));
                    if op == Div {
                        self.line(format!("{r}.q = sdiv {t} {x}, {r}.d"));
                        self.line(format!("{r}.n = sub {t} 0, {x}"));
                        self.line(format!("{r} = select i1 {r}.m1, {t} {r}.n, {t} {r}.q"));
                    } else {
                        self.line(format!("{r}.q = srem {t} {x}, {r}.d"));
                        self.line(format!("{r} = select i1 {r}.m1, {t} 0, {t} {r}.q"));
                    }
                } else {
                    let i = if op == Div { "udiv" } else { "urem" };
                    self.line(format!("{r} = {i} {t} {x}, {y}"));
                }
            }
            And | Or | Xor => {
                let i = match op {
                    And => "and",
                    Or => "or",
                    _ => "xor",
                };
                self.line(format!("{r} = {i} {t} {x}, {y}"));
            }
            Shl | Shr => {
                let bty = self.ty(b);
                let amount = match bty.bits().cmp(&ty.bits()) {
                    std::cmp::Ordering::Less => {
                        self.line(format!("{r}.amt = zext {} {y} to {t}", reg_ty(bty)));
                        format!("{r}.amt")
                    }
                    std::cmp::Ordering::Greater => {
                        self.line(format!("{r}.amt = trunc {} {y} to {t}", reg_ty(bty)));
                        format!("{r}.amt")
                    }
                    std::cmp::Ordering::Equal => y,
                };
                self.line(format!("{r}.sh = and {t} {amount}, {}", ty.bits() - 1));
                let i = match (op, signed) {
                    (Shl, _) => "shl",
                    (_, true) => "ashr",
                    _ => "lshr",
                };
                self.line(format!("{r} = {i} {t} {x}, {r}.sh"));
            }
            Eq | Ne | Lt | Le | Gt | Ge => {
                let cc = if float {
                    // Rust's float comparisons: `!=` is true when either is NaN.
                    ["oeq", "une", "olt", "ole", "ogt", "oge"][op as usize - Eq as usize]
                } else if signed {
                    ["eq", "ne", "slt", "sle", "sgt", "sge"][op as usize - Eq as usize]
                } else {
                    ["eq", "ne", "ult", "ule", "ugt", "uge"][op as usize - Eq as usize]
                };
                let i = if float { "fcmp" } else { "icmp" };
                self.line(format!("{r} = {i} {cc} {t} {x}, {y}"));
            }
            Min | Max if float => {
                // IEEE 754-2019 minimum/maximum, as the interpreter's `float_min_max`: NaN
                // if either is NaN (the first NaN), otherwise the smaller/larger, with
                // `-0.0 < +0.0`.
                let want_max = op == Max;
                let ity = if ty == ScalarType::F32 { "i32" } else { "i64" };
                let cc = if want_max { "ogt" } else { "olt" };
                self.line(format!("{r}.an = fcmp uno {t} {x}, {x}"));
                self.line(format!("{r}.bn = fcmp uno {t} {y}, {y}"));
                self.line(format!("{r}.eq = fcmp oeq {t} {x}, {y}"));
                self.line(format!("{r}.lt = fcmp {cc} {t} {x}, {y}"));
                self.line(format!("{r}.ab = bitcast {t} {x} to {ity}"));
                self.line(format!("{r}.neg = icmp slt {ity} {r}.ab, 0"));
                if want_max {
                    self.line(format!("{r}.z = xor i1 {r}.neg, true"));
                } else {
                    self.line(format!("{r}.z = or i1 {r}.neg, false"));
                }
                self.line(format!("{r}.first = select i1 {r}.eq, i1 {r}.z, i1 {r}.lt"));
                self.line(format!("{r}.m = select i1 {r}.first, {t} {x}, {t} {y}"));
                self.line(format!("{r}.mb = select i1 {r}.bn, {t} {y}, {t} {r}.m"));
                self.line(format!("{r} = select i1 {r}.an, {t} {x}, {t} {r}.mb"));
            }
            Min | Max => {
                let cc = match (op, signed) {
                    (Min, true) => "slt",
                    (Min, false) => "ult",
                    (_, true) => "sgt",
                    _ => "ugt",
                };
                self.line(format!("{r}.c = icmp {cc} {t} {x}, {y}"));
                self.line(format!("{r} = select i1 {r}.c, {t} {x}, {t} {y}"));
            }
            Copysign => {
                let f = self.unit.float_intrinsic("copysign", ty, 2);
                self.line(format!("{r} = call {t} {f}({t} {x}, {t} {y})"));
            }
            Atan2 | Pow | Hypot => {
                return Err(BackendError(format!(
                    "`{}` on {ty} is computed by the math library; this IR uses the operator \
                     directly, which the GPU back end does not implement",
                    op.name()
                )))
            }
        }
        Ok(())
    }

    fn cast(&mut self, x: Value, to: ScalarType, result: Value) {
        let from = self.ty(x);
        let xs = self.op(x);
        let r = format!("%v{}", result.index());
        let (ft, tt) = (reg_ty(from), reg_ty(to));
        let instr = if from == to || (from.is_int() && to.is_int() && from.bits() == to.bits()) {
            // Same bits (i32 ↔ u32 and the like): no instruction.
            self.operand.insert(result, xs);
            return;
        } else if from == ScalarType::Bool {
            if to.is_float() {
                "uitofp"
            } else {
                "zext"
            }
        } else if from.is_int() && to.is_int() {
            if to.bits() < from.bits() {
                "trunc"
            } else if from.is_signed_int() {
                "sext"
            } else {
                "zext"
            }
        } else if from.is_int() {
            if from.is_signed_int() {
                "sitofp"
            } else {
                "uitofp"
            }
        } else if to.is_int() {
            let name = if to.is_signed_int() {
                "fptosi.sat"
            } else {
                "fptoui.sat"
            };
            let full = format!("llvm.{name}.{}.{}", suffix(to), suffix(from));
            self.unit
                .declare(&full, format!("declare {tt} @{full}({ft})"));
            self.line(format!("{r} = call {tt} @{full}({ft} {xs})"));
            return;
        } else if to.bits() > from.bits() {
            "fpext"
        } else {
            "fptrunc"
        };
        self.line(format!("{r} = {instr} {ft} {xs} to {tt}"));
    }
}
