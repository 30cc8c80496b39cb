//! Cache keys of CPU entry points: the shape, then the IR (`kiln_ir::key`). The target is
//! fixed per [`crate::Cpu`], whose cache this is.

use kiln_ir::{KernelId, Module};

use crate::Shape;

/// The key of entry `shape` for kernel `id` of `m`.
pub fn encode(m: &Module, id: KernelId, shape: Shape) -> Vec<u64> {
    let mut out = Vec::with_capacity(256);
    match shape {
        Shape::Scalar => out.push(0),
        Shape::Loop { uniform } => out.extend([1, uniform]),
        Shape::Reduce { combine } => out.extend([2, combine.0 as u64]),
    }
    // The same traversal order as before: the kernel first, then the combine.
    let roots: &[KernelId] = match shape {
        Shape::Reduce { combine } => &[combine, id],
        _ => &[id],
    };
    kiln_ir::key::encode(m, roots, &mut out);
    out
}
