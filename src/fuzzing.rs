//! The body of the `pipeline` fuzz target, here so that tests can replay crashers.
//!
//! One input runs the whole pipeline: lex → parse → check → lower → verify → optimise →
//! interpret. Every kernel is called on the IR as lowered and on the optimised IR with
//! arguments derived from the input, and the two must agree (differential testing of the
//! optimiser); the script runs under a step budget. Errors are fine; panics, hangs and
//! disagreements are bugs.

use kiln_interp::{ErrorKind, Fuel};
use kiln_ir::{Scalar, ScalarType};

/// Instructions per kernel call and statements per script: small, so that endless loops end
/// quickly.
pub const FUEL: u64 = 20_000;

fn args_for(params: &[ScalarType], seed: u64) -> Vec<Scalar> {
    params
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let bits = match (seed + i as u64) % 6 {
                0 => 0,
                1 => 1,
                2 => u64::MAX,
                3 => 0x8000_0000_0000_0000,
                4 => 0x3ff0_0000_0000_0000,
                _ => seed
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .rotate_left(i as u32),
            };
            match t {
                ScalarType::F32 => Scalar::F32(f32::from_bits(bits as u32 ^ (bits >> 32) as u32)),
                _ => Scalar::from_bits(t, bits),
            }
        })
        .collect()
}

/// Runs one input through everything. Panics only on a bug (a disagreement between the
/// lowered and optimised IR, or a panic inside the pipeline).
pub fn pipeline(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(compiled) = crate::compile("fuzz.kl", src) else {
        return;
    };
    let seed = data
        .iter()
        .fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(b as u64));
    for (i, k) in compiled.module.kernels.iter().enumerate() {
        let Some(opt_id) = compiled.optimized.find(&k.name) else {
            continue;
        };
        for round in 0..3 {
            let args = args_for(&k.params, seed.wrapping_add(round));
            let a = kiln_interp::call(
                &compiled.module,
                kiln_ir::KernelId::new(i),
                &args,
                &mut Fuel(FUEL),
            );
            let b = kiln_interp::call(&compiled.optimized, opt_id, &args, &mut Fuel(FUEL));
            let fuel_out = |r: &Result<Vec<Scalar>, kiln_interp::RuntimeError>| matches!(r, Err(e) if e.kind == ErrorKind::OutOfFuel);
            if fuel_out(&a) || fuel_out(&b) {
                continue;
            }
            let agree = match (&a, &b) {
                (Ok(x), Ok(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.same(*q)),
                (Err(x), Err(y)) => x.kind == y.kind && x.loc == y.loc,
                _ => false,
            };
            assert!(
                agree,
                "kernel `{}` with {args:?}: lowered IR gave {a:?}, optimised IR gave {b:?}",
                k.name
            );
        }
    }
    let exec = kiln_runtime::Interpreter::new(FUEL);
    let mut ev = crate::script::Evaluator::new(&compiled, &exec).with_step_budget(FUEL);
    let _ = ev.run(&mut std::io::sink());
}
