//! `kiln-runtime`: what runs compiled kernels.
//!
//! For now this is the [`Executor`] abstraction and its first implementation, the reference
//! interpreter. The Cranelift JIT and the GPU join as further executors, and the array
//! runtime (broadcasting, chunking, parallel maps) is built on the same trait, so every
//! test written against `Executor` runs on every back end.

use kiln_interp::{Fuel, RuntimeError};
use kiln_ir::{KernelId, Module, Scalar};

/// Something that can call a kernel of a verified module with scalar arguments.
pub trait Executor: Send + Sync {
    /// A short name for reports (`interp`, `cpu`, `gpu`).
    fn name(&self) -> &str;

    /// Whether this executor wants optimised IR (back ends) or the IR as lowered (the
    /// interpreter, when it checks the optimiser).
    fn wants_optimized(&self) -> bool;

    /// Calls kernel `id` of `m` with `args`; `m` must have passed `kiln_ir::verify`.
    fn call(&self, m: &Module, id: KernelId, args: &[Scalar]) -> Result<Vec<Scalar>, RuntimeError>;
}

/// The reference interpreter as an executor, with a fuel budget per call.
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
}
