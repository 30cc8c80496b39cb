//! The `kiln` command: run and check scripts, show the compiler's stages, run a corpus.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[cfg(not(feature = "gpu"))]
use kiln::emit::no_gpu_feature;
use kiln::emit::{emit, Stage};
use kiln::{read_source, Error, Executor, Interpreter};

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

#[derive(Subcommand)]
enum Command {
    /// Run a script's top-level statements (`-` reads standard input).
    Run {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: Backend,
        /// Interpreter only: stop after this many IR instructions per kernel call, and this
        /// many script statements and loop iterations (default: no limit). Native code has
        /// no instruction budget, so this needs `--backend interp`.
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
        /// Seconds one case may run (on all executors together) before it is stopped and
        /// fails.
        #[arg(long, default_value_t = 60)]
        time_limit: u64,
    },
}

fn cpu() -> Result<kiln::Cpu, Error> {
    kiln::Cpu::new().map_err(|e| Error::Usage(e.to_string()))
}

/// A command-line usage error: reported as clap reports its own (with the usage line), exit
/// status 2.
fn usage_error(msg: &str) -> ! {
    use clap::CommandFactory;
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, msg)
        .exit()
}

fn run_script(name: &str, src: &str, exec: &dyn Executor, steps: u64) -> Result<(), Error> {
    let compiled = kiln::compile(name, src)?;
    let mut ev = kiln::script::Evaluator::new(&compiled, exec).with_step_budget(steps);
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

fn test(dir: &Path, bless: bool, time_limit: u64) -> Result<bool, Error> {
    let mut opts = kiln::corpus::Options::default();
    opts.bless |= bless;
    opts.time_limit = std::time::Duration::from_secs(time_limit);
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
                // The REPL; on anything else, standard input is a script (spec §6).
                let threads = kiln::Threads::from_env().map_err(Error::Usage)?;
                let mut session = kiln::repl::Session::new(std::sync::Arc::new(cpu()?), threads);
                kiln::repl::editor::run(&mut session)?;
                return Ok(true);
            }
            let (name, src) = read_source(Path::new("-"))?;
            run_script(&name, &src, &cpu()?, u64::MAX)?;
            Ok(true)
        }
        Some(Command::Run {
            file,
            backend,
            fuel,
        }) => {
            if fuel.is_some() && !matches!(backend, Backend::Interp) {
                usage_error("--fuel counts interpreter steps: it needs `--backend interp` (native code has no instruction budget)");
            }
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
            run_script(&name, &src, exec.as_ref(), fuel.unwrap_or(u64::MAX))?;
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
            if item.is_none() && !types.is_empty() {
                usage_error(kiln::emit::TYPES_NEED_AN_ITEM);
            }
            let (name, src) = read_source(&file)?;
            print!("{}", emit(stage, &name, &src, item.as_deref(), &types)?);
            Ok(true)
        }
        Some(Command::Test {
            dir,
            bless,
            time_limit,
        }) => test(&dir, bless, time_limit),
    }
}

fn main() -> ExitCode {
    kiln::interrupt::default_sigpipe();
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
