//! `kiln-nvptx`: Kiln's GPU back end. Kiln IR → LLVM IR → PTX, with LLVM 19's NVPTX back
//! end through inkwell; the runtime (`kiln-runtime`, feature `gpu`) loads the PTX with the
//! CUDA driver and launches it.
//!
//! The pipeline, for one [`Entry`] (a scalar call, a ufunc over arrays, or a reduction):
//! 1. [`ll`]: every IR kernel the entry reaches, math library functions included, becomes
//!    an LLVM function, written as LLVM assembly text (as Numba's llvmlite does) — readable,
//!    printable with `kiln emit llvm`, and checked by LLVM's verifier when parsed;
//! 2. [`entries`]: the GPU kernels around them (grid-stride loops with 16-byte vector
//!    accesses, block-tree reductions in shared memory, error reporting);
//! 3. LLVM parses and verifies the text, optimises it (`default<O3>`) and emits PTX for
//!    `nvptx64-nvidia-cuda` and the device's `sm_XY`.
//!
//! The same per-thread code can be compiled for the host instead ([`host`]), where tests run
//! it on the CPU against the reference interpreter: that checks the translation without a
//! GPU. What only a GPU can check (the PTX running) is done by the runtime's tests where a
//! GPU is present.
#![warn(missing_docs)]

pub mod entries;
pub mod host;
pub mod ll;

use std::sync::Once;

use inkwell::context::Context;
use inkwell::memory_buffer::MemoryBuffer;
use inkwell::module::Module as LlvmModule;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{
    CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine, TargetTriple,
};
use inkwell::OptimizationLevel;
use kiln_ir::Module;

pub use entries::{reduce_inputs, vector_width, Entry, Flavor, BLOCK};
pub use ll::Site;

/// A fingerprint of this build's code generator (a hash of its source): caches of
/// generated code keep it in their keys, so code from another build is never reused.
pub const CODEGEN_FINGERPRINT: &str = env!("KILN_NVPTX_FINGERPRINT");

/// A GPU back-end failure: LLVM rejecting what Kiln gave it, or an IR operation the back end
/// does not implement (both Kiln bugs or limits, never the user's).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("GPU back end: {0}")]
pub struct BackendError(pub String);

/// The LLVM IR text of an entry, before LLVM sees it.
pub struct LlvmText {
    /// The module, in LLVM assembly.
    pub text: String,
    /// Trap sites: an error status `n` is `sites[n - 1]`.
    pub sites: Vec<Site>,
    /// Elements per vector group (maps and reductions).
    pub width: u32,
}

/// Writes the LLVM IR of `entry` of `m` (a verified, optimised module) for `flavor`.
pub fn llvm_text(m: &Module, entry: Entry, flavor: Flavor) -> Result<LlvmText, BackendError> {
    let mut unit = ll::Unit::default();
    let e = entries::emit(m, entry, flavor, &mut unit)?;
    Ok(LlvmText {
        text: e.ll,
        sites: unit.sites,
        width: e.width,
    })
}

/// A compute capability, `sm_<major><minor>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Arch {
    /// Major version (9 on an H100).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl Arch {
    /// The newest architecture LLVM 19 knows; PTX for it is JIT-compiled by the driver for
    /// later GPUs.
    pub const NEWEST: Arch = Arch { major: 9, minor: 0 };

    /// The architecture to compile for on a device of compute capability
    /// `major.minor`: itself, or [`Arch::NEWEST`] for newer devices.
    pub fn for_device(major: u32, minor: u32) -> Arch {
        let a = Arch { major, minor };
        if (major, minor) > (Arch::NEWEST.major, Arch::NEWEST.minor) {
            Arch::NEWEST
        } else {
            a
        }
    }

    /// `sm_90`.
    pub fn name(self) -> String {
        format!("sm_{}{}", self.major, self.minor)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// PTX for one entry, and what the runtime needs to launch it and report its errors.
#[derive(Clone, Debug)]
pub struct Ptx {
    /// PTX assembly.
    pub text: String,
    /// Trap sites: an error status `n` is `sites[n - 1]`.
    pub sites: Vec<Site>,
    /// Elements per vector group (maps and reductions).
    pub width: u32,
}

static INIT_NVPTX: Once = Once::new();

fn err(e: impl std::fmt::Display) -> BackendError {
    BackendError(e.to_string())
}

/// Parses LLVM assembly into `ctx` for the target `tm` and verifies it.
///
/// The target's data layout and triple are written at the top of the text, before parsing:
/// the parser gives every `load` and `store` without an explicit `align` the ABI alignment
/// of the layout it knows *then*. Set afterwards, the layout came too late, LLVM's default
/// (`i64` aligned to 4) applied, and NVPTX split every 64-bit access into two 32-bit ones.
pub(crate) fn parse<'c>(
    ctx: &'c Context,
    text: &str,
    tm: &TargetMachine,
) -> Result<LlvmModule<'c>, BackendError> {
    let layout = tm.get_target_data().get_data_layout();
    let layout = layout.as_str().to_str().map_err(err)?;
    let triple = tm.get_triple();
    let triple = triple.as_str().to_str().map_err(err)?;
    let text = format!("target datalayout = \"{layout}\"\ntarget triple = \"{triple}\"\n{text}");
    let buf = MemoryBuffer::create_from_memory_range_copy(text.as_bytes(), "kiln");
    let module = ctx
        .create_module_from_ir(buf)
        .map_err(|e| err(format!("LLVM rejected the generated IR: {e}")))?;
    module
        .verify()
        .map_err(|e| err(format!("the generated LLVM IR does not verify: {e}")))?;
    Ok(module)
}

/// Optimises `module` for `tm` with LLVM's standard pipeline at `-O3`, or the pipeline in
/// `KILN_LLVM_PASSES` (LLVM's `-passes` syntax, e.g. `default<Os>`, which compiles
/// Black-Scholes about twice as fast: see docs/gpu.md).
pub(crate) fn optimise(module: &LlvmModule, tm: &TargetMachine) -> Result<(), BackendError> {
    let passes = llvm_passes();
    module
        .run_passes(&passes, tm, PassBuilderOptions::create())
        .map_err(|e| err(format!("LLVM's optimiser failed: {e}")))
}

/// The LLVM pass pipeline the back end runs: `KILN_LLVM_PASSES`, else `default<O3>`. It
/// changes the code, so caches of generated code keep it in their keys.
pub fn llvm_passes() -> String {
    std::env::var("KILN_LLVM_PASSES").unwrap_or_else(|_| "default<O3>".into())
}

/// The NVPTX target machine for `arch`.
fn nvptx_machine(arch: Arch) -> Result<TargetMachine, BackendError> {
    INIT_NVPTX.call_once(|| Target::initialize_nvptx(&InitializationConfig::default()));
    let triple = TargetTriple::create("nvptx64-nvidia-cuda");
    let target = Target::from_triple(&triple).map_err(err)?;
    target
        .create_target_machine(
            &triple,
            &arch.name(),
            // PTX ISA 7.8 (LLVM 19's default for sm_90), read by every driver since CUDA 11.8.
            "+ptx78",
            OptimizationLevel::Aggressive,
            RelocMode::Default,
            CodeModel::Default,
        )
        .ok_or_else(|| err(format!("LLVM cannot target {arch}")))
}

/// Compiles `entry` of `m` (a verified, optimised module) to PTX for `arch`.
pub fn compile(m: &Module, entry: Entry, arch: Arch) -> Result<Ptx, BackendError> {
    let text = llvm_text(m, entry, Flavor::Nvptx)?;
    let text_ptx = ptx_of(&text.text, arch)?;
    Ok(Ptx {
        text: text_ptx,
        sites: text.sites,
        width: text.width,
    })
}

/// LLVM assembly (NVPTX flavour) → optimised → PTX.
pub fn ptx_of(ll: &str, arch: Arch) -> Result<String, BackendError> {
    let tm = nvptx_machine(arch)?;
    let ctx = Context::create();
    let module = parse(&ctx, ll, &tm)?;
    optimise(&module, &tm)?;
    let buf = tm
        .write_to_memory_buffer(&module, FileType::Assembly)
        .map_err(|e| err(format!("LLVM's NVPTX back end failed: {e}")))?;
    String::from_utf8(buf.as_slice().to_vec()).map_err(err)
}

/// The optimised LLVM IR of `entry` for `arch`, for `kiln emit llvm`.
pub fn optimised_llvm(m: &Module, entry: Entry, arch: Arch) -> Result<String, BackendError> {
    let text = llvm_text(m, entry, Flavor::Nvptx)?;
    let tm = nvptx_machine(arch)?;
    let ctx = Context::create();
    let module = parse(&ctx, &text.text, &tm)?;
    optimise(&module, &tm)?;
    Ok(module.print_to_string().to_string())
}
