//! The `kiln` command: run and check scripts, show the compiler's stages, run a corpus.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use kiln::ir::KernelKind;
use kiln::{Error, Executor, Interpreter, ScalarType};
use kiln_cranelift::Shape;

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Kiln: a JIT compiler for array kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// Native code from the Cranelift JIT.
    Cpu,
    /// The reference interpreter.
    Interp,
    /// An NVIDIA GPU (needs a build with `--features gpu` and the NVIDIA driver).
    Gpu,
}

#[derive(Clone, Copy, ValueEnum)]
enum Stage {
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

#[derive(Subcommand)]
enum Command {
    /// Run a script's top-level statements (`-` reads standard input).
    Run {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: Backend,
        /// Interpreter only: stop a kernel call after this many IR instructions (default:
        /// no limit). Native code has no budget.
        #[arg(long)]
        fuel: Option<u64>,
    },
    /// Check a file without running it.
    Check { file: PathBuf },
    /// Print a compiler stage.
    Emit {
        #[arg(value_enum)]
        stage: Stage,
        file: PathBuf,
        /// Only this item (and, for IR, what it calls).
        #[arg(long)]
        item: Option<String>,
        /// Types for a generic item: its type parameters, or one per parameter.
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
    },
    /// Run a corpus directory of `.kl` cases on every executor.
    Test {
        dir: PathBuf,
        /// Rewrite snapshot files instead of comparing them.
        #[arg(long)]
        bless: bool,
    },
}

fn read_source(path: &Path) -> Result<(String, String), Error> {
    let name = path.display().to_string();
    let bytes = if name == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .map_err(|error| Error::Io {
                path: name.clone(),
                error,
            })?;
        b
    } else {
        std::fs::read(path).map_err(|error| Error::Io {
            path: name.clone(),
            error,
        })?
    };
    match String::from_utf8(bytes) {
        Ok(s) => Ok((name, s)),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            Err(Error::Usage(format!(
                "{name}:{line}: the file is not valid UTF-8 (byte {at})"
            )))
        }
    }
}

fn cpu() -> Result<kiln::Cpu, Error> {
    kiln::Cpu::new().map_err(|e| Error::Usage(e.to_string()))
}

fn run_script(name: &str, src: &str, exec: &dyn Executor) -> Result<(), Error> {
    let compiled = kiln::compile(name, src)?;
    let mut ev = kiln::script::Evaluator::new(&compiled, exec);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match ev.run(&mut out) {
        Err(Error::Runtime { error, file }) => {
            if let Some(d) = compiled.runtime_diagnostic(&error) {
                return Err(Error::Compile(d));
            }
            Err(Error::Runtime { error, file })
        }
        Err(Error::Element { error, file, index }) => {
            if let Some(d) = compiled.runtime_diagnostic_at(&error, &index) {
                return Err(Error::Compile(d));
            }
            Err(Error::Element { error, file, index })
        }
        other => other,
    }
}

fn emit(
    stage: Stage,
    name: &str,
    src: &str,
    item: Option<&str>,
    types: &[String],
) -> Result<String, Error> {
    if let Stage::Ast = stage {
        let ast = kiln::parse(name, src)?;
        let entries: Vec<_> = ast
            .entries
            .iter()
            .filter(|e| match (item, e) {
                (None, _) => true,
                (Some(n), kiln_syntax::ast::TopLevel::Item(i)) => i.name().name == n,
                _ => false,
            })
            .collect();
        return Ok(format!("{entries:#?}\n"));
    }
    let compiled = kiln::compile(name, src)?;
    let module = match stage {
        Stage::Ir => &compiled.module,
        _ => &compiled.optimized,
    };
    let Some(item_name) = item else {
        return match stage {
            Stage::Clif | Stage::Asm | Stage::Llvm | Stage::Ptx => {
                let mut out = String::new();
                for (i, k) in module.kernels.iter().enumerate() {
                    if matches!(
                        k.kind,
                        KernelKind::Fn | KernelKind::Ufunc | KernelKind::Reduce
                    ) {
                        out.push_str(&native(stage, module, kiln::KernelId::new(i))?);
                    }
                }
                Ok(out)
            }
            _ => Ok(kiln_ir::write_module(module)),
        };
    };
    let (_, it) = compiled
        .program
        .item(item_name)
        .ok_or_else(|| Error::Usage(format!("no item named `{item_name}`")))?;
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
        let args: Vec<kiln::Scalar> = tys.iter().map(|&t| kiln::Scalar::from_bits(t, 0)).collect();
        kiln::infer_type_args(it, &args).ok_or_else(|| {
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

/// The Cranelift IR or machine code of kernel `id`'s native entry point: a ufunc's loop,
/// a reduction's loop, or a `fn`'s scalar entry.
fn native(stage: Stage, module: &kiln::Module, id: kiln::KernelId) -> Result<String, Error> {
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
fn gpu_listing(stage: Stage, module: &kiln::Module, id: kiln::KernelId) -> Result<String, Error> {
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
fn gpu_listing(_: Stage, _: &kiln::Module, _: kiln::KernelId) -> Result<String, Error> {
    Err(no_gpu_feature())
}

#[cfg(not(feature = "gpu"))]
fn no_gpu_feature() -> Error {
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

fn test(dir: &Path, bless: bool) -> Result<bool, Error> {
    let mut opts = kiln::corpus::Options::default();
    opts.bless |= bless;
    let report = kiln::corpus::run_dir(dir, &opts, |path, result| match result {
        Ok(()) => println!("ok      {}", path.display()),
        Err(_) => println!("FAILED  {}", path.display()),
    })
    .map_err(|error| Error::Io {
        path: dir.display().to_string(),
        error,
    })?;
    for (path, why) in &report.failed {
        println!("\n---- {} ----\n{why}", path.display());
    }
    for p in &report.blessed {
        println!("blessed {}", p.display());
    }
    let names: Vec<&str> = opts.executors.iter().map(|e| e.name()).collect();
    println!(
        "\n{} passed, {} failed (executors: {})",
        report.passed,
        report.failed.len(),
        names.join(", ")
    );
    Ok(report.failed.is_empty())
}

fn real_main() -> Result<bool, Error> {
    let cli = Cli::parse();
    match cli.command {
        None => {
            if std::io::stdin().is_terminal() {
                println!("kiln {}: a JIT compiler for array kernels. Try `kiln run FILE.kl` or `kiln --help`.", env!("CARGO_PKG_VERSION"));
                return Ok(true);
            }
            let (name, src) = read_source(Path::new("-"))?;
            run_script(&name, &src, &cpu()?)?;
            Ok(true)
        }
        Some(Command::Run {
            file,
            backend,
            fuel,
        }) => {
            let (name, src) = read_source(&file)?;
            let exec: Box<dyn Executor> = match backend {
                Backend::Cpu => Box::new(cpu()?),
                Backend::Interp => Box::new(Interpreter::new(fuel.unwrap_or(u64::MAX))),
                #[cfg(feature = "gpu")]
                Backend::Gpu => Box::new(
                    kiln_runtime::gpu::Gpu::new().map_err(|e| Error::Usage(e.to_string()))?,
                ),
                #[cfg(not(feature = "gpu"))]
                Backend::Gpu => return Err(no_gpu_feature()),
            };
            run_script(&name, &src, exec.as_ref())?;
            Ok(true)
        }
        Some(Command::Check { file }) => {
            let (name, src) = read_source(&file)?;
            let c = kiln::compile(&name, &src)?;
            println!(
                "{name}: ok ({} items, {} consts, {} script statements)",
                c.program.items.len(),
                c.program.consts.len(),
                c.program.script.stmts.len()
            );
            Ok(true)
        }
        Some(Command::Emit {
            stage,
            file,
            item,
            types,
        }) => {
            let (name, src) = read_source(&file)?;
            print!("{}", emit(stage, &name, &src, item.as_deref(), &types)?);
            Ok(true)
        }
        Some(Command::Test { dir, bless }) => test(&dir, bless),
    }
}

fn main() -> ExitCode {
    // The compiler recurses over syntax trees whose depth the parser bounds; a large stack
    // keeps that bound far from the limit even in debug builds.
    let worker = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(real_main);
    let result = match worker {
        Ok(handle) => handle.join().unwrap_or_else(|_| {
            Err(Error::Usage(
                "internal error: the compiler panicked (this is a bug)".into(),
            ))
        }),
        Err(e) => Err(Error::Usage(format!(
            "cannot start the compiler thread: {e}"
        ))),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(Error::Compile(d)) if std::io::stderr().is_terminal() => {
            use codespan_reporting::term::termcolor::{ColorChoice, StandardStream};
            let stream = StandardStream::stderr(ColorChoice::Auto);
            if d.emit_styled(&mut stream.lock()).is_err() {
                eprintln!("{}", d.render());
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
