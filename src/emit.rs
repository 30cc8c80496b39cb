//! The compiler's stages as text: `kiln emit` and the REPL's `:ir`, `:clif`, `:asm`, `:ptx`.

use kiln_cranelift::Shape;
use kiln_ir::KernelKind;

use crate::{Error, ScalarType};

/// A stage of the compiler to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// The syntax tree.
    Ast,
    /// IR as lowered.
    Ir,
    /// IR after the optimisation pipeline.
    Opt,
    /// Cranelift IR of the native entry points (a ufunc's loop, a reduction's loop, a
    /// `fn`'s scalar entry).
    Clif,
    /// Disassembled machine code of the same.
    Asm,
    /// LLVM IR of the GPU entry points, optimised (needs `--features gpu`).
    Llvm,
    /// PTX of the GPU entry points, for `KILN_GPU_ARCH` (default `sm_90`; needs
    /// `--features gpu`, not a GPU).
    Ptx,
}

/// The error for `--types` without `--item`.
pub const TYPES_NEED_AN_ITEM: &str =
    "--types picks a specialisation of the item that --item names; give --item too";

/// The text of `stage` for the file `name` with source `src`: the whole file, or only `item`
/// (specialised for `types`: its type parameters, or one type per parameter).
pub fn emit(
    stage: Stage,
    name: &str,
    src: &str,
    item: Option<&str>,
    types: &[String],
) -> Result<String, Error> {
    if item.is_none() && !types.is_empty() {
        return Err(Error::Usage(TYPES_NEED_AN_ITEM.into()));
    }
    if let Stage::Ast = stage {
        let ast = crate::parse(name, src)?;
        let entries: Vec<_> = ast
            .entries
            .iter()
            .filter(|e| match (item, e) {
                (None, _) => true,
                (Some(n), kiln_syntax::ast::TopLevel::Item(i)) => i.name().name == n,
                _ => false,
            })
            .collect();
        if let Some(n) = item {
            if entries.is_empty() {
                let names = ast.entries.iter().filter_map(|e| match e {
                    kiln_syntax::ast::TopLevel::Item(i) => Some(i.name().name.as_str()),
                    _ => None,
                });
                return Err(unknown_item(n, names));
            }
            if !types.is_empty() {
                return Err(Error::Usage(
                    "the syntax tree has no specialisations: --types applies to ir, opt, clif, asm, llvm and ptx".into(),
                ));
            }
        }
        return Ok(format!("{entries:#?}\n"));
    }
    let compiled = crate::compile(name, src)?;
    let module = match stage {
        Stage::Ir => &compiled.module,
        _ => &compiled.optimized,
    };
    if let Some(c) = item.filter(|n| compiled.program.const_ids.contains_key(*n)) {
        let id = compiled
            .kernel(c, &[])
            .ok_or_else(|| Error::Usage(format!("the constant `{c}` has no IR (a Kiln bug)")))?;
        return match stage {
            Stage::Ir | Stage::Opt if types.is_empty() => {
                Ok(kiln_ir::write_kernel(module.kernel(id)))
            }
            Stage::Ir | Stage::Opt => Err(Error::Usage(format!(
                "`{c}` is a constant: it has no type parameters for --types"
            ))),
            _ => Err(Error::Usage(format!(
                "`{c}` is a constant: it has no native code of its own (its value is folded into every use); `kiln emit ir --item {c}` shows it"
            ))),
        };
    }
    let Some(item_name) = item else {
        return match stage {
            Stage::Clif | Stage::Asm | Stage::Llvm | Stage::Ptx => {
                let mut out = String::new();
                for (i, k) in module.kernels.iter().enumerate() {
                    if matches!(
                        k.kind,
                        KernelKind::Fn | KernelKind::Ufunc | KernelKind::Reduce
                    ) {
                        out.push_str(&native(stage, module, crate::KernelId::new(i))?);
                    }
                }
                Ok(out)
            }
            _ => Ok(kiln_ir::write_module(module)),
        };
    };
    let (_, it) = compiled.program.item(item_name).ok_or_else(|| {
        let names = compiled.program.items.iter().map(|i| i.name.as_str());
        unknown_item(
            item_name,
            names.chain(compiled.program.consts.iter().map(|c| c.name.as_str())),
        )
    })?;
    let mut tys = Vec::new();
    for t in types {
        tys.push(
            ScalarType::from_name(t.trim())
                .ok_or_else(|| Error::Usage(format!("unknown type `{t}`")))?,
        );
    }
    let targs = if tys.len() == it.generics.len() {
        tys
    } else {
        let args: Vec<crate::Scalar> = tys
            .iter()
            .map(|&t| crate::Scalar::from_bits(t, 0))
            .collect();
        crate::infer_type_args(it, &args).ok_or_else(|| {
            let gen: Vec<String> = it
                .generics
                .iter()
                .map(|(n, c)| format!("{n}: {}", c.name()))
                .collect();
            Error::Usage(format!(
                "`{item_name}` needs --types for <{}> (or one type per parameter)",
                gen.join(", ")
            ))
        })?
    };
    let id = compiled.kernel(item_name, &targs).ok_or_else(|| {
        Error::Usage(format!("`{item_name}` has no specialisation for {targs:?}"))
    })?;
    match stage {
        Stage::Clif | Stage::Asm | Stage::Llvm | Stage::Ptx => native(stage, module, id),
        _ => Ok(kiln_ir::write_kernel(module.kernel(id))),
    }
}

/// "no item named `name`", with the closest name in `names`, if one is close.
fn unknown_item<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Error {
    Error::Usage(match kiln_front::diag::suggest(name, names) {
        Some(n) => format!("no item named `{name}`; did you mean `{n}`?"),
        None => format!("no item named `{name}`"),
    })
}

/// The Cranelift IR or machine code of kernel `id`'s native entry point: a ufunc's loop,
/// a reduction's loop, or a `fn`'s scalar entry.
pub fn native(stage: Stage, module: &crate::Module, id: crate::KernelId) -> Result<String, Error> {
    if matches!(stage, Stage::Llvm | Stage::Ptx) {
        return gpu_listing(stage, module, id);
    }
    let cpu = kiln_cranelift::Cpu::new().map_err(|e| Error::Usage(e.to_string()))?;
    let k = module.kernel(id);
    let (shape, what) = match k.kind {
        KernelKind::Ufunc => (Shape::Loop { uniform: 0 }, "ufunc loop"),
        KernelKind::Reduce => (Shape::Reduce { combine: id }, "reduction loop"),
        _ => (Shape::Scalar, "scalar entry"),
    };
    let listing = cpu
        .listing(module, id, shape)
        .map_err(|e| Error::Usage(e.to_string()))?;
    let body = match stage {
        Stage::Asm => listing.asm,
        _ => listing.clif,
    };
    Ok(format!(
        "; {} `{}` ({}, {})\n{body}",
        what,
        k.name,
        cpu.target(),
        stage_name(stage)
    ))
}

/// The LLVM IR or PTX of kernel `id`'s GPU entry: a ufunc's map kernel, a reduction's
/// kernels, or a `fn`'s one-thread call.
#[cfg(feature = "gpu")]
fn gpu_listing(stage: Stage, module: &crate::Module, id: crate::KernelId) -> Result<String, Error> {
    use kiln_nvptx::{Arch, Entry};
    let arch = match std::env::var("KILN_GPU_ARCH") {
        Ok(a) => {
            let digits = a.trim_start_matches("sm_");
            let n: u32 = digits
                .parse()
                .map_err(|_| Error::Usage(format!("KILN_GPU_ARCH={a}: expected sm_XY")))?;
            Arch::for_device(n / 10, n % 10)
        }
        Err(_) => Arch::NEWEST,
    };
    let k = module.kernel(id);
    let (entry, what) = match k.kind {
        KernelKind::Ufunc => (
            Entry::Map {
                kernel: id,
                uniform: 0,
            },
            "ufunc kernel",
        ),
        KernelKind::Reduce => (
            Entry::Reduce {
                map: None,
                combine: id,
                width: kiln_nvptx::vector_width(&k.params),
            },
            "reduction kernels",
        ),
        _ => (Entry::Call { kernel: id }, "call kernel"),
    };
    let body = match stage {
        Stage::Ptx => kiln_nvptx::compile(module, entry, arch).map(|p| p.text),
        _ => kiln_nvptx::optimised_llvm(module, entry, arch),
    }
    .map_err(|e| Error::Usage(e.to_string()))?;
    let lang = if matches!(stage, Stage::Ptx) {
        "PTX"
    } else {
        "LLVM IR"
    };
    Ok(format!("// {what} `{}` ({arch}, {lang})\n{body}", k.name))
}

#[cfg(not(feature = "gpu"))]
fn gpu_listing(_: Stage, _: &crate::Module, _: crate::KernelId) -> Result<String, Error> {
    Err(no_gpu_feature())
}

/// The error for GPU stages and back ends in a build without the `gpu` feature.
pub fn no_gpu_feature() -> Error {
    Error::Usage(
        "this `kiln` was built without the GPU back end: rebuild with `cargo build --release --features gpu` (needs LLVM 19: `apt-get install llvm-19-dev`)".into(),
    )
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Asm => "machine code",
        _ => "Cranelift IR",
    }
}
