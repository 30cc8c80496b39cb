//! `kiln-runtime`: what runs compiled kernels.
//!
//! - [`Executor`]: something that runs kernels of a verified module — the reference
//!   [`Interpreter`] or the Cranelift JIT ([`Cpu`]) — one call at a time ([`Executor::call`])
//!   or as NumPy-style inner loops over raw operands ([`Executor::inner_loop`],
//!   [`Executor::reduce_loop`]). Every test written against `Executor` runs on every back end.
//! - [`map`] applies a ufunc over [`ndarray`] arrays and scalars with NumPy broadcasting,
//!   strided and in parallel; [`reduce_all`] and [`reduce_axis`] run reductions whose result
//!   does not depend on the number of threads. Dtypes are dynamic ([`DynArray`]) or typed
//!   ([`Element`]).
#![warn(missing_docs)]
#![allow(unsafe_code)] // Operands are raw pointers into ndarray arrays, as NumPy's inner loops.

pub mod array;
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(feature = "gpu")]
pub mod llvm_host;
mod par;
pub mod progress;

use std::sync::Arc;

pub use array::{vec_with_huge_pages, Arg, DynArray, DynView, DynViewMut, Element};
use kiln_interp::{ErrorKind, Fuel, RuntimeError};
use kiln_ir::{KernelId, Module, Scalar, ScalarType};
pub use par::{
    broadcast_shapes, map, map_with, reduce_all, reduce_axis, Error, LoopSource, Threads,
    MAX_THREADS, REDUCE_BLOCK,
};

/// A ufunc's inner loop over raw operands (NumPy's model).
pub trait InnerLoop: Send + Sync {
    /// Applies the kernel to `n` elements: operand `j` (inputs then outputs) is at
    /// `ptrs[j] + i * strides[j]` (bytes). On failure, the index of the failing element.
    ///
    /// # Safety
    /// Every operand address for `i < n` is valid, aligned and of the operand's dtype;
    /// outputs are writable and not accessed by anyone else meanwhile, except that an
    /// output may be exactly an input.
    unsafe fn run(
        &self,
        n: usize,
        ptrs: &[*mut u8],
        strides: &[isize],
    ) -> Result<(), (usize, RuntimeError)>;
}

/// A reduction's inner loop: folds elements into an accumulator.
pub trait ReduceLoop: Send + Sync {
    /// Folds `n` elements (after the optional map) into `acc`.
    ///
    /// # Safety
    /// As for [`InnerLoop::run`], with inputs only.
    unsafe fn run(
        &self,
        acc: Scalar,
        n: usize,
        ptrs: &[*mut u8],
        strides: &[isize],
    ) -> Result<Scalar, (usize, RuntimeError)>;
}

/// Something that can run kernels of a verified module.
pub trait Executor: Send + Sync {
    /// A short name for reports (`interp`, `cpu`, `gpu`).
    fn name(&self) -> &str;

    /// Whether this executor wants optimised IR (back ends) or the IR as lowered (the
    /// interpreter, when it checks the optimiser).
    fn wants_optimized(&self) -> bool;

    /// Calls kernel `id` of `m` with `args`; `m` must have passed `kiln_ir::verify`.
    fn call(&self, m: &Module, id: KernelId, args: &[Scalar]) -> Result<Vec<Scalar>, RuntimeError>;

    /// The inner loop of kernel `id` (a ufunc or any kernel with scalar parameters). Bit `j`
    /// of `uniform` promises that input `j` has stride 0 in every call of the loop (a
    /// broadcast scalar), which a back end may read once and hoist work out of the loop for.
    fn inner_loop<'m>(
        &'m self,
        m: &'m Module,
        id: KernelId,
        uniform: u64,
    ) -> Result<Arc<dyn InnerLoop + 'm>, RuntimeError>;

    /// The reduction loop of `combine` (a `reduce` item's kernel), applying `map` to the
    /// inputs first if given.
    fn reduce_loop<'m>(
        &'m self,
        m: &'m Module,
        map: Option<KernelId>,
        combine: KernelId,
    ) -> Result<Box<dyn ReduceLoop + 'm>, RuntimeError>;

    /// The executor as `Any`, for callers that need its concrete type (the GPU's device).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// The reference interpreter as an executor, with a fuel budget per call (per element in
/// loops).
#[derive(Clone, Debug)]
pub struct Interpreter {
    /// Instructions one call may execute before it fails with "step budget exhausted".
    pub fuel: u64,
    /// Run the optimised IR instead of the IR as lowered.
    pub optimized: bool,
}

impl Interpreter {
    /// An interpreter over lowered IR with a budget of `fuel` instructions per call.
    pub fn new(fuel: u64) -> Self {
        Interpreter {
            fuel,
            optimized: false,
        }
    }
}

/// Reads a scalar of type `ty` at `p`.
///
/// # Safety
/// `p` is valid and aligned for `ty`.
pub(crate) unsafe fn read_scalar(p: *const u8, ty: ScalarType) -> Scalar {
    // SAFETY: the caller's contract.
    unsafe {
        match ty {
            ScalarType::Bool => Scalar::Bool(p.read() != 0),
            ScalarType::I32 => Scalar::I32(p.cast::<i32>().read()),
            ScalarType::I64 => Scalar::I64(p.cast::<i64>().read()),
            ScalarType::U32 => Scalar::U32(p.cast::<u32>().read()),
            ScalarType::U64 => Scalar::U64(p.cast::<u64>().read()),
            ScalarType::F32 => Scalar::F32(p.cast::<f32>().read()),
            ScalarType::F64 => Scalar::F64(p.cast::<f64>().read()),
        }
    }
}

/// Writes `s` at `p`.
///
/// # Safety
/// `p` is valid, writable and aligned for `s`'s type.
pub(crate) unsafe fn write_scalar(p: *mut u8, s: Scalar) {
    // SAFETY: the caller's contract.
    unsafe {
        match s {
            Scalar::Bool(v) => p.write(v as u8),
            Scalar::I32(v) => p.cast::<i32>().write(v),
            Scalar::I64(v) => p.cast::<i64>().write(v),
            Scalar::U32(v) => p.cast::<u32>().write(v),
            Scalar::U64(v) => p.cast::<u64>().write(v),
            Scalar::F32(v) => p.cast::<f32>().write(v),
            Scalar::F64(v) => p.cast::<f64>().write(v),
        }
    }
}

struct InterpLoop<'m> {
    interp: &'m Interpreter,
    m: &'m Module,
    id: KernelId,
    map: Option<KernelId>,
    inputs: Vec<ScalarType>,
}

impl InterpLoop<'_> {
    fn call(&self, id: KernelId, args: &[Scalar]) -> Result<Vec<Scalar>, RuntimeError> {
        self.interp.call(self.m, id, args)
    }

    /// # Safety
    /// As for [`InnerLoop::run`].
    unsafe fn load(&self, i: usize, ptrs: &[*mut u8], strides: &[isize]) -> Vec<Scalar> {
        self.inputs
            .iter()
            .enumerate()
            // SAFETY: element `i` of input `j` is valid (the caller's contract).
            .map(|(j, &t)| unsafe {
                read_scalar(ptrs[j].wrapping_offset(i as isize * strides[j]), t)
            })
            .collect()
    }
}

impl InnerLoop for InterpLoop<'_> {
    unsafe fn run(
        &self,
        n: usize,
        ptrs: &[*mut u8],
        strides: &[isize],
    ) -> Result<(), (usize, RuntimeError)> {
        let nin = self.inputs.len();
        for i in 0..n {
            // SAFETY: the caller's contract.
            let args = unsafe { self.load(i, ptrs, strides) };
            let results = self.call(self.id, &args).map_err(|e| (i, e))?;
            for (j, r) in results.into_iter().enumerate() {
                let p = ptrs[nin + j].wrapping_offset(i as isize * strides[nin + j]);
                // SAFETY: element `i` of output `j` is valid and writable.
                unsafe { write_scalar(p, r) };
            }
        }
        Ok(())
    }
}

impl ReduceLoop for InterpLoop<'_> {
    unsafe fn run(
        &self,
        mut acc: Scalar,
        n: usize,
        ptrs: &[*mut u8],
        strides: &[isize],
    ) -> Result<Scalar, (usize, RuntimeError)> {
        let element = |i: usize| -> Result<Scalar, (usize, RuntimeError)> {
            // SAFETY: the caller's contract.
            let args = unsafe { self.load(i, ptrs, strides) };
            Ok(match self.map {
                Some(map) => self.call(map, &args).map_err(|e| (i, e))?[0],
                None => args[0],
            })
        };
        let combine = |a: Scalar, b: Scalar| Ok(self.call(self.id, &[a, b])?[0]);
        // The order of `kiln_ir::reduce`: by lanes for a commutative combine, else in turn.
        let lanes = kiln_ir::REDUCE_LANES;
        if n >= lanes && kiln_ir::commutative_combine(self.m.kernel(self.id)).is_some() {
            let mut l: Vec<Scalar> = (0..lanes).map(element).collect::<Result<_, _>>()?;
            for i in lanes..n {
                let x = element(i)?;
                l[i % lanes] = combine(l[i % lanes], x).map_err(|e| (i, e))?;
            }
            let tree = |a: usize, b: usize| combine(l[a], l[b]);
            let t = |e| (n - 1, e);
            let (t01, t23, t45, t67) = (
                tree(0, 1).map_err(t)?,
                tree(2, 3).map_err(t)?,
                tree(4, 5).map_err(t)?,
                tree(6, 7).map_err(t)?,
            );
            let left = combine(t01, t23).map_err(t)?;
            let right = combine(t45, t67).map_err(t)?;
            let total = combine(left, right).map_err(t)?;
            return combine(acc, total).map_err(t);
        }
        for i in 0..n {
            let x = element(i)?;
            acc = combine(acc, x).map_err(|e| (i, e))?;
        }
        Ok(acc)
    }
}

impl Executor for Interpreter {
    fn name(&self) -> &str {
        if self.optimized {
            "interp-opt"
        } else {
            "interp"
        }
    }

    fn wants_optimized(&self) -> bool {
        self.optimized
    }

    fn call(&self, m: &Module, id: KernelId, args: &[Scalar]) -> Result<Vec<Scalar>, RuntimeError> {
        let mut fuel = Fuel(self.fuel);
        kiln_interp::call(m, id, args, &mut fuel)
    }

    fn inner_loop<'m>(
        &'m self,
        m: &'m Module,
        id: KernelId,
        _uniform: u64,
    ) -> Result<Arc<dyn InnerLoop + 'm>, RuntimeError> {
        Ok(Arc::new(InterpLoop {
            interp: self,
            m,
            id,
            map: None,
            inputs: m.kernel(id).params.clone(),
        }))
    }

    fn reduce_loop<'m>(
        &'m self,
        m: &'m Module,
        map: Option<KernelId>,
        combine: KernelId,
    ) -> Result<Box<dyn ReduceLoop + 'm>, RuntimeError> {
        let inputs = match map {
            Some(f) => m.kernel(f).params.clone(),
            None => m.kernel(combine).results.clone(),
        };
        Ok(Box::new(InterpLoop {
            interp: self,
            m,
            id: combine,
            map,
            inputs,
        }))
    }
}

/// The Cranelift JIT as an executor: kernels are compiled to native code on first use and
/// cached (see `kiln_cranelift::Cpu`). Cheap to clone; clones share the cache.
#[derive(Clone, Debug)]
pub struct Cpu {
    backend: Arc<kiln_cranelift::Cpu>,
}

impl Cpu {
    /// The JIT for the host CPU.
    pub fn new() -> Result<Cpu, kiln_cranelift::BackendError> {
        Ok(Cpu {
            backend: Arc::new(kiln_cranelift::Cpu::new()?),
        })
    }

    /// The back end itself (for listings and cache statistics).
    pub fn backend(&self) -> &kiln_cranelift::Cpu {
        &self.backend
    }

    fn compile(
        &self,
        m: &Module,
        id: KernelId,
        shape: kiln_cranelift::Shape,
    ) -> Result<Arc<kiln_cranelift::Code>, RuntimeError> {
        self.backend
            .compile(m, id, shape)
            .map_err(|_| RuntimeError {
                kind: ErrorKind::Internal,
                kernel: m.kernel(id).name.clone(),
                loc: None,
            })
    }
}

struct CpuLoop(Arc<kiln_cranelift::Code>);

impl InnerLoop for CpuLoop {
    unsafe fn run(
        &self,
        n: usize,
        ptrs: &[*mut u8],
        strides: &[isize],
    ) -> Result<(), (usize, RuntimeError)> {
        // SAFETY: the same contract.
        unsafe { self.0.run_loop(n, ptrs, strides) }
    }
}

impl ReduceLoop for CpuLoop {
    unsafe fn run(
        &self,
        acc: Scalar,
        n: usize,
        ptrs: &[*mut u8],
        strides: &[isize],
    ) -> Result<Scalar, (usize, RuntimeError)> {
        // SAFETY: the same contract.
        unsafe { self.0.run_reduce(acc, n, ptrs, strides) }
    }
}

impl Executor for Cpu {
    fn name(&self) -> &str {
        "cpu"
    }

    fn wants_optimized(&self) -> bool {
        true
    }

    fn call(&self, m: &Module, id: KernelId, args: &[Scalar]) -> Result<Vec<Scalar>, RuntimeError> {
        self.compile(m, id, kiln_cranelift::Shape::Scalar)?
            .call(args)
    }

    fn inner_loop<'m>(
        &'m self,
        m: &'m Module,
        id: KernelId,
        uniform: u64,
    ) -> Result<Arc<dyn InnerLoop + 'm>, RuntimeError> {
        Ok(Arc::new(CpuLoop(self.compile(
            m,
            id,
            kiln_cranelift::Shape::Loop { uniform },
        )?)))
    }

    fn reduce_loop<'m>(
        &'m self,
        m: &'m Module,
        map: Option<KernelId>,
        combine: KernelId,
    ) -> Result<Box<dyn ReduceLoop + 'm>, RuntimeError> {
        let shape = kiln_cranelift::Shape::Reduce { combine };
        Ok(Box::new(CpuLoop(self.compile(
            m,
            map.unwrap_or(combine),
            shape,
        )?)))
    }
}

/// The CPU back end with every scalar call run through the kernel's *loop*: the arguments
/// are copied into arrays of [`CpuLoops::COPIES`] elements, so the call runs in SIMD groups
/// and in the scalar remainder, and every copy must give the same bits. The corpus runs
/// this beside [`Cpu`] to check that the vector code agrees with the scalar code.
#[derive(Debug)]
pub struct CpuLoops(pub Cpu);

impl CpuLoops {
    /// Elements per call: two groups of four lanes (or four of two) and a remainder.
    pub const COPIES: usize = 9;
}

impl Executor for CpuLoops {
    fn name(&self) -> &str {
        "cpu-loop"
    }

    fn wants_optimized(&self) -> bool {
        true
    }

    fn call(&self, m: &Module, id: KernelId, args: &[Scalar]) -> Result<Vec<Scalar>, RuntimeError> {
        let k = m.kernel(id);
        let code = self
            .0
            .compile(m, id, kiln_cranelift::Shape::Loop { uniform: 0 })?;
        let outs = run_copies(&CpuLoop(code), k, args, Self::COPIES, |t| {
            kiln_cranelift::byte_size(t) as usize
        })?;
        let mut results = Vec::with_capacity(outs.len());
        for lanes in outs {
            let first = lanes[0];
            // Lanes that disagree: a SIMD bug, reported as an internal error so that the
            // corpus shows this executor disagreeing with the others.
            if lanes.iter().any(|v| !v.same(first)) {
                return Err(RuntimeError {
                    kind: ErrorKind::Internal,
                    kernel: k.name.clone(),
                    loc: None,
                });
            }
            results.push(first);
        }
        Ok(results)
    }

    fn inner_loop<'m>(
        &'m self,
        m: &'m Module,
        id: KernelId,
        uniform: u64,
    ) -> Result<Arc<dyn InnerLoop + 'm>, RuntimeError> {
        self.0.inner_loop(m, id, uniform)
    }

    fn reduce_loop<'m>(
        &'m self,
        m: &'m Module,
        map: Option<KernelId>,
        combine: KernelId,
    ) -> Result<Box<dyn ReduceLoop + 'm>, RuntimeError> {
        self.0.reduce_loop(m, map, combine)
    }
}

/// Runs kernel `k` through `inner` over `n` copies of the scalar arguments `args`, each
/// operand's elements `stride(dtype)` bytes apart (at least the element's size, at most 8),
/// and returns each output's `n` values. Executors that check their loops against their
/// scalar code use it (`cpu-loop`, `llvm-host`).
pub(crate) fn run_copies(
    inner: &dyn InnerLoop,
    k: &kiln_ir::Kernel,
    args: &[Scalar],
    n: usize,
    stride: impl Fn(ScalarType) -> usize,
) -> Result<Vec<Vec<Scalar>>, RuntimeError> {
    let types: Vec<ScalarType> = k.params.iter().chain(&k.results).copied().collect();
    // One 8-byte-aligned buffer per operand, inputs then outputs.
    let mut bufs: Vec<Vec<u64>> = types
        .iter()
        .map(|&t| vec![0u64; (n * stride(t)).div_ceil(8)])
        .collect();
    let size = |t: ScalarType| crate::array::element_bytes(t);
    for ((buf, &a), &t) in bufs.iter_mut().zip(args).zip(&k.params) {
        let bytes = a.to_bits().to_le_bytes();
        let (s, st) = (size(t), stride(t));
        let raw = bytemuck_bytes(buf);
        for i in 0..n {
            raw[i * st..i * st + s].copy_from_slice(&bytes[..s]);
        }
    }
    let ptrs: Vec<*mut u8> = bufs.iter_mut().map(|b| b.as_mut_ptr() as *mut u8).collect();
    let strides: Vec<isize> = types.iter().map(|&t| stride(t) as isize).collect();
    // SAFETY: every operand buffer holds `n` elements of its dtype `stride` bytes apart,
    // 8-byte aligned.
    unsafe { inner.run(n, &ptrs, &strides) }.map_err(|(_, e)| e)?;
    Ok(k.results
        .iter()
        .enumerate()
        .map(|(j, &t)| {
            let (s, st) = (size(t), stride(t));
            let raw = bytemuck_bytes(&mut bufs[k.params.len() + j]);
            (0..n)
                .map(|i| {
                    let mut b = [0u8; 8];
                    b[..s].copy_from_slice(&raw[i * st..i * st + s]);
                    Scalar::from_bits(t, u64::from_le_bytes(b))
                })
                .collect()
        })
        .collect())
}

/// The bytes of a `u64` buffer.
fn bytemuck_bytes(buf: &mut [u64]) -> &mut [u8] {
    // SAFETY: u8 has no alignment or validity requirements; the length is exact.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, buf.len() * 8) }
}

#[cfg(test)]
mod tests;
