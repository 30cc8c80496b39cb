//! The IR's text form.
//!
//! Numbering is stable: blocks are numbered in layout order and values in definition order
//! (each block's parameters, then each instruction's results), so the text of a kernel does
//! not depend on arena indices left behind by passes. This is what snapshots pin.
//!
//! ```text
//! ufunc axpy<f64>(f64, f64, f64) -> f64 {
//! block0(v0: f64, v1: f64, v2: f64):
//!     v3: f64 = mul v0, v1
//!     v4: f64 = add v3, v2
//!     return v4
//! }
//! ```

use std::collections::HashMap;
use std::fmt::{self, Write};

use crate::entities::{Block, Value};
use crate::inst::{BlockCall, InstKind};
use crate::kernel::{Kernel, Module};

/// Writes every kernel of `m`, separated by blank lines.
pub fn write_module(m: &Module) -> String {
    let mut out = String::new();
    for (i, k) in m.kernels.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        write_kernel_to(&mut out, k, |id| m.kernels.get(id).map(|k| k.name.clone()))
            .expect("writing to a String cannot fail");
    }
    out
}

/// Writes one kernel; calls are shown with the callee's index only.
pub fn write_kernel(k: &Kernel) -> String {
    let mut out = String::new();
    write_kernel_to(&mut out, k, |_| None).expect("writing to a String cannot fail");
    out
}

struct Names {
    values: HashMap<Value, usize>,
    blocks: HashMap<Block, usize>,
}

impl Names {
    fn of(k: &Kernel) -> Names {
        let mut values = HashMap::new();
        let mut blocks = HashMap::new();
        for (bi, &b) in k.layout.iter().enumerate() {
            blocks.insert(b, bi);
            let data = &k.blocks[b.index()];
            for &p in &data.params {
                let n = values.len();
                values.insert(p, n);
            }
            for &inst in &data.insts {
                for &r in &k.insts[inst.index()].results {
                    let n = values.len();
                    values.insert(r, n);
                }
            }
        }
        Names { values, blocks }
    }

    fn v(&self, v: Value) -> String {
        match self.values.get(&v) {
            Some(n) => format!("v{n}"),
            None => format!("v?{}", v.0),
        }
    }

    fn b(&self, b: Block) -> String {
        match self.blocks.get(&b) {
            Some(n) => format!("block{n}"),
            None => format!("block?{}", b.0),
        }
    }

    fn list(&self, vs: &[Value]) -> String {
        vs.iter().map(|&v| self.v(v)).collect::<Vec<_>>().join(", ")
    }

    fn call(&self, c: &BlockCall) -> String {
        if c.args.is_empty() {
            self.b(c.block)
        } else {
            format!("{}({})", self.b(c.block), self.list(&c.args))
        }
    }
}

fn write_kernel_to(
    out: &mut String,
    k: &Kernel,
    callee_name: impl Fn(usize) -> Option<String>,
) -> fmt::Result {
    let names = Names::of(k);
    let params: Vec<&str> = k.params.iter().map(|t| t.name()).collect();
    let results: Vec<&str> = k.results.iter().map(|t| t.name()).collect();
    write!(
        out,
        "{} {}({})",
        k.kind.keyword(),
        k.name,
        params.join(", ")
    )?;
    match results.len() {
        0 => {}
        1 => write!(out, " -> {}", results[0])?,
        _ => write!(out, " -> ({})", results.join(", "))?,
    }
    writeln!(out, " {{")?;
    for &b in &k.layout {
        let data = &k.blocks[b.index()];
        let params: Vec<String> = data
            .params
            .iter()
            .map(|&p| format!("{}: {}", names.v(p), k.value_type(p)))
            .collect();
        if params.is_empty() {
            writeln!(out, "{}:", names.b(b))?;
        } else {
            writeln!(out, "{}({}):", names.b(b), params.join(", "))?;
        }
        for &inst in &data.insts {
            let idata = &k.insts[inst.index()];
            out.push_str("    ");
            if !idata.results.is_empty() {
                let rs: Vec<String> = idata
                    .results
                    .iter()
                    .map(|&r| format!("{}: {}", names.v(r), k.value_type(r)))
                    .collect();
                write!(out, "{} = ", rs.join(", "))?;
            }
            match &idata.kind {
                InstKind::Const(c) => write!(out, "const {c}")?,
                InstKind::Unary(op, x) => write!(out, "{} {}", op.name(), names.v(*x))?,
                InstKind::Binary(op, a, b) => {
                    write!(out, "{} {}, {}", op.name(), names.v(*a), names.v(*b))?
                }
                InstKind::Fma(a, b, c) => write!(out, "fma {}", names.list(&[*a, *b, *c]))?,
                InstKind::Select(a, b, c) => write!(out, "select {}", names.list(&[*a, *b, *c]))?,
                InstKind::Cast(x) => write!(out, "cast {}", names.v(*x))?,
                InstKind::Bitcast(x) => write!(out, "bitcast {}", names.v(*x))?,
                InstKind::Call(id, args) => {
                    let callee = callee_name(id.index()).unwrap_or_else(|| id.to_string());
                    write!(out, "call {callee}({})", names.list(args))?
                }
                InstKind::Assert(x) => write!(out, "assert {}", names.v(*x))?,
                InstKind::Jump(t) => write!(out, "jump {}", names.call(t))?,
                InstKind::Branch(c, t, e) => write!(
                    out,
                    "br {}, {}, {}",
                    names.v(*c),
                    names.call(t),
                    names.call(e)
                )?,
                InstKind::Return(vs) => {
                    if vs.is_empty() {
                        out.push_str("return")
                    } else {
                        write!(out, "return {}", names.list(vs))?
                    }
                }
            }
            let traps = matches!(idata.kind, InstKind::Assert(_))
                || matches!(idata.kind, InstKind::Binary(op, a, _) if op.can_trap() && k.value_type(a).is_int());
            if let (true, Some(loc)) = (traps, k.locs.get(inst.index()).copied().flatten()) {
                write!(out, "  ; @{loc}")?;
            }
            out.push('\n');
        }
    }
    writeln!(out, "}}")
}
