//! Constant evaluation: every `const` is computed once, when its file is compiled, and each
//! use is lowered to the value.
//!
//! Lowering used to expand a const's initialiser at every use, and with it the initialisers
//! of the consts it reads: 24 lines of `const C{i}: i64 = C{i-1} + C{i-1};` made 2^24 copies,
//! and a plain chain of 4,000 grew quadratically. Now [`evaluate`] walks the consts in
//! [`Program::const_order`] (each after everything it depends on), lowers each initialiser
//! once with the consts before it as literals, and runs it on the reference interpreter.
//! The interpreter is the oracle every executor agrees with bit for bit, so the folded
//! value is the one each executor would have computed. (Fast math, which lets native code
//! contract `a * b + c`, does not apply: a const is computed as written.)
//!
//! A const whose initialiser fails (`1 / 0`, a failed `assert`, a loop that takes the
//! consts past [`FUEL`] steps in all) is a compile error at the failing operation, as in
//! Rust, whether or not anything uses it.

use kiln_interp::Fuel;
use kiln_ir::{Scalar, SourceLoc};

use crate::diag::{self, Diag};
use crate::mathlib::MathLib;
use crate::{ConstId, Lowerer, Program};

/// Every const's value by [`ConstId`], or the errors that stopped evaluation.
pub type Values = Result<Vec<Vec<Scalar>>, Vec<Diag>>;

/// The most IR instructions the consts of one program may execute, all together (so that a
/// file of many slow consts cannot stall the compiler either).
pub const FUEL: u64 = 10_000_000;

/// Evaluates every const of `p`, lowering with the math library `math` (or, for the
/// library's own program, `library`).
pub fn evaluate(p: &Program, library: bool, math: Option<&'static MathLib>) -> Values {
    let mut values: Vec<Option<Vec<Scalar>>> = vec![None; p.consts.len()];
    let mut errors = Vec::new();
    let mut fuel = Fuel(FUEL);
    for &id in &p.const_order {
        if fuel.0 == 0 {
            // The budget is spent: the const that spent it has its error, and the rest are
            // not evaluated.
            break;
        }
        let c = &p.consts[id.0 as usize];
        let (module, kernel) = {
            let mut lw = Lowerer::evaluating(p, library, math, &values);
            let kernel = match lw.constant(id) {
                Ok(k) => k,
                Err(d) => {
                    errors.extend(d);
                    continue;
                }
            };
            if lw.missing_const() {
                // It reads a const that failed: that one's error is enough.
                continue;
            }
            (lw.finish(), kernel)
        };
        if let Err(e) = kiln_ir::verify(&module) {
            errors.push(diag::error(
                p.file,
                c.span,
                format!(
                    "internal error evaluating `{}`: {e} (this is a Kiln bug)",
                    c.name
                ),
                "in this const",
            ));
            continue;
        }
        match kiln_interp::call(&module, kernel, &[], &mut fuel) {
            Ok(v) => values[id.0 as usize] = Some(v),
            Err(e) => {
                let why = match e.kind {
                    kiln_interp::ErrorKind::OutOfFuel => {
                        fuel.0 = 0;
                        format!(
                            "the consts run for more than {FUEL} steps in all (a loop that does not end?)"
                        )
                    }
                    kind => kind.to_string(),
                };
                // The error is the const's: at the failing operation when it is in the
                // initialiser, else at the initialiser, with the operation (in a `fn` the
                // initialiser calls) as a second label.
                let init = c.value.span;
                let msg = format!("cannot evaluate const `{}`: {why}", c.name);
                let at = e.loc.and_then(|l| span_of(p, l));
                let d = match at {
                    Some(at) if at.start >= init.start && at.end <= init.end => {
                        diag::error(p.file, at, msg, "fails when the file is compiled")
                    }
                    Some(at) => diag::also(
                        diag::error(p.file, init, msg, "evaluated when the file is compiled"),
                        p.file,
                        at,
                        why,
                    ),
                    None => diag::error(p.file, init, msg, "evaluated when the file is compiled"),
                };
                errors.push(d);
            }
        }
    }
    if errors.is_empty() {
        Ok(values
            .into_iter()
            .map(|v| v.expect("every const is evaluated when none failed"))
            .collect())
    } else {
        Err(errors)
    }
}

/// The byte range of `loc` in `p`'s source, if it lies there.
fn span_of(p: &Program, loc: SourceLoc) -> Option<kiln_syntax::Span> {
    let start = *p.line_starts.get((loc.line as usize).checked_sub(1)?)?;
    let line = p.src.get(start..)?;
    let offset = start
        + line
            .char_indices()
            .nth(loc.col.saturating_sub(1) as usize)
            .map_or(line.len(), |(i, _)| i);
    let end = (offset + loc.len.max(1) as usize).min(p.src.len());
    Some(kiln_syntax::Span::new(offset, end.max(offset)))
}

/// The value lowered in place of a const that could not be evaluated (its error is
/// reported; the kernel is never run).
pub(crate) fn placeholder(p: &Program, id: ConstId) -> Vec<Scalar> {
    p.consts[id.0 as usize]
        .ty
        .flatten(&[])
        .into_iter()
        .map(|t| Scalar::from_bits(t, 0))
        .collect()
}
