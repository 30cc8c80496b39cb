//! `kiln-ir`: Kiln's typed SSA intermediate representation.
//!
//! Every back end (the reference interpreter, Cranelift, NVPTX) consumes this IR and nothing
//! else. Design, after Cranelift and naga:
//! - entities are `u32` handles into per-kernel arenas ([`entities`]); side tables such as
//!   source locations are indexed by handle, never stored in `Rc<RefCell<_>>` trees;
//! - SSA with block parameters instead of phi instructions;
//! - values have scalar types only; tuples are several values;
//! - every operator's semantics is pinned down in [`inst`] and implemented once, by the
//!   reference interpreter (`kiln-interp`), which is the oracle for the other back ends;
//! - a text form with stable numbering ([`write`](mod@write)) and a verifier ([`verify`](mod@verify)) that runs after
//!   lowering and after every pass in tests.
#![warn(missing_docs)]

pub mod cfg;
pub mod entities;
pub mod inst;
pub mod kernel;
pub mod key;
pub mod read;
pub mod reduce;
pub mod types;
pub mod verify;
pub mod write;

pub use entities::{Block, Inst, KernelId, Value};
pub use inst::{BinaryOp, BlockCall, InstKind, UnaryOp};
pub use kernel::{BlockData, InstData, Kernel, KernelKind, Module, SourceLoc, ValueData, ValueDef};
pub use read::parse_module;
pub use reduce::{commutative_combine, REDUCE_LANES};
pub use types::{Scalar, ScalarType};
pub use verify::{verify, verify_kernel, Verified, VerifierError};
pub use write::{write_kernel, write_module};

#[cfg(test)]
mod tests {
    use super::*;

    /// `fn f(x: i64) -> i64 { if x < 0 { -x } else { x } }`, built by hand.
    fn abs_kernel() -> Kernel {
        let mut k = Kernel::new(
            "f",
            KernelKind::Fn,
            vec![ScalarType::I64],
            vec![ScalarType::I64],
        );
        let entry = k.entry();
        let x = k.block(entry).params[0];
        let neg = k.create_block();
        let join = k.create_block();
        let r = k.append_block_param(join, ScalarType::I64);
        let zero = k.append_inst(
            entry,
            InstKind::Const(Scalar::I64(0)),
            &[ScalarType::I64],
            None,
        );
        let zero = k.inst(zero).results[0];
        let c = k.append_inst(
            entry,
            InstKind::Binary(BinaryOp::Lt, x, zero),
            &[ScalarType::Bool],
            None,
        );
        let c = k.inst(c).results[0];
        k.append_inst(
            entry,
            InstKind::Branch(
                c,
                BlockCall {
                    block: neg,
                    args: vec![],
                },
                BlockCall {
                    block: join,
                    args: vec![x],
                },
            ),
            &[],
            None,
        );
        let n = k.append_inst(
            neg,
            InstKind::Unary(UnaryOp::Neg, x),
            &[ScalarType::I64],
            None,
        );
        let n = k.inst(n).results[0];
        k.append_inst(
            neg,
            InstKind::Jump(BlockCall {
                block: join,
                args: vec![n],
            }),
            &[],
            None,
        );
        k.append_inst(join, InstKind::Return(vec![r]), &[], None);
        k
    }

    #[test]
    fn prints_with_stable_numbers() {
        let k = abs_kernel();
        let text = write_kernel(&k);
        assert_eq!(
            text,
            "fn f(i64) -> i64 {
block0(v0: i64):
    v1: i64 = const 0
    v2: bool = lt v0, v1
    br v2, block1, block2(v0)
block1:
    v3: i64 = neg v0
    jump block2(v3)
block2(v4: i64):
    return v4
}
"
        );
    }

    #[test]
    fn verifier_accepts_and_rejects() {
        let mut m = Module::default();
        m.push(abs_kernel());
        assert!(verify(&m).is_ok());

        // A use not dominated by its definition: return v3 (defined in block1) from block2.
        let mut bad = abs_kernel();
        let join = bad.layout[2];
        let neg_result = bad.insts[3].results[0];
        let ret = bad.blocks[join.index()].insts[0];
        bad.insts[ret.index()].kind = InstKind::Return(vec![neg_result]);
        let m = Module { kernels: vec![bad] };
        let e = verify(&m).expect_err("dominance violated");
        assert!(e.message.contains("not dominated"), "{e}");

        // A type error: adding an i64 and a bool.
        let mut bad = abs_kernel();
        let entry = bad.entry();
        let x = bad.block(entry).params[0];
        let c = bad.insts[1].results[0];
        let add = bad.create_inst(
            InstKind::Binary(BinaryOp::Add, x, c),
            &[ScalarType::I64],
            None,
        );
        bad.blocks[entry.index()].insts.insert(2, add);
        let e = verify(&Module { kernels: vec![bad] }).expect_err("type error");
        assert!(e.message.contains("differ"), "{e}");
    }
}
