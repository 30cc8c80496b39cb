//! Cache keys: an exact encoding of everything compiled code depends on.
//!
//! The key of a set of root kernels is each root and every kernel it calls (transitively),
//! encoded field by field into `u64` words: every list is prefixed by its length and every
//! enum by a tag, so two keys are equal exactly when the IR they describe is the same
//! (constants compared by their bits, source locations included, since error messages quote
//! them). Names carry a specialisation's dtypes and constants are part of the IR, so a
//! kernel whose source, callees, constants or dtypes changed gets a different key: a stale
//! entry can never be returned. Back ends prefix what else their code depends on (the entry
//! shape, the target). Encoding is a few hundred nanoseconds for a typical kernel, against
//! microseconds for printing the IR.

use crate::{InstKind, Kernel, KernelId, Module};

/// Appends to `out` the encoding of `roots` of `m` and every kernel they call.
pub fn encode(m: &Module, roots: &[KernelId], out: &mut Vec<u64>) {
    let mut seen = vec![false; m.kernels.len()];
    let mut stack: Vec<KernelId> = roots.iter().rev().copied().collect();
    while let Some(k) = stack.pop() {
        if std::mem::replace(&mut seen[k.index()], true) {
            continue;
        }
        out.push(k.0 as u64);
        let kernel = m.kernel(k);
        kernel_words(kernel, out);
        for &b in &kernel.layout {
            for &inst in &kernel.block(b).insts {
                if let InstKind::Call(callee, _) = kernel.inst(inst).kind {
                    stack.push(callee);
                }
            }
        }
    }
}

fn list(out: &mut Vec<u64>, items: impl ExactSizeIterator<Item = u64>) {
    out.push(items.len() as u64);
    out.extend(items);
}

fn kernel_words(k: &Kernel, out: &mut Vec<u64>) {
    let name = k.name.as_bytes();
    out.push(name.len() as u64);
    out.extend(name.chunks(8).map(|c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(w)
    }));
    out.push(k.kind as u64);
    list(out, k.params.iter().map(|&t| t as u64));
    list(out, k.results.iter().map(|&t| t as u64));
    let ty = |v: crate::Value| k.value_type(v) as u64;
    out.push(k.layout.len() as u64);
    for &b in &k.layout {
        out.push(b.0 as u64);
        let data = k.block(b);
        list(
            out,
            data.params
                .iter()
                .flat_map(|&p| [p.0 as u64, ty(p)])
                .collect::<Vec<_>>()
                .into_iter(),
        );
        out.push(data.insts.len() as u64);
        for &inst in &data.insts {
            let d = k.inst(inst);
            inst_words(&d.kind, out);
            list(
                out,
                d.results
                    .iter()
                    .flat_map(|&r| [r.0 as u64, ty(r)])
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            match k.locs[inst.index()] {
                Some(l) => out.extend([1, l.line as u64, l.col as u64, l.len as u64]),
                None => out.push(0),
            }
        }
    }
}

fn inst_words(kind: &InstKind, out: &mut Vec<u64>) {
    let vals = |out: &mut Vec<u64>, vs: &[crate::Value]| list(out, vs.iter().map(|v| v.0 as u64));
    let call = |out: &mut Vec<u64>, bc: &crate::BlockCall| {
        out.push(bc.block.0 as u64);
        vals(out, &bc.args);
    };
    match kind {
        InstKind::Const(c) => out.extend([0, c.ty() as u64, c.to_bits()]),
        InstKind::Unary(op, x) => out.extend([1, *op as u64, x.0 as u64]),
        InstKind::Binary(op, a, b) => out.extend([2, *op as u64, a.0 as u64, b.0 as u64]),
        InstKind::Fma(a, b, c) => out.extend([3, a.0 as u64, b.0 as u64, c.0 as u64]),
        InstKind::Select(c, a, b) => out.extend([4, c.0 as u64, a.0 as u64, b.0 as u64]),
        InstKind::Cast(x) => out.extend([5, x.0 as u64]),
        InstKind::Bitcast(x) => out.extend([11, x.0 as u64]),
        InstKind::Call(k, args) => {
            out.extend([6, k.0 as u64]);
            vals(out, args);
        }
        InstKind::Assert(c) => out.extend([7, c.0 as u64]),
        InstKind::Jump(t) => {
            out.push(8);
            call(out, t);
        }
        InstKind::Branch(c, t, e) => {
            out.extend([9, c.0 as u64]);
            call(out, t);
            call(out, e);
        }
        InstKind::Return(vs) => {
            out.push(10);
            vals(out, vs);
        }
    }
}
