//! The order in which a reduction combines its elements: shared by every executor, so that
//! they agree bit for bit.
//!
//! A run of `n` elements folded into an accumulator `acc` (one call of a reduction loop)
//! combines them in one of two orders:
//! - **sequential**: `((acc ⊕ x₀) ⊕ x₁) ⊕ …`, for any combine, and for short runs
//!   (`n < REDUCE_LANES`);
//! - **by lanes**, when the combine is [`commutative_combine`] and `n ≥ REDUCE_LANES`:
//!   element `i` goes to lane `i mod REDUCE_LANES`; each lane folds its elements in order,
//!   starting from its first one (no identity needed); the lanes are then combined in a
//!   fixed pairwise tree, `((l₀ ⊕ l₁) ⊕ (l₂ ⊕ l₃)) ⊕ ((l₄ ⊕ l₅) ⊕ (l₆ ⊕ l₇))`, and the result
//!   into the accumulator: `acc ⊕ tree`.
//!
//! Lanes are what SIMD code computes (8 lanes are two `f64x2` registers × 2, or two `f32x4`),
//! and independent lanes also hide the latency of a floating-point add. The order depends only
//! on `n` and the combine, never on the target or the thread count.

use crate::{BinaryOp, InstKind, Kernel, UnaryOp};

/// Lanes of a reduction run (see the module documentation).
pub const REDUCE_LANES: usize = 8;

/// The operator of a combine kernel that is exactly `a ⊕ b` (either operand order) for a
/// commutative `⊕` (`+ * min max & | ^`), so that reordering its operands changes nothing;
/// `None` for any other combine, which keeps the sequential order.
pub fn commutative_combine(k: &Kernel) -> Option<BinaryOp> {
    if k.params.len() != 2 || k.results.len() != 1 || k.params[0] != k.params[1] {
        return None;
    }
    if k.layout.len() != 1 || k.params[0] != k.results[0] {
        return None;
    }
    let block = k.block(k.entry());
    let [p0, p1] = block.params[..] else {
        return None;
    };
    let (op_inst, ret) = match block.insts[..] {
        [op_inst, ret] => (op_inst, ret),
        // `a ⊕ b` with its NaN made canonical (as the front end returns every float): the
        // same combine, as far as the order goes. Executors that fold by lanes with `⊕`
        // itself make the final result canonical (`Scalar::canonical_nan`).
        [op_inst, is_nan, nan, select, ret] => {
            let r = *k.inst(op_inst).results.first()?;
            let [t] = k.inst(is_nan).results[..] else {
                return None;
            };
            let [c] = k.inst(nan).results[..] else {
                return None;
            };
            let canonical = matches!(k.inst(is_nan).kind, InstKind::Unary(UnaryOp::IsNan, x) if x == r)
                && matches!(k.inst(nan).kind, InstKind::Const(n) if n.is_nan() && n.same(n.canonical_nan()))
                && matches!(k.inst(select).kind, InstKind::Select(cond, x, y) if cond == t && x == c && y == r);
            let InstKind::Return(ref rs) = k.inst(ret).kind else {
                return None;
            };
            if !canonical || rs[..] != k.inst(select).results[..] {
                return None;
            }
            return plain_combine(k, op_inst, p0, p1);
        }
        _ => return None,
    };
    let InstKind::Return(ref rs) = k.inst(ret).kind else {
        return None;
    };
    if rs[..] != k.inst(op_inst).results[..] {
        return None;
    }
    plain_combine(k, op_inst, p0, p1)
}

/// The operator of `op_inst` if it is a commutative `⊕` applied to the two parameters.
fn plain_combine(
    k: &Kernel,
    op_inst: crate::Inst,
    p0: crate::Value,
    p1: crate::Value,
) -> Option<BinaryOp> {
    use BinaryOp::*;
    let InstKind::Binary(op, a, b) = k.inst(op_inst).kind else {
        return None;
    };
    let commutative = matches!(op, Add | Mul | Min | Max | And | Or | Xor);
    let operands = (a == p0 && b == p1) || (a == p1 && b == p0);
    (commutative && operands).then_some(op)
}
