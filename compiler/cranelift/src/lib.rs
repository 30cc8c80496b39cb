//! `kiln-cranelift`: Kiln's CPU back end. Kiln IR → Cranelift IR → native code, in process.
//!
//! Three kinds of entry point are compiled from a kernel ([`Shape`]):
//! - **scalar**: `fn(args: *const u64, results: *mut u64) -> i32`, one 8-byte slot per
//!   argument and result holding the value in its native representation; for scripts,
//!   run lines and identities;
//! - **loop** (a ufunc's inner loop, NumPy's model): `fn(n, ptrs, strides, err_index) -> i32`
//!   applies the kernel to `n` elements; `ptrs[j]`/`strides[j]` (bytes) describe operand `j`,
//!   inputs then outputs. When every stride equals its element size a contiguous loop runs
//!   (one offset per element size, ready for vectorisation), otherwise a strided one;
//! - **reduce**: `fn(n, ptrs, strides, acc, err_index) -> i32` folds `n` elements into the
//!   accumulator `*acc` with a `reduce` item's combine, optionally applying a ufunc to the
//!   inputs first (a fused map-reduce such as a sum of squares).
//!
//! Every entry returns 0 or a *trap site* number: integer division by zero and failed
//! asserts branch to a trap block instead of executing a faulting instruction, so no
//! hardware trap reaches the host. Loops store the failing element's index in
//! `*err_index`. The caller turns the site into a [`RuntimeError`] naming the kernel and the
//! source location.
//!
//! Compiled code is cached per [`Cpu`] (one target): the key is an exact encoding of the
//! entry shape and the IR of the kernel and everything it calls (names carry the dtypes of a
//! specialisation, and constants are part of the IR), so a changed kernel can never hit a
//! stale entry (see `key.rs`).
#![allow(unsafe_code)]
// Calling generated code and reading its results is unsafe by nature.
// Cranelift's `ModuleError` is large; it is returned only on the cold path of a failed
// compile, so boxing it everywhere would buy nothing.
#![allow(clippy::result_large_err)]
#![warn(missing_docs)]

mod key;
mod math;
mod simd;
mod translate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cranelift_codegen::ir::{self as cl, types, AbiParam, BlockArg, InstBuilder, UserFuncName};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Module as _};
use kiln_interp::RuntimeError;
use kiln_ir::{KernelId, Module, Scalar, ScalarType};

pub use translate::{byte_size, Site};
use translate::{cl_type, mem, Emitter, Hoisted, Unit};

/// What a back-end failure is: an unsupported host, or Cranelift rejecting what Kiln gave it
/// (always a Kiln bug).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("CPU back end: {0}")]
pub struct BackendError(pub String);

fn backend_err(e: impl std::fmt::Display) -> BackendError {
    BackendError(e.to_string())
}

/// Which entry point to compile for a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Scalar arguments in, scalar results out.
    Scalar,
    /// A ufunc's inner loop over `n` elements; bit `j` of `uniform` says input `j` has
    /// stride 0 in every call (a broadcast scalar), which the loop then reads once.
    Loop {
        /// Inputs that are the same for every element.
        uniform: u64,
    },
    /// A reduction loop with this combine kernel; the kernel compiled is the optional map
    /// applied to the inputs first (`None`: one input, reduced as is).
    Reduce {
        /// The `reduce` item's combine.
        combine: KernelId,
    },
}

/// The CPU back end: the host ISA and a cache of compiled entry points.
pub struct Cpu {
    isa: OwnedTargetIsa,
    /// The same target, for library functions (see [`Cpu::new`]).
    isa_lib: OwnedTargetIsa,
    cache: Mutex<HashMap<Vec<u64>, Arc<Code>, rustc_hash::FxBuildHasher>>,
    /// A hash of the target and its settings: library code compiled for one `Cpu` is
    /// shared (process-wide) with every `Cpu` of the same configuration.
    isa_key: u64,
    /// Whether ufunc loops get a SIMD variant (`KILN_SIMD=0` turns it off, to compare).
    simd: bool,
}

impl std::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cpu")
            .field("target", &self.isa.triple().to_string())
            .finish_non_exhaustive()
    }
}

/// Machine code owned by one JIT module, freed when the last entry using it is dropped.
struct CodeMemory(Option<JITModule>);

impl Drop for CodeMemory {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            // SAFETY: the only pointers into this memory are held by the `Code` that owns
            // this value, and it is being dropped.
            unsafe { m.free_memory() };
        }
    }
}

// SAFETY: after `finalize_definitions` the module is never touched again until it is
// dropped; the code it owns is immutable and safe to call from any thread.
unsafe impl Send for CodeMemory {}
// SAFETY: as above: no `&self` access mutates anything.
unsafe impl Sync for CodeMemory {}

/// A compiled entry point.
pub struct Code {
    _memory: CodeMemory,
    /// The shared library code this code calls.
    _libs: Vec<Arc<LibFn>>,
    ptr: *const u8,
    sites: Vec<Site>,
    /// The kernel errors are reported in.
    kernel: String,
    params: Vec<ScalarType>,
    results: Vec<ScalarType>,
}

// SAFETY: `ptr` points into `_memory`'s immutable code; see `CodeMemory`.
unsafe impl Send for Code {}
// SAFETY: as above.
unsafe impl Sync for Code {}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Code")
            .field("kernel", &self.kernel)
            .field("params", &self.params)
            .field("results", &self.results)
            .finish_non_exhaustive()
    }
}

type ScalarEntry = unsafe extern "C" fn(*const u64, *mut u64) -> i32;
type LoopEntry = unsafe extern "C" fn(i64, *const *mut u8, *const isize, *mut i64) -> i32;
type ReduceEntry =
    unsafe extern "C" fn(i64, *const *mut u8, *const isize, *mut u64, *mut i64) -> i32;

/// Writes `s` into an 8-byte slot in its native representation.
fn write_slot(slot: &mut u64, s: Scalar) {
    let p = slot as *mut u64 as *mut u8;
    // SAFETY: every scalar is at most 8 bytes; the slot is 8 bytes and 8-aligned.
    unsafe {
        match s {
            Scalar::Bool(v) => p.write(v as u8),
            Scalar::I32(v) => (p as *mut i32).write(v),
            Scalar::I64(v) => (p as *mut i64).write(v),
            Scalar::U32(v) => (p as *mut u32).write(v),
            Scalar::U64(v) => (p as *mut u64).write(v),
            Scalar::F32(v) => (p as *mut f32).write(v),
            Scalar::F64(v) => (p as *mut f64).write(v),
        }
    }
}

/// Reads a value of type `ty` from a slot written by generated code.
fn read_slot(slot: &u64, ty: ScalarType) -> Scalar {
    let p = slot as *const u64 as *const u8;
    // SAFETY: as in `write_slot`; generated code stores `bool`s as 0 or 1.
    unsafe {
        match ty {
            ScalarType::Bool => Scalar::Bool(p.read() != 0),
            ScalarType::I32 => Scalar::I32((p as *const i32).read()),
            ScalarType::I64 => Scalar::I64((p as *const i64).read()),
            ScalarType::U32 => Scalar::U32((p as *const u32).read()),
            ScalarType::U64 => Scalar::U64((p as *const u64).read()),
            ScalarType::F32 => Scalar::F32((p as *const f32).read()),
            ScalarType::F64 => Scalar::F64((p as *const f64).read()),
        }
    }
}

impl Code {
    fn error(&self, status: i32) -> RuntimeError {
        Site::error(&self.sites, status.max(0) as u32, &self.kernel)
    }

    /// Parameter types.
    pub fn params(&self) -> &[ScalarType] {
        &self.params
    }

    /// Result types.
    pub fn results(&self) -> &[ScalarType] {
        &self.results
    }

    /// Calls a [`Shape::Scalar`] entry.
    ///
    /// # Panics
    /// If the arguments' types are not the kernel's parameter types (a caller bug).
    pub fn call(&self, args: &[Scalar]) -> Result<Vec<Scalar>, RuntimeError> {
        assert!(
            args.len() == self.params.len()
                && args.iter().zip(&self.params).all(|(a, &t)| a.ty() == t),
            "`{}` called with the wrong argument types",
            self.kernel
        );
        let mut slots = vec![0u64; args.len()];
        for (slot, &a) in slots.iter_mut().zip(args) {
            write_slot(slot, a);
        }
        let mut out = vec![0u64; self.results.len().max(1)];
        // SAFETY: `ptr` is a scalar entry (only `scalar` builds `Code` for that shape) for
        // these parameter types; it reads `args.len()` slots and writes `results.len()`.
        let status = unsafe {
            let f: ScalarEntry = std::mem::transmute(self.ptr);
            f(slots.as_ptr(), out.as_mut_ptr())
        };
        if status != 0 {
            return Err(self.error(status));
        }
        Ok(self
            .results
            .iter()
            .zip(&out)
            .map(|(&t, s)| read_slot(s, t))
            .collect())
    }

    /// Runs a [`Shape::Loop`] entry over `n` elements. On failure, returns the index of the
    /// failing element (elements before it have been written) and the error.
    ///
    /// # Safety
    /// `ptrs` and `strides` hold one entry per parameter then per result; for each operand,
    /// `ptrs[j] + i * strides[j]` for `i < n` must be valid, aligned, and of the operand's
    /// type, readable for inputs and writable (and not read by anyone else meanwhile) for
    /// outputs. An output may be exactly an input (same pointer and stride). An input
    /// marked uniform in the entry's [`Shape::Loop`] is read once, at `ptrs[j]`, when `n > 0`.
    pub unsafe fn run_loop(
        &self,
        n: usize,
        ptrs: &[*mut u8],
        strides: &[isize],
    ) -> Result<(), (usize, RuntimeError)> {
        let ops = self.params.len() + self.results.len();
        assert!(ptrs.len() == ops && strides.len() == ops, "operand count");
        let mut err_index = 0i64;
        // SAFETY: `ptr` is a loop entry; the caller guarantees the operands.
        let status = unsafe {
            let f: LoopEntry = std::mem::transmute(self.ptr);
            f(n as i64, ptrs.as_ptr(), strides.as_ptr(), &mut err_index)
        };
        if status != 0 {
            return Err((err_index as usize, self.error(status)));
        }
        Ok(())
    }

    /// Runs a [`Shape::Reduce`] entry: folds `n` elements of the inputs into `acc`.
    ///
    /// # Safety
    /// As for [`Code::run_loop`], with inputs only.
    pub unsafe fn run_reduce(
        &self,
        acc: Scalar,
        n: usize,
        ptrs: &[*mut u8],
        strides: &[isize],
    ) -> Result<Scalar, (usize, RuntimeError)> {
        assert!(ptrs.len() == self.params.len() && strides.len() == ptrs.len());
        assert_eq!(acc.ty(), self.results[0], "accumulator type");
        let mut slot = 0u64;
        write_slot(&mut slot, acc);
        let mut err_index = 0i64;
        // SAFETY: `ptr` is a reduce entry; the caller guarantees the operands.
        let status = unsafe {
            let f: ReduceEntry = std::mem::transmute(self.ptr);
            f(
                n as i64,
                ptrs.as_ptr(),
                strides.as_ptr(),
                &mut slot,
                &mut err_index,
            )
        };
        if status != 0 {
            return Err((err_index as usize, self.error(status)));
        }
        Ok(read_slot(&slot, self.results[0]))
    }
}

/// Cranelift IR and machine code of one entry point, for `kiln emit clif|asm`.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// Cranelift IR of every function, entry first.
    pub clif: String,
    /// Disassembled machine code of every function, entry first.
    pub asm: String,
}

impl Cpu {
    /// The back end for the host CPU (features detected at run time).
    pub fn new() -> Result<Cpu, BackendError> {
        let isa = Self::isa("speed")?;
        // Library functions are straight-line code without loops: Cranelift's optimiser
        // gains nothing there, and its code measured slower (Black-Scholes at 1e6: 26 ms
        // with `speed`, 20 ms without), so they are compiled with `opt_level=none`.
        let isa_lib = Self::isa("none")?;
        let isa_key = {
            use std::hash::BuildHasher;
            let flags: Vec<String> = isa.isa_flags().iter().map(|v| v.to_string()).collect();
            rustc_hash::FxBuildHasher.hash_one((
                isa.triple().to_string(),
                isa.flags().to_string(),
                flags,
            ))
        };
        Ok(Cpu {
            isa,
            isa_lib,
            isa_key,
            cache: Mutex::new(HashMap::default()),
            simd: std::env::var_os("KILN_SIMD").is_none_or(|v| v != "0"),
        })
    }

    fn isa(opt_level: &str) -> Result<OwnedTargetIsa, BackendError> {
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| f.set(k, v).map_err(backend_err);
        set(&mut flags, "opt_level", opt_level)?;
        set(&mut flags, "is_pic", "false")?;
        set(&mut flags, "use_colocated_libcalls", "false")?;
        // The IR verifier costs about a quarter of compile time; tests run with it.
        let verify = if cfg!(debug_assertions) {
            "true"
        } else {
            "false"
        };
        set(&mut flags, "enable_verifier", verify)?;
        cranelift_native::builder()
            .map_err(|e| BackendError(format!("this host is not supported: {e}")))?
            .finish(settings::Flags::new(flags))
            .map_err(backend_err)
    }

    /// The target triple code is compiled for.
    pub fn target(&self) -> String {
        self.isa.triple().to_string()
    }

    /// The entry point of `shape` for kernel `id` of `m` (verified), compiled on first use
    /// and cached.
    pub fn compile(
        &self,
        m: &Module,
        id: KernelId,
        shape: Shape,
    ) -> Result<Arc<Code>, BackendError> {
        let key = key::encode(m, id, shape);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(code) = cache.get(&key) {
            return Ok(code.clone());
        }
        let (code, _) = self.build(m, id, shape, false, self.simd).or_else(|e| {
            // A vector operation this target's Cranelift cannot lower is a missing feature,
            // not a reason to fail: the scalar loop computes the same bits.
            if matches!(shape, Shape::Loop { .. }) {
                self.build(m, id, shape, false, false)
            } else {
                Err(e)
            }
        })?;
        let code = Arc::new(code);
        cache.insert(key, code.clone());
        Ok(code)
    }

    /// Compiles an entry point afresh (no cache) and returns its Cranelift IR and
    /// disassembly.
    pub fn listing(&self, m: &Module, id: KernelId, shape: Shape) -> Result<Listing, BackendError> {
        Ok(self.build(m, id, shape, true, self.simd)?.1)
    }

    /// Number of cached entry points.
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn build(
        &self,
        m: &Module,
        id: KernelId,
        shape: Shape,
        listing: bool,
        vectorize: bool,
    ) -> Result<(Code, Listing), BackendError> {
        let mut jit = new_jit(&self.isa);
        let mut out = Listing::default();
        let kernel = m.kernel(id);
        let (params, results) = match shape {
            Shape::Reduce { combine } => {
                let acc = m.kernel(combine).results.clone();
                let inputs = if id == combine {
                    acc.clone()
                } else {
                    kernel.params.clone()
                };
                (inputs, acc)
            }
            _ => (kernel.params.clone(), kernel.results.clone()),
        };
        let (entry, sites, libs) = {
            let mut unit = Unit::new(&mut jit, m);
            unit.vectorize = vectorize;
            unit.library = Some(self);
            let mut fctx = FunctionBuilderContext::new();
            let mut ctx = unit.jit.make_context();
            let ptr = unit.pointer();
            let mut sig = unit.jit.make_signature();
            let nparams = match shape {
                Shape::Scalar => 2,
                Shape::Loop { .. } => 4,
                Shape::Reduce { .. } => 5,
            };
            for i in 0..nparams {
                let ty = if i == 0 && shape != Shape::Scalar {
                    types::I64
                } else {
                    ptr
                };
                sig.params.push(AbiParam::new(ty));
            }
            sig.returns.push(AbiParam::new(types::I32));
            let entry = unit
                .jit
                .declare_anonymous_function(&sig)
                .map_err(backend_err)?;
            emit_function(
                &mut unit,
                &mut ctx,
                &mut fctx,
                entry,
                sig,
                listing,
                &mut out,
                |e| match shape {
                    Shape::Scalar => scalar_entry(e, id),
                    Shape::Loop { uniform } => loop_entry(e, id, uniform),
                    Shape::Reduce { combine } => reduce_entry(e, id, combine),
                },
            )?;
            define_pending(&mut unit, &mut ctx, &mut fctx, listing, &mut out)?;
            (entry, unit.sites.0, unit.libs)
        };
        jit.finalize_definitions().map_err(backend_err)?;
        let ptr = jit.get_finalized_function(entry);
        Ok((
            Code {
                _memory: CodeMemory(Some(jit)),
                _libs: libs,
                ptr,
                sites,
                kernel: kernel.name.clone(),
                params,
                results,
            },
            out,
        ))
    }
}

/// A math library function's machine code, shared by every module a [`Cpu`] compiles
/// (see `KernelKind::Library`): its scalar variant (the out-of-line body signature) or its
/// SIMD variant for groups of a given lane count.
pub struct LibFn {
    _memory: CodeMemory,
    _libs: Vec<Arc<LibFn>>,
    ptr: *const u8,
}

// SAFETY: as for `Code`: immutable code after finalisation.
unsafe impl Send for LibFn {}
// SAFETY: as above.
unsafe impl Sync for LibFn {}

impl Cpu {
    /// Library kernel `id`'s shared code (`lanes`: its SIMD variant), compiled on first use.
    pub(crate) fn library(
        &self,
        m: &Module,
        id: KernelId,
        lanes: Option<u8>,
    ) -> Result<Arc<LibFn>, BackendError> {
        type Cache = Mutex<HashMap<Vec<u64>, Arc<LibFn>, rustc_hash::FxBuildHasher>>;
        static LIBS: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
        let libs = LIBS.get_or_init(|| Mutex::new(HashMap::default()));
        let mut key = key::encode(m, id, Shape::Scalar);
        key.extend([self.isa_key, u64::from(lanes.unwrap_or(0))]);
        if let Some(f) = libs.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(f.clone());
        }
        // Built without the lock: it may need other library functions first.
        let f = Arc::new(self.build_library(m, id, lanes)?);
        let mut libs = libs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(libs.entry(key).or_insert(f).clone())
    }

    fn build_library(
        &self,
        m: &Module,
        id: KernelId,
        lanes: Option<u8>,
    ) -> Result<LibFn, BackendError> {
        let mut jit = new_jit(&self.isa_lib);
        let (f, libs) = {
            let mut unit = Unit::new(&mut jit, m);
            unit.library = Some(self);
            let mut fctx = FunctionBuilderContext::new();
            let mut ctx = unit.jit.make_context();
            let sig = match lanes {
                None => unit.body_signature(m.kernel(id)),
                Some(lanes) => simd::library_signature(&unit, m.kernel(id), lanes),
            };
            let f = unit
                .jit
                .declare_anonymous_function(&sig)
                .map_err(backend_err)?;
            let mut out = Listing::default();
            emit_function(
                &mut unit,
                &mut ctx,
                &mut fctx,
                f,
                sig,
                false,
                &mut out,
                |e| match lanes {
                    None => body_entry(e, id),
                    Some(lanes) => {
                        let sv = simd::Simd {
                            lanes,
                            fallback: e.trap,
                        };
                        sv.library_body(e, id)?;
                        return_site_on_trap(e);
                        Ok(())
                    }
                },
            )?;
            define_pending(&mut unit, &mut ctx, &mut fctx, false, &mut out)?;
            (f, unit.libs)
        };
        jit.finalize_definitions().map_err(backend_err)?;
        let ptr = jit.get_finalized_function(f);
        Ok(LibFn {
            _memory: CodeMemory(Some(jit)),
            _libs: libs,
            ptr,
        })
    }
}

/// A JIT module for `isa`, with Kiln's `libm` wrappers as its only symbols.
fn new_jit(isa: &OwnedTargetIsa) -> JITModule {
    let mut builder = JITBuilder::with_isa(isa.clone(), default_libcall_names());
    for (name, ptr) in math::symbols() {
        builder.symbol(name, ptr);
    }
    JITModule::new(builder)
}

/// Defines the out-of-line bodies of the kernels the unit's functions call (those the
/// optimiser left as calls), and theirs in turn.
fn define_pending(
    unit: &mut Unit,
    ctx: &mut cranelift_codegen::Context,
    fctx: &mut FunctionBuilderContext,
    listing: bool,
    out: &mut Listing,
) -> Result<(), BackendError> {
    while let Some(k) = unit.pending.pop() {
        let f = unit.bodies[&k];
        let sig = unit.body_signature(unit.ir.kernel(k));
        emit_function(unit, ctx, fctx, f, sig, listing, out, |e| body_entry(e, k))?;
    }
    Ok(())
}

/// Builds function `f` (declared with `sig`) with `emit`, compiles and defines it.
#[allow(clippy::too_many_arguments)]
fn emit_function(
    unit: &mut Unit,
    ctx: &mut cranelift_codegen::Context,
    fctx: &mut FunctionBuilderContext,
    f: FuncId,
    sig: cl::Signature,
    listing: bool,
    out: &mut Listing,
    emit: impl FnOnce(&mut Emitter) -> EmitResult,
) -> Result<(), BackendError> {
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, f.as_u32());
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
        let mut e = start_function(&mut b, unit);
        emit(&mut e).map_err(backend_err)?;
        b.seal_all_blocks();
        b.finalize(unit.jit.target_config());
    }
    define(unit, f, ctx, listing, out)
}

fn define(
    unit: &mut Unit,
    f: FuncId,
    ctx: &mut cranelift_codegen::Context,
    listing: bool,
    out: &mut Listing,
) -> Result<(), BackendError> {
    if listing {
        out.clif.push_str(&ctx.func.display().to_string());
        out.clif.push('\n');
        ctx.set_disasm(true);
    }
    unit.jit
        .define_function(f, ctx)
        .map_err(|e| BackendError(format!("{e:?}")))?;
    if listing {
        let code = ctx.compiled_code().expect("just compiled");
        let text = match unit.jit.isa().to_capstone() {
            Ok(cs) => code
                .disassemble(Some(&ctx.func.params), &cs)
                .unwrap_or_else(|e| format!("(disassembly failed: {e})\n")),
            Err(_) => code.vcode.clone().unwrap_or_default(),
        };
        out.asm
            .push_str(&format!("function u0:{}:\n{text}\n", f.as_u32()));
    }
    unit.jit.clear_context(ctx);
    Ok(())
}

/// Creates the entry block (with the function's parameters) and the trap block.
fn start_function<'a, 'b, 'm>(
    b: &'a mut FunctionBuilder<'b>,
    unit: &'a mut Unit<'m>,
) -> Emitter<'a, 'b, 'm> {
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    let trap = b.create_block();
    b.append_block_param(trap, types::I32);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    Emitter {
        b,
        unit,
        trap,
        params,
    }
}

type EmitResult = Result<(), cranelift_module::ModuleError>;

/// The trap block returns its site: used by scalar entries and out-of-line bodies.
fn return_site_on_trap(e: &mut Emitter) {
    let trap = e.trap;
    e.b.switch_to_block(trap);
    let site = e.b.block_params(trap)[0];
    e.b.ins().return_(&[site]);
}

fn entry_params(e: &Emitter) -> Vec<cl::Value> {
    e.params.clone()
}

fn scalar_entry(e: &mut Emitter, id: KernelId) -> EmitResult {
    let p = entry_params(e);
    let k = e.unit.ir.kernel(id);
    let (params, results) = (k.params.clone(), k.results.clone());
    let args: Vec<cl::Value> = params
        .iter()
        .enumerate()
        .map(|(i, &t)| e.b.ins().load(cl_type(t), mem(), p[0], 8 * i as i32))
        .collect();
    let rs = e.kernel(id, &args)?;
    for (i, r) in rs.into_iter().enumerate() {
        e.b.ins().store(mem(), r, p[1], 8 * i as i32);
    }
    let _ = results;
    let ok = e.status(0);
    e.b.ins().return_(&[ok]);
    return_site_on_trap(e);
    Ok(())
}

fn body_entry(e: &mut Emitter, id: KernelId) -> EmitResult {
    let p = entry_params(e);
    let n = e.unit.ir.kernel(id).params.len();
    let rs = e.kernel(id, &p[..n])?;
    for (i, r) in rs.into_iter().enumerate() {
        e.b.ins().store(mem(), r, p[n], 8 * i as i32);
    }
    let ok = e.status(0);
    e.b.ins().return_(&[ok]);
    return_site_on_trap(e);
    Ok(())
}

/// What a loop entry computes per element.
type Body<'x> = dyn FnMut(&mut Emitter, &[cl::Value], &Hoisted) -> ModResult<Vec<cl::Value>> + 'x;

type ModResult<T> = Result<T, cranelift_module::ModuleError>;

/// The operands of a loop entry and how they vary.
struct LoopOperands<'a> {
    inputs: &'a [ScalarType],
    outputs: &'a [ScalarType],
    /// Bit `j` set: input `j` is the same for every element (stride 0), so it is loaded once
    /// and what depends only on such inputs is computed once ([`Emitter::hoist`]).
    uniform: u64,
    /// The kernel whose invariant work is hoisted, if any.
    hoist: Option<KernelId>,
    /// The kernel and its SIMD plan, when the contiguous variant runs on vectors.
    vector: Option<(KernelId, simd::Plan)>,
}

impl LoopOperands<'_> {
    fn is_uniform(&self, j: usize) -> bool {
        j < self.inputs.len() && j < 64 && (self.uniform >> j) & 1 == 1
    }
}

/// The loop skeleton shared by ufunc and reduction entries: `for i in 0..n`, with a
/// contiguous variant (operands addressed by one offset per element size) when every
/// varying operand's stride equals its element size, and a strided variant (one pointer per
/// operand) otherwise. Uniform inputs are loaded once, before either. `body` gets the
/// inputs and returns the values to store into the outputs. On a trap, the trap block
/// stores `i` into `*err_index` and returns the site. Returns with the builder in the block
/// after the loop.
#[allow(clippy::too_many_arguments)]
fn emit_loop(
    e: &mut Emitter,
    ops_desc: &LoopOperands,
    n: cl::Value,
    ptrs: cl::Value,
    strides: cl::Value,
    err_index: cl::Value,
    contiguous_variant: bool,
    unroll: u32,
    body: &mut Body,
) -> EmitResult {
    let ptr_ty = e.unit.pointer();
    let ops: Vec<ScalarType> = ops_desc
        .inputs
        .iter()
        .chain(ops_desc.outputs)
        .copied()
        .collect();
    let bases: Vec<cl::Value> = (0..ops.len())
        .map(|j| e.b.ins().load(ptr_ty, mem(), ptrs, 8 * j as i32))
        .collect();
    let steps: Vec<cl::Value> = (0..ops.len())
        .map(|j| e.b.ins().load(ptr_ty, mem(), strides, 8 * j as i32))
        .collect();
    let varying: Vec<usize> = (0..ops.len())
        .filter(|&j| !ops_desc.is_uniform(j))
        .collect();
    let i_var = e.b.declare_var(types::I64);
    let zero = e.b.ins().iconst(types::I64, 0);
    e.b.def_var(i_var, zero);

    let done = e.b.create_block();
    let strided_pre = e.b.create_block();
    let strided = e.b.create_block();
    // The strided loop runs from the current `i` to `stop`: the whole range, or, after the
    // SIMD loop, the remainder or a group that must run on scalar code.
    let after_strided = e.b.create_block();
    let stop = e.b.declare_var(types::I64);
    e.b.def_var(stop, n);
    let any =
        e.b.ins()
            .icmp_imm_s(cl::condcodes::IntCC::SignedGreaterThan, n, 0);
    let choose = e.b.create_block();
    e.b.ins().brif(any, choose, &[], done, &[]);
    e.b.switch_to_block(choose);

    // Preheader (only reached when n > 0, so uniform operands are valid to read).
    let uniform_vals: Vec<Option<cl::Value>> = ops_desc
        .inputs
        .iter()
        .enumerate()
        .map(|(j, &t)| {
            ops_desc
                .is_uniform(j)
                .then(|| e.b.ins().load(cl_type(t), mem(), bases[j], 0))
        })
        .collect();
    let hoisted = match ops_desc.hoist {
        Some(k) => e.hoist(k, &uniform_vals)?,
        None => Hoisted::default(),
    };

    // Contiguous variant: one byte offset per distinct element size.
    let mut sizes: Vec<u32> = varying.iter().map(|&j| byte_size(ops[j])).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let off_vars: Vec<(u32, Variable)> = sizes
        .iter()
        .map(|&s| (s, e.b.declare_var(ptr_ty)))
        .collect();
    if contiguous_variant {
        let unrolled_check = e.b.create_block();
        let unrolled = e.b.create_block();
        let rest_check = e.b.create_block();
        let contiguous_block = e.b.create_block();
        let mut all = e.b.ins().iconst(types::I8, 1);
        for &j in &varying {
            let is = e.b.ins().icmp_imm_s(
                cl::condcodes::IntCC::Equal,
                steps[j],
                byte_size(ops[j]) as i64,
            );
            all = e.b.ins().band(all, is);
        }
        for &(_, v) in &off_vars {
            let z = e.b.ins().iconst(ptr_ty, 0);
            e.b.def_var(v, z);
        }
        if let Some((id, plan)) = ops_desc.vector {
            let ctx = LoopCtx {
                ops: &ops,
                desc: ops_desc,
                n,
                i_var,
                off_vars: &off_vars,
                bases: &bases,
                uniform_vals: &uniform_vals,
                hoisted: &hoisted,
                stop,
                strided_pre,
            };
            let vec_check = vector_contiguous(e, &ctx, id, plan, all)?;
            e.b.switch_to_block(after_strided);
            let i = e.b.use_var(i_var);
            // Back to the vector loop after a group ran on scalar code: its offsets follow.
            for &(size, var) in &off_vars {
                let off = e.b.ins().imul_imm_s(i, i64::from(size));
                e.b.def_var(var, off);
            }
            let more = e.b.ins().icmp(cl::condcodes::IntCC::SignedLessThan, i, n);
            e.b.ins().brif(more, vec_check, &[], done, &[]);
        } else {
            e.b.ins().brif(all, unrolled_check, &[], strided_pre, &[]);
            // The address of every varying operand at element `i + k`.
            let addrs_at = |e: &mut Emitter, k: u32| -> Vec<Option<cl::Value>> {
                (0..ops.len())
                    .map(|j| {
                        if ops_desc.is_uniform(j) {
                            return None;
                        }
                        let size = byte_size(ops[j]);
                        let var = off_vars
                            .iter()
                            .find(|(s, _)| *s == size)
                            .expect("every varying size has an offset")
                            .1;
                        let off = e.b.use_var(var);
                        let addr = e.b.ins().iadd(bases[j], off);
                        Some(if k == 0 {
                            addr
                        } else {
                            e.b.ins().iadd_imm_s(addr, i64::from(k * size))
                        })
                    })
                    .collect()
            };
            let advance = |e: &mut Emitter, k: u32| {
                for &(s, v) in &off_vars {
                    let off = e.b.use_var(v);
                    let next = e.b.ins().iadd_imm_s(off, i64::from(k * s));
                    e.b.def_var(v, next);
                }
                let i = e.b.use_var(i_var);
                let next = e.b.ins().iadd_imm_s(i, i64::from(k));
                e.b.def_var(i_var, next);
                next
            };
            // `unroll` elements per iteration while that many remain (the loop overhead is then
            // paid once per group), then one at a time.
            e.b.switch_to_block(unrolled_check);
            if unroll > 1 {
                let i = e.b.use_var(i_var);
                let group_end = e.b.ins().iadd_imm_s(i, i64::from(unroll));
                let fits =
                    e.b.ins()
                        .icmp(cl::condcodes::IntCC::SignedLessThanOrEqual, group_end, n);
                e.b.ins().brif(fits, unrolled, &[], rest_check, &[]);
                e.b.switch_to_block(unrolled);
                let i0 = e.b.use_var(i_var);
                for k in 0..unroll {
                    // The trap block reports `i`: the index of the element being computed.
                    let ik = e.b.ins().iadd_imm_s(i0, i64::from(k));
                    e.b.def_var(i_var, ik);
                    let addrs = addrs_at(e, k);
                    loop_body(e, ops_desc.inputs, &addrs, &uniform_vals, &hoisted, body)?;
                }
                e.b.def_var(i_var, i0);
                advance(e, unroll);
                e.b.ins().jump(unrolled_check, &[]);
            } else {
                e.b.ins().jump(rest_check, &[]);
            }
            e.b.switch_to_block(rest_check);
            let i = e.b.use_var(i_var);
            let more = e.b.ins().icmp(cl::condcodes::IntCC::SignedLessThan, i, n);
            e.b.ins().brif(more, contiguous_block, &[], done, &[]);
            e.b.switch_to_block(contiguous_block);
            let addrs = addrs_at(e, 0);
            loop_body(e, ops_desc.inputs, &addrs, &uniform_vals, &hoisted, body)?;
            let i1 = advance(e, 1);
            let more = e.b.ins().icmp(cl::condcodes::IntCC::SignedLessThan, i1, n);
            e.b.ins().brif(more, contiguous_block, &[], done, &[]);
        }
    } else {
        e.b.ins().jump(strided_pre, &[]);
    }

    // Strided variant: one pointer per varying operand, bumped by its stride.
    e.b.switch_to_block(strided_pre);
    let i0 = e.b.use_var(i_var);
    let p_vars: Vec<Option<Variable>> = (0..ops.len())
        .map(|j| {
            (!ops_desc.is_uniform(j)).then(|| {
                let v = e.b.declare_var(ptr_ty);
                let off = e.b.ins().imul(i0, steps[j]);
                let p = e.b.ins().iadd(bases[j], off);
                e.b.def_var(v, p);
                v
            })
        })
        .collect();
    let s = e.b.use_var(stop);
    let any = e.b.ins().icmp(cl::condcodes::IntCC::SignedLessThan, i0, s);
    e.b.ins().brif(any, strided, &[], after_strided, &[]);
    e.b.switch_to_block(strided);
    let addrs: Vec<Option<cl::Value>> = p_vars.iter().map(|v| v.map(|v| e.b.use_var(v))).collect();
    loop_body(e, ops_desc.inputs, &addrs, &uniform_vals, &hoisted, body)?;
    for (j, v) in p_vars.iter().enumerate() {
        if let Some(v) = *v {
            let p = e.b.use_var(v);
            let next = e.b.ins().iadd(p, steps[j]);
            e.b.def_var(v, next);
        }
    }
    let i = e.b.use_var(i_var);
    let i1 = e.b.ins().iadd_imm_s(i, 1);
    e.b.def_var(i_var, i1);
    let s = e.b.use_var(stop);
    let more = e.b.ins().icmp(cl::condcodes::IntCC::SignedLessThan, i1, s);
    e.b.ins().brif(more, strided, &[], after_strided, &[]);
    if ops_desc.vector.is_none() || !contiguous_variant {
        e.b.switch_to_block(after_strided);
        e.b.ins().jump(done, &[]);
    }

    // Trap: record the element index, return the site.
    let trap = e.trap;
    e.b.switch_to_block(trap);
    let site = e.b.block_params(trap)[0];
    let i = e.b.use_var(i_var);
    e.b.ins().store(mem(), i, err_index, 0);
    e.b.ins().return_(&[site]);

    e.b.switch_to_block(done);
    Ok(())
}

/// Loads the varying inputs at `addrs` (uniform ones are already loaded), runs `body`,
/// stores its values at the output addresses.
/// What the contiguous vector loop needs from [`emit_loop`]'s preheader.
struct LoopCtx<'a> {
    ops: &'a [ScalarType],
    desc: &'a LoopOperands<'a>,
    n: cl::Value,
    i_var: Variable,
    off_vars: &'a [(u32, Variable)],
    bases: &'a [cl::Value],
    uniform_vals: &'a [Option<cl::Value>],
    hoisted: &'a Hoisted,
    /// Where the strided loop stops (see [`emit_loop`]).
    stop: Variable,
    /// The strided loop's entry: from the current index to `stop`.
    strided_pre: cl::Block,
}

impl LoopCtx<'_> {
    /// The address of every varying operand at the current offsets (`None`: uniform).
    fn addrs(&self, e: &mut Emitter) -> Vec<Option<cl::Value>> {
        (0..self.ops.len())
            .map(|j| {
                if self.desc.is_uniform(j) {
                    return None;
                }
                let size = byte_size(self.ops[j]);
                let var = self
                    .off_vars
                    .iter()
                    .find(|(s, _)| *s == size)
                    .expect("every varying size has an offset")
                    .1;
                let off = e.b.use_var(var);
                Some(e.b.ins().iadd(self.bases[j], off))
            })
            .collect()
    }

    /// Moves every offset and the index `k` elements on.
    fn advance(&self, e: &mut Emitter, k: u32) {
        for &(s, v) in self.off_vars {
            let off = e.b.use_var(v);
            let next = e.b.ins().iadd_imm_s(off, i64::from(k * s));
            e.b.def_var(v, next);
        }
        let i = e.b.use_var(self.i_var);
        let next = e.b.ins().iadd_imm_s(i, i64::from(k));
        e.b.def_var(self.i_var, next);
    }
}

/// The contiguous loop on vectors: groups of `plan.lanes * U` elements while a whole group
/// remains; the remainder, and a group whose vector code cannot finish (a failing assert in
/// some lane), run on the strided scalar loop, which reports the first failing element
/// exactly; after such a group the vector loop resumes. Emitted in the preheader, which it
/// ends by branching on `contiguous` to the vector loop or the strided one. Returns the
/// loop's head.
fn vector_contiguous(
    e: &mut Emitter,
    cx: &LoopCtx,
    id: KernelId,
    plan: simd::Plan,
    contiguous: cl::Value,
) -> ModResult<cl::Block> {
    let fallback = e.b.create_block();
    let sv = simd::Simd {
        lanes: plan.lanes,
        fallback,
    };
    let lanes = sv.group();
    let k = e.unit.ir.kernel(id);
    let (inputs, outputs) = (k.params.clone(), k.results.clone());
    // Broadcast scalars and hoisted values are splat once, here in the preheader.
    let uniform: Vec<Option<[cl::Value; simd::U]>> = cx
        .uniform_vals
        .iter()
        .zip(&inputs)
        .map(|(u, &t)| u.map(|x| sv.splat(e, x, t)))
        .collect();
    let mut hoisted: Vec<(kiln_ir::Value, cl::Value)> =
        cx.hoisted.0.iter().map(|(&v, &x)| (v, x)).collect();
    hoisted.sort_by_key(|(v, _)| v.0);
    let pre: HashMap<kiln_ir::Value, [cl::Value; simd::U]> = hoisted
        .into_iter()
        .map(|(v, x)| {
            let t = e.unit.ir.kernel(id).value_type(v);
            (v, sv.splat(e, x, t))
        })
        .collect();
    let (vec_check, vec_body, to_rest) =
        (e.b.create_block(), e.b.create_block(), e.b.create_block());
    // The splats above dominate every way into the vector loop, including the return from
    // the strided loop.
    e.b.ins()
        .brif(contiguous, vec_check, &[], cx.strided_pre, &[]);

    e.b.switch_to_block(vec_check);
    let i = e.b.use_var(cx.i_var);
    let end = e.b.ins().iadd_imm_s(i, i64::from(lanes));
    let fits =
        e.b.ins()
            .icmp(cl::condcodes::IntCC::SignedLessThanOrEqual, end, cx.n);
    e.b.ins().brif(fits, vec_body, &[], to_rest, &[]);

    e.b.switch_to_block(vec_body);
    let addrs = cx.addrs(e);
    let args: Vec<[cl::Value; simd::U]> = inputs
        .iter()
        .enumerate()
        .map(|(j, &t)| match (uniform[j], addrs[j]) {
            (Some(v), _) => v,
            (None, Some(a)) => sv.load(e, t, a),
            (None, None) => unreachable!("an input is uniform or has an address"),
        })
        .collect();
    let outs = sv.kernel(e, id, &args, None, &pre)?;
    for ((v, a), &t) in outs.into_iter().zip(&addrs[inputs.len()..]).zip(&outputs) {
        sv.store(e, t, v, a.expect("outputs always vary"));
    }
    cx.advance(e, lanes);
    e.b.ins().jump(vec_check, &[]);

    e.b.switch_to_block(fallback);
    let i = e.b.use_var(cx.i_var);
    let group_end = e.b.ins().iadd_imm_s(i, i64::from(lanes));
    e.b.def_var(cx.stop, group_end);
    e.b.ins().jump(cx.strided_pre, &[]);

    e.b.switch_to_block(to_rest);
    e.b.def_var(cx.stop, cx.n);
    e.b.ins().jump(cx.strided_pre, &[]);
    Ok(vec_check)
}

fn loop_body(
    e: &mut Emitter,
    inputs: &[ScalarType],
    addrs: &[Option<cl::Value>],
    uniform_vals: &[Option<cl::Value>],
    hoisted: &Hoisted,
    body: &mut Body,
) -> EmitResult {
    let args: Vec<cl::Value> = inputs
        .iter()
        .enumerate()
        .map(|(j, &t)| match (uniform_vals[j], addrs[j]) {
            (Some(v), _) => v,
            (None, Some(a)) => e.b.ins().load(cl_type(t), mem(), a, 0),
            (None, None) => unreachable!("an input is uniform or has an address"),
        })
        .collect();
    let outs = body(e, &args, hoisted)?;
    for (v, a) in outs.into_iter().zip(&addrs[inputs.len()..]) {
        let a = a.expect("outputs always vary");
        e.b.ins().store(mem(), v, a, 0);
    }
    Ok(())
}

/// Elements per iteration of the unrolled contiguous loop.
const UNROLL: u32 = 4;

/// Kernels whose loops get the unrolled contiguous variant: no calls (math or kernel) and at
/// most this many instructions.
const CHEAP_INSTS: usize = 48;

fn is_cheap(k: &kiln_ir::Kernel) -> bool {
    k.inst_count() <= CHEAP_INSTS
        && k.layout.iter().all(|&b| {
            k.block(b).insts.iter().all(|&i| match &k.inst(i).kind {
                kiln_ir::InstKind::Call(..) => false,
                kiln_ir::InstKind::Unary(op, x) => {
                    math::unary_symbol(*op, k.value_type(*x)).is_none()
                }
                kiln_ir::InstKind::Binary(op, a, _) => {
                    math::binary_symbol(*op, k.value_type(*a)).is_none()
                }
                _ => true,
            })
        })
}

fn loop_entry(e: &mut Emitter, id: KernelId, uniform: u64) -> EmitResult {
    let p = entry_params(e);
    let k = e.unit.ir.kernel(id);
    let (inputs, outputs) = (k.params.clone(), k.results.clone());
    let vector = e
        .unit
        .vectorize
        .then(|| simd::plan(e.unit.ir, id))
        .flatten();
    let ops = LoopOperands {
        inputs: &inputs,
        outputs: &outputs,
        uniform,
        hoist: Some(id),
        vector: vector.map(|p| (id, p)),
    };
    // A cheap body (no calls, few instructions) gets the contiguous variant, unrolled; an
    // expensive one only the strided loop, whose addressing costs little beside the body
    // (and which halves the code Cranelift compiles).
    let cheap = is_cheap(e.unit.ir.kernel(id));
    emit_loop(
        e,
        &ops,
        p[0],
        p[1],
        p[2],
        p[3],
        cheap || vector.is_some(),
        UNROLL,
        &mut |e, args, pre| e.kernel_with(id, args, pre),
    )?;
    let ok = e.status(0);
    e.b.ins().return_(&[ok]);
    Ok(())
}

/// `map` is applied to the inputs (unless it is the combine itself, which means "no map":
/// one input reduced as is), then folded into the accumulator with `combine`.
fn reduce_entry(e: &mut Emitter, map: KernelId, combine: KernelId) -> EmitResult {
    if kiln_ir::commutative_combine(e.unit.ir.kernel(combine)).is_some() {
        return reduce_by_lanes(e, map, combine);
    }
    let p = entry_params(e);
    let acc_ty = e.unit.ir.kernel(combine).results[0];
    let inputs = if map == combine {
        vec![acc_ty]
    } else {
        e.unit.ir.kernel(map).params.clone()
    };
    let acc_var = e.b.declare_var(cl_type(acc_ty));
    let acc0 = e.b.ins().load(cl_type(acc_ty), mem(), p[3], 0);
    e.b.def_var(acc_var, acc0);
    let ops = LoopOperands {
        inputs: &inputs,
        outputs: &[],
        uniform: 0,
        hoist: None,
        vector: None,
    };
    emit_loop(
        e,
        &ops,
        p[0],
        p[1],
        p[2],
        p[4],
        false,
        1,
        &mut |e, args, _| {
            let x = if map == combine {
                args[0]
            } else {
                e.kernel(map, args)?[0]
            };
            let acc = e.b.use_var(acc_var);
            let next = e.kernel(combine, &[acc, x])?[0];
            e.b.def_var(acc_var, next);
            Ok(vec![])
        },
    )?;
    let acc = e.b.use_var(acc_var);
    e.b.ins().store(mem(), acc, p[3], 0);
    let ok = e.status(0);
    e.b.ins().return_(&[ok]);
    Ok(())
}

/// Whether kernel `id` (or anything it calls) has an `assert`: a map that can fail keeps
/// the scalar code, which reports the failing element.
fn can_fail(m: &Module, id: KernelId) -> bool {
    let k = m.kernel(id);
    k.layout.iter().any(|&b| {
        k.block(b).insts.iter().any(|&i| match &k.inst(i).kind {
            kiln_ir::InstKind::Assert(_) => true,
            kiln_ir::InstKind::Binary(op, a, _) => op.can_trap() && k.value_type(*a).is_int(),
            kiln_ir::InstKind::Call(c, _) => can_fail(m, *c),
            _ => false,
        })
    })
}

/// A reduction loop whose combine is commutative, in the order of `kiln_ir::reduce`: runs
/// shorter than `REDUCE_LANES` fold in turn; longer ones fold element `i` into lane
/// `i mod REDUCE_LANES`, then the lanes in a fixed tree, then into the accumulator. The lanes
/// are SIMD registers when the inputs are contiguous (and the map cannot fail), scalars
/// otherwise; both compute the same operations in the same order.
fn reduce_by_lanes(e: &mut Emitter, map: KernelId, combine: KernelId) -> EmitResult {
    const R: usize = kiln_ir::REDUCE_LANES;
    let p = entry_params(e);
    let (n, ptrs, strides, accp, err) = (p[0], p[1], p[2], p[3], p[4]);
    let m = e.unit.ir;
    let acc_ty = m.kernel(combine).results[0];
    let has_map = map != combine;
    let inputs: Vec<ScalarType> = if has_map {
        m.kernel(map).params.clone()
    } else {
        vec![acc_ty]
    };
    let ptr_ty = e.unit.pointer();
    let bases: Vec<cl::Value> = (0..inputs.len())
        .map(|j| e.b.ins().load(ptr_ty, mem(), ptrs, 8 * j as i32))
        .collect();
    let steps: Vec<cl::Value> = (0..inputs.len())
        .map(|j| e.b.ins().load(ptr_ty, mem(), strides, 8 * j as i32))
        .collect();
    let i_var = e.b.declare_var(types::I64);
    let zero = e.b.ins().iconst(types::I64, 0);
    e.b.def_var(i_var, zero);
    let cty = cl_type(acc_ty);
    let acc0 = e.b.ins().load(cty, mem(), accp, 0);

    // Element `i` (after the map), scalar; `i` is recorded for the trap handler.
    let element = |e: &mut Emitter, i: cl::Value| -> ModResult<cl::Value> {
        e.b.def_var(i_var, i);
        let args: Vec<cl::Value> = inputs
            .iter()
            .enumerate()
            .map(|(j, &t)| {
                let off = e.b.ins().imul(i, steps[j]);
                let addr = e.b.ins().iadd(bases[j], off);
                e.b.ins().load(cl_type(t), mem(), addr, 0)
            })
            .collect();
        Ok(if has_map {
            e.kernel(map, &args)?[0]
        } else {
            args[0]
        })
    };
    let comb = |e: &mut Emitter, a: cl::Value, b: cl::Value| -> ModResult<cl::Value> {
        Ok(e.kernel(combine, &[a, b])?[0])
    };

    let (seq, seq_loop, lanes_blk, finish) = (
        e.b.create_block(),
        e.b.create_block(),
        e.b.create_block(),
        e.b.create_block(),
    );
    e.b.append_block_param(finish, cty);
    let big =
        e.b.ins()
            .icmp_imm_s(cl::condcodes::IntCC::SignedGreaterThanOrEqual, n, R as i64);
    e.b.ins().brif(big, lanes_blk, &[], seq, &[]);

    // Short runs: in turn.
    e.b.switch_to_block(seq);
    let acc_var = e.b.declare_var(cty);
    e.b.def_var(acc_var, acc0);
    let any =
        e.b.ins()
            .icmp_imm_s(cl::condcodes::IntCC::SignedGreaterThan, n, 0);
    let seq_done = e.b.create_block();
    e.b.ins().brif(any, seq_loop, &[], seq_done, &[]);
    e.b.switch_to_block(seq_loop);
    let i = e.b.use_var(i_var);
    let x = element(e, i)?;
    let acc = e.b.use_var(acc_var);
    let acc = comb(e, acc, x)?;
    e.b.def_var(acc_var, acc);
    let i = e.b.use_var(i_var);
    let i1 = e.b.ins().iadd_imm_s(i, 1);
    e.b.def_var(i_var, i1);
    let more = e.b.ins().icmp(cl::condcodes::IntCC::SignedLessThan, i1, n);
    e.b.ins().brif(more, seq_loop, &[], seq_done, &[]);
    e.b.switch_to_block(seq_done);
    let acc = e.b.use_var(acc_var);
    e.b.ins().jump(finish, &[BlockArg::Value(acc)]);

    // Long runs: by lanes.
    e.b.switch_to_block(lanes_blk);
    let lane: Vec<Variable> = (0..R).map(|_| e.b.declare_var(cty)).collect();
    let tail = e.b.create_block();
    let scalar_lanes = e.b.create_block();
    let vector = {
        let plan = |id| simd::plan(m, id);
        match (
            plan(combine),
            if has_map { plan(map) } else { plan(combine) },
        ) {
            (Some(a), Some(b)) if !(has_map && can_fail(m, map)) => Some(a.lanes.min(b.lanes)),
            _ => None,
        }
    };
    if let Some(lanes) = vector {
        let vec_blk = e.b.create_block();
        let mut all = e.b.ins().iconst(types::I8, 1);
        for (j, &t) in inputs.iter().enumerate() {
            let is =
                e.b.ins()
                    .icmp_imm_s(cl::condcodes::IntCC::Equal, steps[j], byte_size(t) as i64);
            all = e.b.ins().band(all, is);
        }
        e.b.ins().brif(all, vec_blk, &[], scalar_lanes, &[]);
        e.b.switch_to_block(vec_blk);
        let unreachable = e.b.create_block();
        let sv = simd::Simd {
            lanes,
            fallback: unreachable,
        };
        let group = sv.group() as usize;
        let groups = R / group;
        // The 8 elements from `i` on, as `groups` SIMD groups, mapped.
        let load8 = |e: &mut Emitter, i: cl::Value| -> ModResult<Vec<[cl::Value; simd::U]>> {
            let mut out = Vec::with_capacity(groups);
            for g in 0..groups {
                let args: Vec<[cl::Value; simd::U]> = inputs
                    .iter()
                    .enumerate()
                    .map(|(j, &t)| {
                        let first = e.b.ins().iadd_imm_s(i, (g * group) as i64);
                        let off = e.b.ins().imul(first, steps[j]);
                        let addr = e.b.ins().iadd(bases[j], off);
                        sv.load(e, t, addr)
                    })
                    .collect();
                out.push(if has_map {
                    sv.kernel(e, map, &args, None, &HashMap::new())?[0]
                } else {
                    args[0]
                });
            }
            Ok(out)
        };
        let acc_vars: Vec<[Variable; simd::U]> = (0..groups)
            .map(|_| std::array::from_fn(|_| e.b.declare_var(sv.vtype(acc_ty))))
            .collect();
        let first = load8(e, zero)?;
        for (vars, x) in acc_vars.iter().zip(first) {
            for r in 0..simd::U {
                e.b.def_var(vars[r], x[r]);
            }
        }
        let r8 = e.b.ins().iconst(types::I64, R as i64);
        e.b.def_var(i_var, r8);
        let (check, body, out) = (e.b.create_block(), e.b.create_block(), e.b.create_block());
        e.b.ins().jump(check, &[]);
        e.b.switch_to_block(check);
        let i = e.b.use_var(i_var);
        let end = e.b.ins().iadd_imm_s(i, R as i64);
        let fits =
            e.b.ins()
                .icmp(cl::condcodes::IntCC::SignedLessThanOrEqual, end, n);
        e.b.ins().brif(fits, body, &[], out, &[]);
        e.b.switch_to_block(body);
        let i = e.b.use_var(i_var);
        let xs = load8(e, i)?;
        for (vars, x) in acc_vars.iter().zip(xs) {
            let a: [cl::Value; simd::U] = std::array::from_fn(|r| e.b.use_var(vars[r]));
            let c = sv.kernel(e, combine, &[a, x], None, &HashMap::new())?[0];
            for r in 0..simd::U {
                e.b.def_var(vars[r], c[r]);
            }
        }
        let i = e.b.use_var(i_var);
        let next = e.b.ins().iadd_imm_s(i, R as i64);
        e.b.def_var(i_var, next);
        e.b.ins().jump(check, &[]);
        e.b.switch_to_block(out);
        // Lanes in element order: group, register, lane.
        let per_reg = usize::from(lanes);
        for (g, vars) in acc_vars.iter().enumerate() {
            for (r, &var) in vars.iter().enumerate() {
                let v = e.b.use_var(var);
                for l in 0..per_reg {
                    let x = e.b.ins().extractlane(v, l as u8);
                    e.b.def_var(lane[g * group + r * per_reg + l], x);
                }
            }
        }
        e.b.ins().jump(tail, &[]);
        e.b.switch_to_block(unreachable);
        let one = e.status(1);
        e.b.ins().return_(&[one]);
    } else {
        e.b.ins().jump(scalar_lanes, &[]);
    }

    // Scalar lanes (any strides).
    e.b.switch_to_block(scalar_lanes);
    for (j, &var) in lane.iter().enumerate() {
        let i = e.b.ins().iconst(types::I64, j as i64);
        let x = element(e, i)?;
        e.b.def_var(var, x);
    }
    let r8 = e.b.ins().iconst(types::I64, R as i64);
    e.b.def_var(i_var, r8);
    let (check, body) = (e.b.create_block(), e.b.create_block());
    e.b.ins().jump(check, &[]);
    e.b.switch_to_block(check);
    let i = e.b.use_var(i_var);
    let end = e.b.ins().iadd_imm_s(i, R as i64);
    let fits =
        e.b.ins()
            .icmp(cl::condcodes::IntCC::SignedLessThanOrEqual, end, n);
    e.b.ins().brif(fits, body, &[], tail, &[]);
    e.b.switch_to_block(body);
    let i0 = e.b.use_var(i_var);
    for (j, &var) in lane.iter().enumerate() {
        let i = e.b.ins().iadd_imm_s(i0, j as i64);
        let x = element(e, i)?;
        let a = e.b.use_var(var);
        let c = comb(e, a, x)?;
        e.b.def_var(var, c);
    }
    let next = e.b.ins().iadd_imm_s(i0, R as i64);
    e.b.def_var(i_var, next);
    e.b.ins().jump(check, &[]);

    // The last `n mod R` elements, into lanes 0, 1, …; then the tree.
    e.b.switch_to_block(tail);
    let start = e.b.use_var(i_var);
    for (j, &var) in lane.iter().enumerate().take(R - 1) {
        let (take, next) = (e.b.create_block(), e.b.create_block());
        let i = e.b.ins().iadd_imm_s(start, j as i64);
        let within = e.b.ins().icmp(cl::condcodes::IntCC::SignedLessThan, i, n);
        e.b.ins().brif(within, take, &[], next, &[]);
        e.b.switch_to_block(take);
        let x = element(e, i)?;
        let a = e.b.use_var(var);
        let c = comb(e, a, x)?;
        e.b.def_var(var, c);
        e.b.ins().jump(next, &[]);
        e.b.switch_to_block(next);
    }
    let l: Vec<cl::Value> = lane.iter().map(|&v| e.b.use_var(v)).collect();
    let t01 = comb(e, l[0], l[1])?;
    let t23 = comb(e, l[2], l[3])?;
    let t45 = comb(e, l[4], l[5])?;
    let t67 = comb(e, l[6], l[7])?;
    let left = comb(e, t01, t23)?;
    let right = comb(e, t45, t67)?;
    let total = comb(e, left, right)?;
    let acc = comb(e, acc0, total)?;
    e.b.ins().jump(finish, &[BlockArg::Value(acc)]);

    e.b.switch_to_block(finish);
    let acc = e.b.block_params(finish)[0];
    e.b.ins().store(mem(), acc, accp, 0);
    let ok = e.status(0);
    e.b.ins().return_(&[ok]);

    let trap = e.trap;
    e.b.switch_to_block(trap);
    let site = e.b.block_params(trap)[0];
    let i = e.b.use_var(i_var);
    e.b.ins().store(mem(), i, err, 0);
    e.b.ins().return_(&[site]);
    Ok(())
}

#[cfg(test)]
mod tests;
