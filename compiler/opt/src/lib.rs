//! `kiln-opt`: passes over Kiln IR. Each pass is a function over a kernel or module; the
//! pipeline in [`optimize`] runs the verifier after every pass when asked to (tests and the
//! corpus always ask).
//!
//! - [`inline_calls`]: every call is replaced by the callee's body (`fn` calls are always
//!   inlined, spec §3; the front end rejects recursion, so this terminates).
//! - [`fold_constants`]: operations on constants are evaluated with the reference
//!   interpreter's own functions, so folding can never disagree with execution. Integer
//!   division by a zero constant is left alone (it must fail at run time, with its source
//!   location), and transcendental functions (`exp`, `sin`, …) are not folded, so their
//!   value always comes from the back end that runs the kernel.
//! - [`eliminate_dead_code`]: unused side-effect-free instructions, unused block parameters
//!   and unreachable blocks go.
//! - [`merge_blocks`]: a block that is the only successor of its only predecessor joins it
//!   (inlining leaves such chains behind).

use std::collections::{HashMap, HashSet};

use kiln_ir::cfg::{remove_unreachable_blocks, reverse_post_order};
use kiln_ir::{
    BinaryOp, Block, BlockCall, InstKind, Kernel, KernelId, KernelKind, Module, Scalar, UnaryOp,
    Value, ValueDef, VerifierError,
};

/// Runs the standard pipeline on every kernel: inline, then fold and clean up twice.
/// With `verify_each`, the verifier runs after every pass and its first complaint is returned.
pub fn optimize(m: &mut Module, verify_each: bool) -> Result<(), VerifierError> {
    // A pass over kernel `i` changes only kernel `i`: verifying the whole module after each
    // one made a file of 4,000 consts quadratic.
    let check = |m: &Module, i: usize| {
        if verify_each {
            kiln_ir::verify_kernel(m, &m.kernels[i])
        } else {
            Ok(())
        }
    };
    inline_calls(m);
    if verify_each {
        kiln_ir::verify(m)?;
    }
    for i in 0..m.kernels.len() {
        // Math library functions arrive optimised (see `kiln_front::Lowerer::with_math`).
        if m.kernels[i].kind == KernelKind::Library {
            continue;
        }
        for _ in 0..2 {
            fold_constants(&mut m.kernels[i]);
            check(m, i)?;
            eliminate_dead_code(&mut m.kernels[i]);
            check(m, i)?;
            merge_blocks(&mut m.kernels[i]);
            check(m, i)?;
        }
    }
    Ok(())
}

/// Inlines every call in every kernel. Kernels are processed in index order; lowering
/// pushes callees before callers, so a callee is already call-free when it is copied.
///
/// Linear in the size of the result: each block's instructions are walked once, split at
/// every call, and the layout is rebuilt once at the end.
pub fn inline_calls(m: &mut Module) {
    for i in 0..m.kernels.len() {
        let (before, rest) = m.kernels.split_at_mut(i);
        let k = &mut rest[0];
        let mut after: HashMap<Block, Vec<Block>> = HashMap::new();
        let mut size = k.inst_count();
        let limit = size + MAX_INLINE_GROWTH;
        // Math library functions stay calls in user kernels (back ends compile them once and
        // share them); inside the library they inline into each other.
        let library_too = k.kind == KernelKind::Library;
        for block in k.layout.clone() {
            let placed = inline_block(k, block, before, &mut size, limit, library_too);
            if !placed.is_empty() {
                after.insert(block, placed);
            }
        }
        if after.is_empty() {
            continue;
        }
        let mut layout = Vec::with_capacity(k.blocks.len());
        for &b in &k.layout {
            layout.push(b);
            layout.extend(after.get(&b).into_iter().flatten());
        }
        k.layout = layout;
    }
}

/// Inlines the calls of `block` whose callee is in `callees` (the kernels before this one).
/// Returns the blocks created, in layout order, to be placed after `block`.
fn inline_block(
    k: &mut Kernel,
    block: Block,
    callees: &[Kernel],
    size: &mut usize,
    limit: usize,
    library_too: bool,
) -> Vec<Block> {
    let insts = std::mem::take(&mut k.blocks[block.index()].insts);
    let mut cur = block;
    let mut placed = Vec::new();
    for inst in insts {
        let callee = match &k.inst(inst).kind {
            InstKind::Call(callee, _) => callees
                .get(callee.index())
                .filter(|c| library_too || c.kind != KernelKind::Library),
            _ => None,
        };
        // Not a call, a call of a later kernel (recursion cannot be inlined), or a call that
        // would grow the kernel past the budget: the call stays, and executors run it.
        let Some(callee) = callee.filter(|c| *size + c.inst_count() <= limit) else {
            k.blocks[cur.index()].insts.push(inst);
            continue;
        };
        *size += callee.inst_count();
        cur = inline_call(k, cur, inst, callee, &mut placed);
    }
    placed
}

/// How many instructions inlining may add to one kernel. Helpers nested in helpers can
/// multiply code size exponentially (`f(f(f(x)))` where each `f` calls `g` ten times); past
/// this growth, calls stay calls (every executor runs them) rather than taking the
/// compiler's time and memory.
pub const MAX_INLINE_GROWTH: usize = 20_000;

/// Ends `block` with a jump into a copy of `callee` standing for `call`, and returns the
/// continuation block, whose parameters are the call's results. Created blocks are appended
/// to `placed` (they are not in the layout).
fn inline_call(
    k: &mut Kernel,
    block: Block,
    call: kiln_ir::Inst,
    callee: &Kernel,
    placed: &mut Vec<Block>,
) -> Block {
    let InstKind::Call(_, args) = k.inst(call).kind.clone() else {
        unreachable!("inline_call is given a call")
    };
    let results = k.inst(call).results.clone();
    let call_loc = k.locs[call.index()];
    let new_block = |k: &mut Kernel| {
        let b = k.create_block();
        k.layout.pop();
        b
    };

    // Copy the callee's blocks.
    let mut bmap: HashMap<Block, Block> = HashMap::new();
    let mut vmap: HashMap<Value, Value> = HashMap::new();
    for &cb in &callee.layout {
        let nb = new_block(k);
        bmap.insert(cb, nb);
        placed.push(nb);
        for &p in &callee.block(cb).params {
            let np = k.append_block_param(nb, callee.value_type(p));
            vmap.insert(p, np);
        }
    }
    // The continuation takes the call's results as parameters: the result values are
    // redefined as its parameters, so their uses need no rewriting.
    let cont = new_block(k);
    placed.push(cont);
    for (n, &r) in results.iter().enumerate() {
        k.values[r.index()].def = ValueDef::Param(cont, n as u32);
        k.blocks[cont.index()].params.push(r);
    }
    for &cb in &callee.layout {
        let nb = bmap[&cb];
        for &ci in &callee.block(cb).insts {
            let data = callee.inst(ci);
            let mut kind = data.kind.clone();
            kind.map_operands(|v| vmap[&v]);
            for c in kind.successors_mut() {
                c.block = bmap[&c.block];
            }
            if let InstKind::Return(vs) = kind {
                kind = InstKind::Jump(BlockCall {
                    block: cont,
                    args: vs,
                });
            }
            let tys: Vec<_> = data.results.iter().map(|&r| callee.value_type(r)).collect();
            let loc = callee.locs[ci.index()].or(call_loc);
            let ni = k.append_inst(nb, kind, &tys, loc);
            for (&old, &new) in data.results.iter().zip(&k.inst(ni).results.clone()) {
                vmap.insert(old, new);
            }
        }
    }
    let entry_copy = bmap[&callee.entry()];
    k.append_inst(
        block,
        InstKind::Jump(BlockCall {
            block: entry_copy,
            args,
        }),
        &[],
        None,
    );
    cont
}

/// Unary operators that are folded: those whose result every back end computes exactly.
fn foldable_unary(op: UnaryOp) -> bool {
    use UnaryOp::*;
    matches!(
        op,
        Neg | Not | Abs | Sqrt | Floor | Ceil | Round | Trunc | IsNan | IsInf | IsFinite
    )
}

/// Folds operations on constants and branches on constants.
pub fn fold_constants(k: &mut Kernel) {
    let mut consts: HashMap<Value, Scalar> = HashMap::new();
    let mut alias: HashMap<Value, Value> = HashMap::new();
    let resolve = |alias: &HashMap<Value, Value>, mut v: Value| {
        while let Some(&a) = alias.get(&v) {
            v = a;
        }
        v
    };
    for b in reverse_post_order(k) {
        let insts = k.blocks[b.index()].insts.clone();
        for inst in insts {
            let mut kind = k.insts[inst.index()].kind.clone();
            kind.map_operands(|v| resolve(&alias, v));
            let c = |v: &Value| consts.get(v).copied();
            let result_ty = k.insts[inst.index()]
                .results
                .first()
                .map(|&r| k.value_type(r));
            let folded: Option<Scalar> = match &kind {
                InstKind::Const(s) => Some(*s),
                InstKind::Unary(op, x) if foldable_unary(*op) => {
                    c(x).map(|x| kiln_interp::eval_unary(*op, x))
                }
                // `copysign` is exact; the other float-only operators are transcendental.
                InstKind::Binary(op, a, b)
                    if !op.float_only() || *op == kiln_ir::BinaryOp::Copysign =>
                {
                    match (c(a), c(b)) {
                        (Some(a), Some(b)) => kiln_interp::eval_binary(*op, a, b).ok(),
                        _ => None,
                    }
                }
                InstKind::Fma(a, b, d) => match (c(a), c(b), c(d)) {
                    (Some(a), Some(b), Some(d)) => Some(kiln_interp::eval_fma(a, b, d)),
                    _ => None,
                },
                InstKind::Cast(x) => match (c(x), result_ty) {
                    (Some(x), Some(t)) => Some(kiln_interp::eval_cast(x, t)),
                    _ => None,
                },
                InstKind::Bitcast(x) => match (c(x), result_ty) {
                    (Some(x), Some(t)) => Some(kiln_interp::eval_bitcast(x, t)),
                    _ => None,
                },
                InstKind::Select(cond, a, bb) => {
                    if let Some(Scalar::Bool(v)) = c(cond) {
                        let chosen = if v { *a } else { *bb };
                        alias.insert(k.insts[inst.index()].results[0], chosen);
                    }
                    None
                }
                _ => None,
            };
            if let InstKind::Branch(cond, t, e) = &kind {
                if let Some(Scalar::Bool(v)) = c(cond) {
                    kind = InstKind::Jump(if v { t.clone() } else { e.clone() });
                }
            }
            if let Some(s) = folded {
                consts.insert(k.insts[inst.index()].results[0], s);
                kind = InstKind::Const(s);
            }
            k.insts[inst.index()].kind = kind;
        }
    }
    // Rewrite aliased operands everywhere (unreachable blocks included, so no stale use
    // remains if they become reachable in a later pass).
    if !alias.is_empty() {
        for &b in &k.layout.clone() {
            for &inst in &k.blocks[b.index()].insts.clone() {
                k.insts[inst.index()]
                    .kind
                    .map_operands(|v| resolve(&alias, v));
            }
        }
    }
    remove_unreachable_blocks(k);
}

/// Fast math, opt in (`kiln::Jit::with_fast_math`): contracts a float `a * b + c` (either
/// operand order of the `+`) into one `fma(a, b, c)` when the product has no other use, then
/// removes the dead products. The result is rounded once instead of twice: usually more
/// accurate, and faster where the CPU has FMA, but different in the last bit from the
/// default. Math library functions are left as written (they use `fma` explicitly already).
pub fn contract_fma(m: &mut Module) {
    for k in m.kernels.iter_mut() {
        if k.kind == KernelKind::Library {
            continue;
        }
        let mut uses = vec![0u32; k.values.len()];
        for &b in &k.layout {
            for &i in &k.block(b).insts {
                for v in k.inst(i).kind.operands() {
                    uses[v.index()] += 1;
                }
            }
        }
        let mut changed = false;
        for b in k.layout.clone() {
            for i in k.block(b).insts.clone() {
                let InstKind::Binary(BinaryOp::Add, x, y) = k.inst(i).kind else {
                    continue;
                };
                if !k.value_type(x).is_float() {
                    continue;
                }
                let product = |v: Value| match k.values[v.index()].def {
                    ValueDef::Result(d, 0) if uses[v.index()] == 1 => match k.inst(d).kind {
                        InstKind::Binary(BinaryOp::Mul, a, b) => Some((a, b)),
                        _ => None,
                    },
                    _ => None,
                };
                let fused = match (product(x), product(y)) {
                    (Some((a, b)), _) => InstKind::Fma(a, b, y),
                    (None, Some((a, b))) => InstKind::Fma(a, b, x),
                    (None, None) => continue,
                };
                k.insts[i.index()].kind = fused;
                changed = true;
            }
        }
        if changed {
            eliminate_dead_code(k);
        }
    }
}

/// Removes unused pure instructions, unused block parameters and unreachable blocks, to a
/// fixed point. Instructions are removed with a worklist (removing one can make its operands'
/// definitions dead), so a long dead chain costs one pass, not one pass per link.
pub fn eliminate_dead_code(k: &mut Kernel) {
    remove_unreachable_blocks(k);
    loop {
        let mut uses: HashMap<Value, usize> = HashMap::new();
        let mut def: HashMap<Value, kiln_ir::Inst> = HashMap::new();
        for &b in &k.layout {
            for &inst in &k.blocks[b.index()].insts {
                for v in k.insts[inst.index()].kind.operands() {
                    *uses.entry(v).or_default() += 1;
                }
                for &r in &k.insts[inst.index()].results {
                    def.insert(r, inst);
                }
            }
        }
        let removable = |k: &Kernel, inst: kiln_ir::Inst, uses: &HashMap<Value, usize>| {
            let d = &k.insts[inst.index()];
            let is_int = d
                .kind
                .operands()
                .first()
                .is_some_and(|&v| k.value_type(v).is_int());
            !d.kind.has_side_effects(is_int)
                && d.results
                    .iter()
                    .all(|r| uses.get(r).copied().unwrap_or(0) == 0)
        };
        let mut dead: HashSet<kiln_ir::Inst> = HashSet::new();
        let mut work: Vec<kiln_ir::Inst> = def
            .values()
            .copied()
            .filter(|&i| removable(k, i, &uses))
            .collect();
        while let Some(inst) = work.pop() {
            if !dead.insert(inst) {
                continue;
            }
            for v in k.insts[inst.index()].kind.operands() {
                let n = uses.entry(v).or_default();
                *n = n.saturating_sub(1);
                if *n == 0 {
                    if let Some(&d) = def.get(&v) {
                        if !dead.contains(&d) && removable(k, d, &uses) {
                            work.push(d);
                        }
                    }
                }
            }
        }
        if !dead.is_empty() {
            for &b in &k.layout.clone() {
                k.blocks[b.index()].insts.retain(|i| !dead.contains(i));
            }
        }
        let params_removed = remove_unused_params(k, &uses);
        if !params_removed {
            break;
        }
    }
}

fn remove_unused_params(k: &mut Kernel, uses: &HashMap<Value, usize>) -> bool {
    let entry = k.entry();
    let mut dead: HashMap<Block, Vec<usize>> = HashMap::new();
    for &b in &k.layout {
        if b == entry {
            continue;
        }
        let idx: Vec<usize> = k.blocks[b.index()]
            .params
            .iter()
            .enumerate()
            .filter(|(_, p)| uses.get(p).copied().unwrap_or(0) == 0)
            .map(|(i, _)| i)
            .collect();
        if !idx.is_empty() {
            dead.insert(b, idx);
        }
    }
    if dead.is_empty() {
        return false;
    }
    let drop_indices = |v: &mut Vec<Value>, idx: &[usize]| {
        let mut i = 0;
        v.retain(|_| {
            let keep = !idx.contains(&i);
            i += 1;
            keep
        });
    };
    for &b in &k.layout.clone() {
        if let Some(&t) = k.blocks[b.index()].insts.last() {
            for c in k.insts[t.index()].kind.successors_mut() {
                if let Some(idx) = dead.get(&c.block) {
                    drop_indices(&mut c.args, idx);
                }
            }
        }
    }
    for (b, idx) in &dead {
        let mut params = k.blocks[b.index()].params.clone();
        drop_indices(&mut params, idx);
        for (n, &p) in params.iter().enumerate() {
            k.values[p.index()].def = ValueDef::Param(*b, n as u32);
        }
        k.blocks[b.index()].params = params;
    }
    true
}

/// Merges each block reached only by an unconditional jump from a single predecessor into
/// that predecessor, binding its parameters to the jump's arguments. One pass: predecessor
/// counts do not change when a block absorbs its successor, and operands are rewritten once.
pub fn merge_blocks(k: &mut Kernel) {
    let mut preds: HashMap<Block, usize> = HashMap::new();
    for &b in &k.layout {
        if let Some(t) = k.terminator(b) {
            for c in k.inst(t).kind.successors() {
                *preds.entry(c.block).or_default() += 1;
            }
        }
    }
    let entry = k.entry();
    let mut alias: HashMap<Value, Value> = HashMap::new();
    let mut merged: HashSet<Block> = HashSet::new();
    for &b in &k.layout.clone() {
        if merged.contains(&b) {
            continue;
        }
        while let Some(t) = k.terminator(b) {
            let InstKind::Jump(target) = k.inst(t).kind.clone() else {
                break;
            };
            let c = target.block;
            if c == b || c == entry || preds.get(&c) != Some(&1) || merged.contains(&c) {
                break;
            }
            for (&p, &a) in k.blocks[c.index()].params.iter().zip(&target.args) {
                alias.insert(p, a);
            }
            let moved = std::mem::take(&mut k.blocks[c.index()].insts);
            let block = &mut k.blocks[b.index()];
            block.insts.pop(); // the jump
            block.insts.extend(moved);
            merged.insert(c);
        }
    }
    if merged.is_empty() {
        return;
    }
    k.layout.retain(|b| !merged.contains(b));
    let resolve = |mut v: Value| {
        while let Some(&a) = alias.get(&v) {
            v = a;
        }
        v
    };
    for &b in &k.layout.clone() {
        for &inst in &k.blocks[b.index()].insts.clone() {
            k.insts[inst.index()].kind.map_operands(resolve);
        }
    }
}

/// The ids of kernels that no longer contain calls (for tests).
pub fn call_free(m: &Module) -> Vec<KernelId> {
    (0..m.kernels.len())
        .map(KernelId::new)
        .filter(|&id| {
            let k = m.kernel(id);
            k.layout.iter().all(|&b| {
                k.block(b)
                    .insts
                    .iter()
                    .all(|&i| !matches!(k.inst(i).kind, InstKind::Call(..)))
            })
        })
        .collect()
}
