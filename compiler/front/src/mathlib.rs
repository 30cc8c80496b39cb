//! Kiln's math library: the transcendental builtins, written in Kiln (`kernels/math/`).
//!
//! A call of a builtin such as `exp` on an `f64` lowers to a call of the library function
//! `exp_f64`, copied (with everything it calls) into the module being built under the name
//! `math.exp_f64`. Every executor — the reference interpreter, the CPU's scalar and SIMD
//! loops, the GPU — therefore runs the same algorithm, operation for operation, and they
//! agree bit for bit. The optimiser inlines library functions like any `fn`.
//!
//! The library is parsed, checked and lowered once per process. Conventions for its
//! sources (see `kernels/math/README.md`):
//! - the function implementing builtin `NAME` for type `T` is the `fn` called `NAME_T`
//!   (`exp_f32`, `atan2_f64`, `ldexp_f64(x: f64, n: i32)`); a builtin with no such function
//!   stays a host `libm` call;
//! - inside the library a builtin call resolves to the library function too, except inside
//!   that function itself, where it means the host `libm` routine: `sin_f64` may call
//!   `sin(x)` as its fallback for arguments it does not reduce itself.

use std::collections::HashMap;
use std::sync::OnceLock;

use kiln_ir::{InstKind, KernelId, Module, ScalarType};

use crate::{check, Lowerer};

/// The library's sources, in the order they are concatenated.
pub const SOURCES: [(&str, &str); 9] = [
    (
        "support.kl",
        include_str!("../../../kernels/math/support.kl"),
    ),
    ("exp.kl", include_str!("../../../kernels/math/exp.kl")),
    ("log.kl", include_str!("../../../kernels/math/log.kl")),
    ("trig.kl", include_str!("../../../kernels/math/trig.kl")),
    (
        "invtrig.kl",
        include_str!("../../../kernels/math/invtrig.kl"),
    ),
    ("hyper.kl", include_str!("../../../kernels/math/hyper.kl")),
    ("pow.kl", include_str!("../../../kernels/math/pow.kl")),
    ("erf.kl", include_str!("../../../kernels/math/erf.kl")),
    ("fmod.kl", include_str!("../../../kernels/math/fmod.kl")),
];

/// The lowered library.
#[derive(Debug)]
pub struct MathLib {
    /// Every library function, lowered (not optimised).
    pub module: Module,
    /// Functions by name (`exp_f64`).
    pub fns: HashMap<String, KernelId>,
}

/// The whole library source, as one file.
pub fn source() -> String {
    SOURCES
        .iter()
        .map(|(name, src)| format!("// ---- kernels/math/{name}\n{src}\n"))
        .collect()
}

/// Builds the library: `Err` holds the rendered diagnostics (a bug in the library, caught by
/// its tests).
pub fn build() -> Result<MathLib, String> {
    let src = source();
    let (ast, errors) = kiln_syntax::parse(&src);
    let render = |diags: &[crate::Diag]| {
        diags
            .iter()
            .map(|d| {
                let at = d.labels.first().map_or(0, |l| l.range.start);
                let lc = kiln_syntax::LineCol::of(&src, at);
                format!("line {}:{}: {}", lc.line, lc.col, d.message)
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    if let Some(e) = errors.first() {
        return Err(format!("math library: syntax error: {e:?}"));
    }
    let (program, diags) = check(0, &src, &ast);
    if !diags.is_empty() {
        return Err(format!("math library: {}", render(&diags)));
    }
    let mut lw = Lowerer::library(&program);
    let mut fns = HashMap::new();
    let mut names: Vec<(&String, _)> = program.item_ids.iter().collect();
    names.sort_by_key(|(_, id)| id.0);
    for (name, &id) in names {
        let k = lw.item(id, &[]).map_err(|d| render(&d))?;
        fns.insert(name.clone(), k);
    }
    Ok(MathLib {
        module: lw.finish(),
        fns,
    })
}

/// The process's library, built on first use; `None` if it failed to build (a compiler
/// bug: builtins then stay host `libm` calls).
pub fn library() -> Option<&'static MathLib> {
    static LIB: OnceLock<Option<MathLib>> = OnceLock::new();
    LIB.get_or_init(|| build().ok()).as_ref()
}

/// The library function's name for builtin `name` at type `t`: `exp_f64`.
pub fn fn_name(name: &str, t: ScalarType) -> String {
    format!("{name}_{}", t.name())
}

/// Copies library kernel `id` and its callees into `into` (once: `imported` remembers
/// them), callees first so that the inliner sees them before their callers.
pub fn import(
    lib: &MathLib,
    id: KernelId,
    into: &mut Module,
    imported: &mut HashMap<KernelId, KernelId>,
) -> KernelId {
    if let Some(&k) = imported.get(&id) {
        return k;
    }
    let mut k = lib.module.kernel(id).clone();
    // Only the calls still in the kernel's blocks: those the optimiser inlined stay in the
    // instruction arena, dead, and must not drag their callees along.
    let live: std::collections::HashSet<kiln_ir::Inst> = k
        .layout
        .iter()
        .flat_map(|&b| k.block(b).insts.iter().copied())
        .collect();
    for (i, inst) in k.insts.iter_mut().enumerate() {
        if let InstKind::Call(callee, _) = &mut inst.kind {
            if live.contains(&kiln_ir::Inst::new(i)) {
                *callee = import(lib, *callee, into, imported);
            } else {
                inst.kind = InstKind::Return(Vec::new());
            }
        }
    }
    // Library code has no runtime errors to point at, and its locations would name the
    // library's text rather than the user's.
    k.locs.iter_mut().for_each(|l| *l = None);
    k.name = format!("math.{}", k.name);
    k.kind = kiln_ir::KernelKind::Library;
    let new = into.push(k);
    imported.insert(id, new);
    new
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_library_builds() {
        if let Err(e) = super::build() {
            panic!("{e}");
        }
    }
}
