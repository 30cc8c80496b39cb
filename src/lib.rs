//! Kiln: a JIT compiler for array kernels.
//!
//! This crate is the embedding API and the home of the `kiln` command. Today it compiles
//! Kiln source (`.kl`) to verified IR and runs kernels and scripts with the reference
//! interpreter; the Cranelift JIT and the array runtime build on the same API.
//!
//! ```
//! let compiled = kiln::compile("demo.kl", "ufunc axpy<T: float>(a: T, x: T, y: T) -> T { a * x + y }")?;
//! let y = compiled.call("axpy", &[kiln::Scalar::F64(2.0), kiln::Scalar::F64(3.0), kiln::Scalar::F64(1.0)])?;
//! assert_eq!(y, vec![kiln::Scalar::F64(7.0)]);
//! # Ok::<(), kiln::Error>(())
//! ```
//!
//! Errors carry the source, so `println!("{err}")` shows the diagnostic with file, line,
//! column, the source line and a label:
//!
//! ```
//! let err = kiln::compile("bad.kl", "fn f(x: f32) -> f64 { x }").unwrap_err();
//! assert!(err.to_string().contains("bad.kl:1:23"));
//! assert!(err.to_string().contains("expected `f64`, found `f32`"));
//! ```

/// The README's Rust example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod corpus;
pub mod emit;
pub mod fuzzing;
pub mod interrupt;
pub mod jit;
pub mod repl;
pub mod script;

use std::fmt;

use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;

pub use jit::{Jit, JitModule, Reduction, TypedUfunc, Ufunc};
pub use kiln_front::{Diag, Program};
pub use kiln_interp::{ErrorKind, RuntimeError};
pub use kiln_ir as ir;
pub use kiln_ir::{KernelId, Module, Scalar, ScalarType};
/// The GPU's device arrays (feature `gpu`; see `docs/gpu.md`).
#[cfg(feature = "gpu")]
pub use kiln_runtime::gpu::{DeviceArg, DeviceArray, Gpu, GpuError};
pub use kiln_runtime::{
    vec_with_huge_pages, Arg, Cpu, DynArray, DynView, DynViewMut, Element, Executor, Interpreter,
    Threads,
};
pub use ndarray;

/// Diagnostics with the sources they point into, ready to render.
#[derive(Clone)]
pub struct Diagnostics {
    files: SimpleFiles<String, String>,
    diags: Vec<Diag>,
}

impl Diagnostics {
    /// Diagnostics pointing into `src`, shown as file `name`.
    pub fn new(name: &str, src: &str, diags: Vec<Diag>) -> Diagnostics {
        self::diags(name, src, diags)
    }

    /// The diagnostics themselves.
    pub fn items(&self) -> &[Diag] {
        &self.diags
    }

    /// Plain-text rendering (codespan-reporting's rich format, no colour). A diagnostic
    /// pointing into a line longer than [`MAX_SNIPPET_LINE`] bytes is shown in the short
    /// `file:line:col: message` form, followed by an excerpt of the line around the label
    /// (cut with `…`) instead of the whole line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.diags {
            match term::emit_into_string(&self.config_for(d), &self.files, d) {
                Ok(s) => {
                    out.push_str(&s);
                    out.push_str(&self.excerpt(d));
                }
                Err(e) => out.push_str(&format!(
                    "error: {} (and the diagnostic could not be rendered: {e})\n",
                    d.message
                )),
            }
        }
        out
    }

    /// For a diagnostic shown in the short form because its line is too long to quote:
    /// the part of the line around the primary label, cut with `…`, and the notes.
    fn excerpt(&self, d: &Diag) -> String {
        if !self.has_long_line(d) {
            return String::new();
        }
        let Some(label) = d.labels.first() else {
            return String::new();
        };
        let Ok(file) = self.files.get(label.file_id) else {
            return String::new();
        };
        let src = file.source().as_str();
        let at = label.range.start.min(src.len());
        let line_start = src[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[at..].find('\n').map_or(src.len(), |i| at + i);
        let line_no = src[..line_start].matches('\n').count() + 1;
        let line = &src[line_start..line_end];
        // Character offsets within the line: the label, and a window of context around it.
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        let col = |byte: usize| chars.partition_point(|&(i, _)| i + line_start < byte);
        let (from, to) = (col(at), col(label.range.end.min(line_end)).max(col(at) + 1));
        let to = to.min(from + EXCERPT_CONTEXT);
        let lo = from.saturating_sub(EXCERPT_CONTEXT);
        let hi = (to + EXCERPT_CONTEXT).min(chars.len());
        let text: String = chars[lo..hi].iter().map(|&(_, c)| c).collect();
        let (open, close) = (
            if lo > 0 { "…" } else { "" },
            if hi < chars.len() { "…" } else { "" },
        );
        let gutter = " ".repeat(line_no.to_string().len());
        let mut out = format!("{gutter} │\n{line_no} │ {open}{text}{close}\n");
        let pad = " ".repeat(from - lo + open.chars().count());
        let marks = "^".repeat((to - from).max(1));
        let label_text = format!("{pad}{marks} {}", label.message);
        out.push_str(&format!("{gutter} │ {}\n", label_text.trim_end()));
        for n in &d.notes {
            out.push_str(&format!("{gutter} = {n}\n"));
        }
        out.push('\n');
        out
    }
}

/// Characters of context an [`Diagnostics::render`] excerpt shows on each side of the label
/// (and the most of the label itself).
const EXCERPT_CONTEXT: usize = 60;

/// Source lines longer than this are not quoted in diagnostics.
pub const MAX_SNIPPET_LINE: usize = 400;

impl Diagnostics {
    /// The rich format, or the short one when the diagnostic points into a very long line.
    fn config_for(&self, d: &Diag) -> term::Config {
        let style = if self.has_long_line(d) {
            term::DisplayStyle::Short
        } else {
            term::DisplayStyle::Rich
        };
        term::Config {
            display_style: style,
            ..term::Config::default()
        }
    }

    fn has_long_line(&self, d: &Diag) -> bool {
        d.labels.iter().any(|l| {
            let Ok(file) = self.files.get(l.file_id) else {
                return false;
            };
            let src = file.source();
            let start = src[..l.range.start.min(src.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let end = src[l.range.end.min(src.len())..]
                .find('\n')
                .map_or(src.len(), |i| l.range.end + i);
            end.saturating_sub(start) > MAX_SNIPPET_LINE
        })
    }
}

impl Diagnostics {
    /// Writes the diagnostics with colours (for a terminal): the same text as [`render`].
    ///
    /// [`render`]: Diagnostics::render
    pub fn emit_styled<W: term::termcolor::WriteColor>(&self, w: &mut W) -> std::io::Result<()> {
        for d in &self.diags {
            term::emit_to_write_style(w, &self.config_for(d), &self.files, d)
                .map_err(std::io::Error::other)?;
            w.write_all(self.excerpt(d).as_bytes())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// Everything that can go wrong, as one error type that renders with its source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source has errors.
    #[error("{}", .0.render().trim_end())]
    Compile(Diagnostics),
    /// A kernel failed at run time (division by zero, failed assert, …).
    #[error("error: {} in `{}`{}", error.kind, error.kernel, runtime_place(error, file.as_deref()))]
    Runtime {
        /// What failed.
        error: RuntimeError,
        /// The source file, if known.
        file: Option<String>,
    },
    /// A kernel failed at one element of an array call.
    #[error("error: {} in `{}`{}, at element {index:?}", error.kind, error.kernel, runtime_place(error, file.as_deref()))]
    Element {
        /// What failed.
        error: RuntimeError,
        /// The source file, if known.
        file: Option<String>,
        /// The element's index in the broadcast shape of the call.
        index: Vec<usize>,
    },
    /// No item of that name, or not callable with those arguments.
    #[error("error: {0}")]
    Usage(String),
    /// An internal compiler error (invalid IR): always a bug.
    #[error("{0}")]
    Internal(#[from] kiln_ir::VerifierError),
    /// Reading or writing a file failed.
    #[error("error: {path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        error: std::io::Error,
    },
}

fn runtime_place(e: &RuntimeError, file: Option<&str>) -> String {
    match (e.loc, file) {
        (Some(l), Some(f)) => format!(" at {f}:{l}"),
        (Some(l), None) => format!(" at {l}"),
        (None, _) => String::new(),
    }
}

/// A runtime error as a diagnostic quoting `src` (shown as file `name`) at the error's
/// location, with the failing element's `index` for an array operation; `None` when the
/// error has no location in `src`.
pub fn runtime_diagnostic_in(
    name: &str,
    src: &str,
    e: &RuntimeError,
    index: Option<&[usize]>,
) -> Option<Diagnostics> {
    let loc = e.loc?;
    let lines: Vec<&str> = src.split_inclusive('\n').collect();
    let before = lines.get(..loc.line.checked_sub(1)? as usize)?;
    if loc.line as usize > lines.len().max(1) {
        return None;
    }
    let line_start: usize = before.iter().map(|l| l.len()).sum();
    let offset = src[line_start..]
        .char_indices()
        .nth(loc.col.saturating_sub(1) as usize)
        .map_or(src.len(), |(i, _)| line_start + i);
    let end = (offset + loc.len.max(1) as usize).min(src.len());
    let mut d = kiln_front::diag::error(
        0,
        kiln_syntax::Span::new(offset, end.max(offset)),
        e.kind.to_string(),
        format!("in `{}`", e.kernel),
    );
    if let Some(index) = index {
        d.notes
            .push(format!("at element {index:?} of the array operation"));
    }
    Some(diags(name, src, vec![d]))
}

/// A compiled source file: the checked program, every item specialisation lowered to IR,
/// and the optimised IR.
pub struct Compiled {
    files: SimpleFiles<String, String>,
    /// The file's name as given.
    pub name: String,
    /// The checked program.
    pub program: Program,
    /// Every item and specialisation, as lowered (verified).
    pub module: Module,
    /// The same after the optimisation pipeline (verified).
    pub optimized: Module,
    /// Kernels by name (the same ids in both modules).
    kernel_ids: std::collections::HashMap<String, KernelId>,
}

/// The math library (`kernels/math`), lowered and optimised once per process: modules
/// import its functions ready-made (see `kiln_front::mathlib`). `None` only if the library
/// failed to build, a bug its tests catch; builtins are then host `libm` operations.
pub fn math_library() -> Option<&'static kiln_front::mathlib::MathLib> {
    static LIB: std::sync::OnceLock<Option<kiln_front::mathlib::MathLib>> =
        std::sync::OnceLock::new();
    LIB.get_or_init(|| {
        let mut lib = kiln_front::mathlib::build().ok()?;
        kiln_opt::optimize(&mut lib.module, false).ok()?;
        Some(lib)
    })
    .as_ref()
}

/// The largest source file Kiln reads: 16 MiB. A bound, so that `kiln run /dev/zero` or a
/// mistyped path to a data file fails at once instead of filling memory.
pub const MAX_SOURCE_BYTES: u64 = 16 << 20;

/// Reads a source file (`-`: standard input) as UTF-8, at most [`MAX_SOURCE_BYTES`]. Returns
/// the name to show in diagnostics and the text.
pub fn read_source(path: &std::path::Path) -> Result<(String, String), Error> {
    use std::io::Read;
    let name = path.display().to_string();
    let io = |error| Error::Io {
        path: name.clone(),
        error,
    };
    let mut bytes = Vec::new();
    let reader: Box<dyn Read> = if name == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(io)?)
    };
    // One byte past the limit tells a file at the limit from a longer one.
    reader
        .take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(Error::Usage(format!(
            "{name}: the source is larger than {} MiB; Kiln reads at most that much",
            MAX_SOURCE_BYTES >> 20
        )));
    }
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

/// Parses, checks, lowers (every item, every specialisation) and optimises `src`. Every
/// independent error in the file is reported.
pub fn compile(name: &str, src: &str) -> Result<Compiled, Error> {
    let ast = parse(name, src)?;
    compile_parsed(name, src, &ast)
}

/// Parses `src`, reporting every syntax error.
pub fn parse(name: &str, src: &str) -> Result<kiln_syntax::ast::Module, Error> {
    let (module, errors) = kiln_syntax::parse(src);
    if errors.is_empty() {
        return Ok(module);
    }
    let d = errors.into_iter().map(syntax_diag).collect();
    Err(Error::Compile(diags(name, src, d)))
}

/// A syntax error as a diagnostic.
pub fn syntax_diag(e: kiln_syntax::SyntaxError) -> Diag {
    kiln_front::diag::error(0, e.span, e.message, "")
}

fn source_files(name: &str, src: &str) -> SimpleFiles<String, String> {
    let mut files = SimpleFiles::new();
    files.add(name.to_string(), src.to_string());
    files
}

fn diags(name: &str, src: &str, diags: Vec<Diag>) -> Diagnostics {
    Diagnostics {
        files: source_files(name, src),
        diags,
    }
}

/// Compiles an already parsed (and possibly augmented) module of the file `name`.
pub fn compile_parsed(
    name: &str,
    src: &str,
    ast: &kiln_syntax::ast::Module,
) -> Result<Compiled, Error> {
    let (program, errors) = kiln_front::check(0, src, ast);
    if !errors.is_empty() {
        return Err(Error::Compile(diags(name, src, errors)));
    }
    let mut lowerer = kiln_front::Lowerer::new(&program).with_math(math_library());
    let mut errors = Vec::new();
    if let Err(e) = lowerer.evaluate_consts() {
        errors.extend(e);
    }
    for i in 0..program.consts.len() {
        if let Err(e) = lowerer.constant(kiln_front::ConstId(i as u32)) {
            errors.extend(e);
        }
    }
    for (i, item) in program.items.iter().enumerate() {
        if matches!(
            item.kind,
            kiln_syntax::ast::ItemKind::Gufunc | kiln_syntax::ast::ItemKind::Kernel
        ) {
            continue;
        }
        let id = kiln_front::ItemId(i as u32);
        for targs in program.specialisations(id) {
            if let Err(e) = lowerer.item(id, &targs) {
                errors.extend(e);
            }
            if item.identity.is_some() {
                if let Err(e) = lowerer.identity(id, &targs) {
                    errors.extend(e);
                }
            }
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(kiln_front::diag::sort_key);
        // A literal that fits no specialisation is reported once, for the first.
        errors.dedup_by(|a, b| {
            a.labels.first().map(|l| l.range.clone()) == b.labels.first().map(|l| l.range.clone())
        });
        return Err(Error::Compile(diags(name, src, errors)));
    }
    let module = lowerer.finish();
    kiln_ir::verify(&module)?;
    let mut optimized = module.clone();
    kiln_opt::optimize(&mut optimized, cfg!(debug_assertions))?;
    kiln_ir::verify(&optimized)?;
    let kernel_ids = module
        .kernels
        .iter()
        .enumerate()
        .map(|(i, k)| (k.name.clone(), KernelId::new(i)))
        .collect();
    Ok(Compiled {
        kernel_ids,
        files: source_files(name, src),
        name: name.to_string(),
        program,
        module,
        optimized,
    })
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiled")
            .field("name", &self.name)
            .field("items", &self.program.items.len())
            .field("kernels", &self.module.kernels.len())
            .finish_non_exhaustive()
    }
}

impl Compiled {
    /// Renders diagnostics produced later against this file (script and run-line errors).
    pub fn diagnostics(&self, diags: Vec<Diag>) -> Diagnostics {
        Diagnostics {
            files: self.files.clone(),
            diags,
        }
    }

    /// A runtime error at element `index` of an array call, as a diagnostic.
    pub fn runtime_diagnostic_at(&self, e: &RuntimeError, index: &[usize]) -> Option<Diagnostics> {
        runtime_diagnostic_in(&self.name, &self.program.src, e, Some(index))
    }

    /// A runtime error as a diagnostic pointing into this file's source, when it has a
    /// location.
    pub fn runtime_diagnostic(&self, e: &RuntimeError) -> Option<Diagnostics> {
        runtime_diagnostic_in(&self.name, &self.program.src, e, None)
    }

    /// The kernel for item `name` specialised for `types` (empty for a non-generic item).
    /// The optimiser rewrites kernels in place, so the id is the same in
    /// [`Compiled::module`] and [`Compiled::optimized`].
    pub fn kernel(&self, name: &str, types: &[ScalarType]) -> Option<KernelId> {
        self.kernel_ids
            .get(&kiln_front::instance_name(name, types))
            .copied()
    }

    /// The identity kernel of `reduce` item `name` specialised for `types`.
    pub fn identity(&self, name: &str, types: &[ScalarType]) -> Option<KernelId> {
        self.kernel_ids
            .get(&format!(
                "{}::identity",
                kiln_front::instance_name(name, types)
            ))
            .copied()
    }

    /// Calls item `name` with scalar arguments on the reference interpreter, picking the
    /// specialisation from the argument types.
    pub fn call(&self, name: &str, args: &[Scalar]) -> Result<Vec<Scalar>, Error> {
        self.call_on(&Interpreter::new(u64::MAX), name, args)
    }

    /// Like [`Compiled::call`], on any executor.
    pub fn call_on(
        &self,
        exec: &dyn Executor,
        name: &str,
        args: &[Scalar],
    ) -> Result<Vec<Scalar>, Error> {
        let (_, item) = self
            .program
            .item(name)
            .ok_or_else(|| Error::Usage(format!("no item named `{name}`")))?;
        let targs = infer_type_args(item, args).ok_or_else(|| {
            let tys: Vec<&str> = args.iter().map(|a| a.ty().name()).collect();
            Error::Usage(format!(
                "`{name}` cannot be called with ({})",
                tys.join(", ")
            ))
        })?;
        let m = if exec.wants_optimized() {
            &self.optimized
        } else {
            &self.module
        };
        let id = self
            .kernel(name, &targs)
            .ok_or_else(|| Error::Usage(format!("`{name}` has no specialisation for {targs:?}")))?;
        exec.call(m, id, args).map_err(|error| Error::Runtime {
            error,
            file: Some(self.name.clone()),
        })
    }
}

/// The type arguments that make `item` accept arguments of these types, if any.
pub fn infer_type_args(item: &kiln_front::CheckedItem, args: &[Scalar]) -> Option<Vec<ScalarType>> {
    let types: Vec<ScalarType> = args.iter().map(|a| a.ty()).collect();
    infer_type_args_of(item, &types)
}

/// The type arguments that make `item` accept arguments of types `args`, if any.
pub fn infer_type_args_of(
    item: &kiln_front::CheckedItem,
    args: &[ScalarType],
) -> Option<Vec<ScalarType>> {
    use kiln_front::Ty;
    if args.len() != item.params.len() {
        return None;
    }
    let mut targs: Vec<Option<ScalarType>> = vec![None; item.generics.len()];
    for ((_, ty, _), &a) in item.params.iter().zip(args) {
        match ty {
            Ty::Scalar(s) if *s == a => {}
            Ty::Param(i, _, class) if class.contains(a) => match targs[*i as usize] {
                None => targs[*i as usize] = Some(a),
                Some(t) if t == a => {}
                Some(_) => return None,
            },
            _ => return None,
        }
    }
    targs.into_iter().collect()
}
