//! The verifier: structural and type rules every kernel must satisfy before a pass, the
//! interpreter or a back end may rely on it.
//!
//! It runs in two phases, as naga's validator does: first every handle is checked against
//! its arena (so the second phase and all later code can index without checks), then the
//! rules: terminators, types, call signatures, and SSA dominance. A failure is an internal
//! compiler error ([`VerifierError`]) naming the kernel and entity: user mistakes are caught
//! by the front end, so reaching the verifier with bad IR is always a compiler bug.

use std::collections::HashSet;

use crate::cfg::Dominators;
use crate::entities::{Block, Inst, Value};
use crate::inst::{BinaryOp, InstKind, UnaryOp};
use crate::kernel::{Kernel, Module, ValueDef};
use crate::types::ScalarType;

/// An IR rule broken: a compiler bug, never a user error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("internal compiler error: invalid IR in kernel `{kernel}` at {location}: {message} (this is a compiler bug)")]
pub struct VerifierError {
    /// The kernel's name.
    pub kernel: String,
    /// The entity: `inst12`, `block3`, `v7`, or `kernel`.
    pub location: String,
    /// The rule broken.
    pub message: String,
}

/// Proof that a module passed [`verify`]; back ends take it so unverified IR cannot reach
/// code generation.
#[derive(Clone, Copy, Debug)]
pub struct Verified(());

/// Verifies every kernel of `m`.
pub fn verify(m: &Module) -> Result<Verified, VerifierError> {
    for k in &m.kernels {
        verify_kernel(m, k)?;
    }
    Ok(Verified(()))
}

struct Ctx<'a> {
    m: &'a Module,
    k: &'a Kernel,
}

impl Ctx<'_> {
    fn err(&self, location: impl ToString, message: impl Into<String>) -> VerifierError {
        VerifierError {
            kernel: self.k.name.clone(),
            location: location.to_string(),
            message: message.into(),
        }
    }

    fn ty(&self, v: Value) -> ScalarType {
        self.k.values[v.index()].ty
    }
}

/// Verifies one kernel in the context of its module (for call signatures).
pub fn verify_kernel(m: &Module, k: &Kernel) -> Result<(), VerifierError> {
    let cx = Ctx { m, k };
    check_handles(&cx)?;
    check_rules(&cx)
}

fn check_handles(cx: &Ctx<'_>) -> Result<(), VerifierError> {
    let k = cx.k;
    if k.insts.len() != k.locs.len() {
        return Err(cx.err(
            "kernel",
            "location table and instruction arena differ in length",
        ));
    }
    if k.layout.is_empty() {
        return Err(cx.err("kernel", "no entry block"));
    }
    let mut seen_blocks = HashSet::new();
    let mut seen_insts = HashSet::new();
    let value_ok = |v: Value| v.index() < k.values.len();
    for &b in &k.layout {
        if b.index() >= k.blocks.len() {
            return Err(cx.err(b, "block handle out of range"));
        }
        if !seen_blocks.insert(b) {
            return Err(cx.err(b, "block appears twice in the layout"));
        }
    }
    for &b in &k.layout {
        let data = &k.blocks[b.index()];
        for (i, &p) in data.params.iter().enumerate() {
            if !value_ok(p) || k.values[p.index()].def != ValueDef::Param(b, i as u32) {
                return Err(cx.err(
                    b,
                    format!("parameter {i} is not defined as this block's parameter"),
                ));
            }
        }
        for &inst in &data.insts {
            if inst.index() >= k.insts.len() {
                return Err(cx.err(inst, "instruction handle out of range"));
            }
            if !seen_insts.insert(inst) {
                return Err(cx.err(inst, "instruction linked twice"));
            }
            let idata = &k.insts[inst.index()];
            for (i, &r) in idata.results.iter().enumerate() {
                if !value_ok(r) || k.values[r.index()].def != ValueDef::Result(inst, i as u32) {
                    return Err(cx.err(
                        inst,
                        format!("result {i} is not defined by this instruction"),
                    ));
                }
            }
            for v in idata.kind.operands() {
                if !value_ok(v) {
                    return Err(cx.err(inst, format!("operand {v} out of range")));
                }
            }
            for c in idata.kind.successors() {
                if !seen_blocks.contains(&c.block) {
                    return Err(cx.err(
                        inst,
                        format!("jump to {} which is not in the layout", c.block),
                    ));
                }
            }
            if let InstKind::Call(id, _) = &idata.kind {
                if id.index() >= cx.m.kernels.len() {
                    return Err(cx.err(inst, format!("call of unknown {id}")));
                }
            }
        }
    }
    Ok(())
}

fn check_rules(cx: &Ctx<'_>) -> Result<(), VerifierError> {
    let k = cx.k;
    let entry = k.entry();
    let entry_types: Vec<ScalarType> = k.blocks[entry.index()]
        .params
        .iter()
        .map(|&p| cx.ty(p))
        .collect();
    if entry_types != k.params {
        return Err(cx.err(
            entry,
            "entry block parameters differ from the kernel's parameters",
        ));
    }
    for &b in &k.layout {
        let insts = &k.blocks[b.index()].insts;
        let Some((&last, body)) = insts.split_last() else {
            return Err(cx.err(b, "empty block (every block needs a terminator)"));
        };
        if !k.insts[last.index()].kind.is_terminator() {
            return Err(cx.err(b, "block does not end with a terminator"));
        }
        for &inst in body {
            if k.insts[inst.index()].kind.is_terminator() {
                return Err(cx.err(inst, "terminator in the middle of a block"));
            }
        }
        for &inst in insts {
            check_inst(cx, inst)?;
        }
    }
    check_dominance(cx)
}

fn check_block_call(
    cx: &Ctx<'_>,
    inst: Inst,
    c: &crate::inst::BlockCall,
) -> Result<(), VerifierError> {
    if c.block == cx.k.entry() {
        return Err(cx.err(inst, "jump to the entry block"));
    }
    let params = &cx.k.blocks[c.block.index()].params;
    if params.len() != c.args.len() {
        return Err(cx.err(
            inst,
            format!(
                "{} takes {} arguments, given {}",
                c.block,
                params.len(),
                c.args.len()
            ),
        ));
    }
    for (&p, &a) in params.iter().zip(&c.args) {
        if cx.ty(p) != cx.ty(a) {
            return Err(cx.err(
                inst,
                format!(
                    "argument {a} has type {}, {} expects {}",
                    cx.ty(a),
                    c.block,
                    cx.ty(p)
                ),
            ));
        }
    }
    Ok(())
}

fn check_inst(cx: &Ctx<'_>, inst: Inst) -> Result<(), VerifierError> {
    let k = cx.k;
    let data = &k.insts[inst.index()];
    let rtys: Vec<ScalarType> = data.results.iter().map(|&r| cx.ty(r)).collect();
    let one_result = |expect: ScalarType| -> Result<(), VerifierError> {
        if rtys != [expect] {
            return Err(cx.err(
                inst,
                format!("expected one result of type {expect}, found {rtys:?}"),
            ));
        }
        Ok(())
    };
    let no_results = || -> Result<(), VerifierError> {
        if !rtys.is_empty() {
            return Err(cx.err(inst, "this instruction has no results"));
        }
        Ok(())
    };
    match &data.kind {
        InstKind::Const(c) => one_result(c.ty()),
        InstKind::Unary(op, x) => {
            let t = cx.ty(*x);
            let ok = match op {
                UnaryOp::Neg | UnaryOp::Abs => t.is_numeric(),
                UnaryOp::Not => t.is_int() || t == ScalarType::Bool,
                _ => t.is_float(),
            };
            if !ok {
                return Err(cx.err(inst, format!("`{}` does not apply to {t}", op.name())));
            }
            one_result(if op.is_predicate() {
                ScalarType::Bool
            } else {
                t
            })
        }
        InstKind::Binary(op, a, b) => {
            let (ta, tb) = (cx.ty(*a), cx.ty(*b));
            if op.is_shift() {
                if !ta.is_int() || !tb.is_int() {
                    return Err(cx.err(inst, "shift operands must be integers"));
                }
                return one_result(ta);
            }
            if ta != tb {
                return Err(cx.err(inst, format!("operand types differ: {ta} and {tb}")));
            }
            let ok = match op {
                BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => {
                    ta.is_int() || ta == ScalarType::Bool
                }
                BinaryOp::Eq
                | BinaryOp::Ne
                | BinaryOp::Lt
                | BinaryOp::Le
                | BinaryOp::Gt
                | BinaryOp::Ge => true,
                BinaryOp::Atan2 | BinaryOp::Pow | BinaryOp::Hypot | BinaryOp::Copysign => {
                    ta.is_float()
                }
                BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::Div
                | BinaryOp::Rem
                | BinaryOp::Min
                | BinaryOp::Max
                | BinaryOp::Shl
                | BinaryOp::Shr => ta.is_numeric(),
            };
            if !ok {
                return Err(cx.err(inst, format!("`{}` does not apply to {ta}", op.name())));
            }
            one_result(if op.is_comparison() {
                ScalarType::Bool
            } else {
                ta
            })
        }
        InstKind::Fma(a, b, c) => {
            let t = cx.ty(*a);
            if !t.is_float() || cx.ty(*b) != t || cx.ty(*c) != t {
                return Err(cx.err(inst, "fma needs three operands of one float type"));
            }
            one_result(t)
        }
        InstKind::Select(c, a, b) => {
            if cx.ty(*c) != ScalarType::Bool || cx.ty(*a) != cx.ty(*b) {
                return Err(cx.err(inst, "select needs a bool and two operands of one type"));
            }
            one_result(cx.ty(*a))
        }
        InstKind::Cast(_) => {
            if rtys.len() != 1 || rtys[0] == ScalarType::Bool {
                return Err(cx.err(inst, "a cast has one numeric result"));
            }
            Ok(())
        }
        InstKind::Bitcast(x) => {
            use ScalarType::*;
            match (cx.ty(*x), rtys.as_slice()) {
                (F32, [U32]) | (U32, [F32]) | (F64, [U64]) | (U64, [F64]) => Ok(()),
                _ => Err(cx.err(inst, "a bitcast maps f32 ↔ u32 or f64 ↔ u64")),
            }
        }
        InstKind::Call(id, args) => {
            let callee = cx.m.kernel(*id);
            let atys: Vec<ScalarType> = args.iter().map(|&a| cx.ty(a)).collect();
            if atys != callee.params {
                return Err(cx.err(
                    inst,
                    format!(
                        "call of `{}` with arguments {atys:?}, expected {:?}",
                        callee.name, callee.params
                    ),
                ));
            }
            if rtys != callee.results {
                return Err(cx.err(
                    inst,
                    format!(
                        "call of `{}` has results {rtys:?}, expected {:?}",
                        callee.name, callee.results
                    ),
                ));
            }
            Ok(())
        }
        InstKind::Assert(c) => {
            if cx.ty(*c) != ScalarType::Bool {
                return Err(cx.err(inst, "assert needs a bool"));
            }
            no_results()
        }
        InstKind::Jump(t) => {
            check_block_call(cx, inst, t)?;
            no_results()
        }
        InstKind::Branch(c, t, e) => {
            if cx.ty(*c) != ScalarType::Bool {
                return Err(cx.err(inst, "branch condition must be a bool"));
            }
            check_block_call(cx, inst, t)?;
            check_block_call(cx, inst, e)?;
            no_results()
        }
        InstKind::Return(vs) => {
            let tys: Vec<ScalarType> = vs.iter().map(|&v| cx.ty(v)).collect();
            if tys != k.results {
                return Err(cx.err(
                    inst,
                    format!("returns {tys:?}, the kernel returns {:?}", k.results),
                ));
            }
            no_results()
        }
    }
}

/// Every use in a reachable block is dominated by its definition. Uses in unreachable blocks
/// are not checked: such blocks never run, and passes remove them.
fn check_dominance(cx: &Ctx<'_>) -> Result<(), VerifierError> {
    let k = cx.k;
    let doms = Dominators::compute(k);
    // Position of each linked instruction: (block, index in block).
    let mut pos = std::collections::HashMap::new();
    for &b in &k.layout {
        for (i, &inst) in k.blocks[b.index()].insts.iter().enumerate() {
            pos.insert(inst, (b, i));
        }
    }
    let linked: HashSet<Block> = k.layout.iter().copied().collect();
    for &b in &k.layout {
        if !doms.is_reachable(b) {
            continue;
        }
        for (i, &inst) in k.blocks[b.index()].insts.iter().enumerate() {
            for v in k.insts[inst.index()].kind.operands() {
                let ok = match k.values[v.index()].def {
                    ValueDef::Param(pb, _) => {
                        linked.contains(&pb) && doms.is_reachable(pb) && doms.dominates(pb, b)
                    }
                    ValueDef::Result(di, _) => match pos.get(&di) {
                        Some(&(db, dj)) if db == b => dj < i,
                        Some(&(db, _)) => doms.is_reachable(db) && doms.dominates(db, b),
                        None => false,
                    },
                };
                if !ok {
                    return Err(cx.err(
                        inst,
                        format!("use of {v} is not dominated by its definition"),
                    ));
                }
            }
        }
    }
    Ok(())
}
