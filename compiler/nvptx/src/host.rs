//! The GPU back end's code, run on the host CPU: [`Flavor::Host`] text compiled with LLVM's
//! JIT, and the grid played out thread by thread. This is how the translation of every IR
//! operation, the grid-stride loops, vector groups, error reporting and the reduction tree
//! are tested against the reference interpreter on machines without a GPU. Only the thin
//! NVPTX wrappers (special registers, shared memory, barriers) are not exercised here.
//!
//! The emulation runs each block's threads one after another, and the tree's steps level by
//! level. That is what a GPU computes: within one level of the tree the slots read and the
//! slots written are disjoint, so the order of threads within a level does not matter.
#![allow(unsafe_code)]

use std::mem::ManuallyDrop;

use inkwell::context::Context;
use inkwell::execution_engine::ExecutionEngine;
use inkwell::module::Module as LlvmModule;
use inkwell::targets::{CodeModel, InitializationConfig, RelocMode, Target, TargetMachine};
use inkwell::OptimizationLevel;
use kiln_ir::{Module, ScalarType};

use crate::entries::{Entry, Flavor, BLOCK};
use crate::ll::{mem_size, Site};
use crate::{err, llvm_text, optimise, parse, BackendError};

type CallFn = unsafe extern "C" fn(*const u64, *mut u64) -> i32;
type MapFn = unsafe extern "C" fn(u64, u64, *const u64);
type ReduceThreadFn = unsafe extern "C" fn(u64, u64, *const u64, *mut u8, *mut u8);
type TreeStepFn = unsafe extern "C" fn(u64, u64, u64, *mut u8, *mut u8, *mut u64);
type FoldPartialsFn =
    unsafe extern "C" fn(u64, u64, *mut u8, *mut u8, u64, *mut u64, *mut u8, *mut u8);
type FinishFn = unsafe extern "C" fn(*mut u8, *mut u8, *mut u8, *mut u64);

/// One entry compiled for the host.
pub struct HostCode {
    // Field order is drop order: the engine owns the module, and both borrow `ctx`.
    engine: ManuallyDrop<ExecutionEngine<'static>>,
    ctx: *mut Context,
    /// Trap sites: status `n` is `sites[n - 1]`.
    pub sites: Vec<Site>,
    /// Elements per vector group.
    pub width: u32,
    /// The type reduced (reductions).
    reduced: Option<ScalarType>,
}

// SAFETY: after construction the engine is only asked for function addresses (read-only) and
// finally dropped; the generated functions are pure code over their arguments.
unsafe impl Send for HostCode {}
// SAFETY: as above.
unsafe impl Sync for HostCode {}

impl Drop for HostCode {
    fn drop(&mut self) {
        // SAFETY: the engine (which owns the module) is dropped before the context it
        // borrows, and neither is used afterwards.
        unsafe {
            ManuallyDrop::drop(&mut self.engine);
            drop(Box::from_raw(self.ctx));
        }
    }
}

/// An error word as the kernels leave it: `u64::MAX` for none, else `index << 16 | status`.
pub fn decode_error(word: u64) -> Option<(u64, u32)> {
    (word != u64::MAX).then_some((word >> 16, (word & 0xffff) as u32))
}

impl HostCode {
    /// Compiles `entry` of `m` (verified and optimised) for the host.
    pub fn compile(m: &Module, entry: Entry) -> Result<HostCode, BackendError> {
        let text = llvm_text(m, entry, Flavor::Host)?;
        Target::initialize_native(&InitializationConfig::default()).map_err(err)?;
        let triple = TargetMachine::get_default_triple();
        let target = Target::from_triple(&triple).map_err(err)?;
        let tm = target
            .create_target_machine(
                &triple,
                "generic",
                "",
                OptimizationLevel::Default,
                RelocMode::Default,
                CodeModel::JITDefault,
            )
            .ok_or_else(|| err("LLVM cannot target this host"))?;
        let ctx: &'static Context = Box::leak(Box::new(Context::create()));
        let ctx_ptr = ctx as *const Context as *mut Context;
        let build = || -> Result<ExecutionEngine<'static>, BackendError> {
            let module: LlvmModule<'static> = parse(ctx, &text.text, &tm)?;
            optimise(&module, &tm)?;
            module
                .create_jit_execution_engine(OptimizationLevel::Default)
                .map_err(|e| err(format!("LLVM's JIT failed: {e}")))
        };
        let engine = match build() {
            Ok(e) => e,
            Err(e) => {
                // SAFETY: nothing borrows the context any more (the module was dropped).
                unsafe { drop(Box::from_raw(ctx_ptr)) };
                return Err(e);
            }
        };
        let reduced = match entry {
            Entry::Reduce { combine, .. } => Some(m.kernel(combine).results[0]),
            _ => None,
        };
        Ok(HostCode {
            engine: ManuallyDrop::new(engine),
            ctx: ctx_ptr,
            sites: text.sites,
            width: text.width,
            reduced,
        })
    }

    fn function(&self, name: &str) -> usize {
        self.engine
            .get_function_address(name)
            .unwrap_or_else(|e| panic!("host code has no `{name}`: {e}"))
    }

    /// Calls a [`Entry::Call`] entry: arguments and results in 8-byte slots (each value in
    /// its native representation at the start of its slot). Returns the status.
    pub fn call(&self, args: &[u64], results: &mut [u64]) -> i32 {
        // SAFETY: `kiln_call` reads one slot per parameter and writes one per result; the
        // caller passes as many (the slots are the kernel's, checked by the executor).
        unsafe {
            let f: CallFn = std::mem::transmute(self.function("kiln_call"));
            f(args.as_ptr(), results.as_mut_ptr())
        }
    }

    /// Runs a [`Entry::Map`] entry on `threads` emulated threads. Returns the error word.
    ///
    /// # Safety
    /// Operand `j` has `n` elements at `ptrs[j] + i * strides[j] * size` (element strides),
    /// valid for its type; outputs are writable.
    pub unsafe fn map(&self, threads: u64, ptrs: &[*mut u8], strides: &[i64], n: u64) -> u64 {
        let mut error = u64::MAX;
        let slots = operand_slots(ptrs, strides, n, &mut error);
        let f: MapFn = std::mem::transmute(self.function("host_map"));
        for tid in 0..threads {
            f(tid, threads, slots.as_ptr());
        }
        error
    }

    /// Runs a [`Entry::Reduce`] entry as the runtime launches it: `grid` blocks of
    /// [`BLOCK`] threads, `lanes` of which fold elements (`0`: all of them), then the final
    /// block into the accumulator `acc` (an 8-byte slot, updated). Returns the error word.
    ///
    /// # Safety
    /// As for [`HostCode::map`], with inputs only.
    pub unsafe fn reduce(
        &self,
        acc: &mut u64,
        lanes: u64,
        grid: u64,
        ptrs: &[*mut u8],
        strides: &[i64],
        n: u64,
    ) -> u64 {
        let size = mem_size(self.reduced.expect("a reduction entry")) as usize;
        let mut error = u64::MAX;
        let err_ptr: *mut u64 = &mut error;
        let slots = operand_slots(ptrs, strides, n, err_ptr);
        let thread: ReduceThreadFn = std::mem::transmute(self.function("host_reduce_thread"));
        let step: TreeStepFn = std::mem::transmute(self.function("host_tree_step"));
        let fold: FoldPartialsFn = std::mem::transmute(self.function("host_fold_partials"));
        let finish: FinishFn = std::mem::transmute(self.function("host_finish"));
        let block = BLOCK as u64;
        let nth = if lanes == 0 { grid * block } else { lanes };
        // Values are packed at their own size; u64 storage is big enough and aligned.
        let tree = |vals: &mut [u64], oks: &mut [u8]| {
            let mut s = 1;
            while s < block {
                for t in 0..block {
                    step(
                        t,
                        s,
                        block,
                        vals.as_mut_ptr().cast(),
                        oks.as_mut_ptr(),
                        err_ptr,
                    );
                }
                s *= 2;
            }
        };
        let mut pvals = vec![0u64; grid as usize];
        let mut poks = vec![0u8; grid as usize];
        for b in 0..grid {
            let mut vals = vec![0u64; BLOCK as usize];
            let mut oks = vec![0u8; BLOCK as usize];
            for t in 0..block {
                let gtid = b * block + t;
                if gtid < nth {
                    let v = vals.as_mut_ptr().cast::<u8>().add(t as usize * size);
                    thread(
                        gtid,
                        nth,
                        slots.as_ptr(),
                        v,
                        oks.as_mut_ptr().add(t as usize),
                    );
                }
            }
            tree(&mut vals, &mut oks);
            std::ptr::copy_nonoverlapping(
                vals.as_ptr().cast::<u8>(),
                pvals.as_mut_ptr().cast::<u8>().add(b as usize * size),
                size,
            );
            poks[b as usize] = oks[0];
        }
        let mut vals = vec![0u64; BLOCK as usize];
        let mut oks = vec![0u8; BLOCK as usize];
        for t in 0..block {
            let v = vals.as_mut_ptr().cast::<u8>().add(t as usize * size);
            fold(
                t,
                block,
                pvals.as_mut_ptr().cast(),
                poks.as_mut_ptr(),
                grid,
                err_ptr,
                v,
                oks.as_mut_ptr().add(t as usize),
            );
        }
        tree(&mut vals, &mut oks);
        finish(
            (acc as *mut u64).cast(),
            vals.as_mut_ptr().cast(),
            oks.as_mut_ptr(),
            err_ptr,
        );
        error
    }
}

/// The 8-byte argument slots of a map or reduction wrapper (see `entries::operand_params`).
fn operand_slots(ptrs: &[*mut u8], strides: &[i64], n: u64, err: *mut u64) -> Vec<u64> {
    let mut slots: Vec<u64> = ptrs.iter().map(|&p| p as u64).collect();
    slots.extend(strides.iter().map(|&s| s as u64));
    slots.push(n);
    slots.push(err as u64);
    slots
}
