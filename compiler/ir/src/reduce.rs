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
    use BinaryOp::*;
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
    let (&ret, body) = block.insts.split_last()?;
    let InstKind::Return(ref rs) = k.inst(ret).kind else {
        return None;
    };
    let [returned] = rs[..] else {
        return None;
    };
    // `a ⊕ b`, and the value it must produce: the returned one, or (as the front end
    // returns every float) the one a canonical-NaN select takes. The select changes nothing
    // of the order; executors that fold by lanes with `⊕` itself make the final result
    // canonical (`Scalar::canonical_nan`).
    let (op_inst, op_result) = match *body {
        [op_inst] => (op_inst, returned),
        [op_inst, is_nan, nan, select] => {
            let r = *k.inst(op_inst).results.first()?;
            let t = *k.inst(is_nan).results.first()?;
            let c = *k.inst(nan).results.first()?;
            let canonical = matches!(k.inst(is_nan).kind, InstKind::Unary(UnaryOp::IsNan, x) if x == r)
                && matches!(k.inst(nan).kind, InstKind::Const(n) if n.is_nan() && n.same(n.canonical_nan()))
                && matches!(k.inst(select).kind, InstKind::Select(cond, x, y) if cond == t && x == c && y == r)
                && k.inst(select).results[..] == [returned];
            if !canonical {
                return None;
            }
            (op_inst, r)
        }
        _ => return None,
    };
    let InstKind::Binary(op, a, b) = k.inst(op_inst).kind else {
        return None;
    };
    let commutative = matches!(op, Add | Mul | Min | Max | And | Or | Xor);
    let operands = (a == p0 && b == p1) || (a == p1 && b == p0);
    (commutative && operands && k.inst(op_inst).results[..] == [op_result]).then_some(op)
}
