//! The test corpus harness: `.kl` files with directives in comments, run on every executor.
//!
//! A case is one `.kl` file. Directives (see `docs/corpus.md`):
//!
//! | directive | meaning |
//! |---|---|
//! | `// test: error ir opt` | stages: expect compile errors; compare IR snapshots (`NAME.ir` as lowered, `NAME.opt.ir` optimised) |
//! | `// run: EXPR == EXPECTED` | bit-exact, NaN bits included (tuples componentwise) |
//! | `// run: EXPR is nan` | a float NaN |
//! | `// run: EXPR ~= EXPECTED ulps=N` | within N ulps |
//! | `// run: EXPR error "TEXT"` | a runtime error whose message contains TEXT |
//! | `// out: TEXT` | the next line the script prints |
//! | `// script-error: TEXT` | the script stops with an error containing TEXT |
//! | `//~ ERROR TEXT`, `//~^ ERROR TEXT` | a compile error on this line (or the line above) |
//!
//! Every run line and script is executed by every executor; results must agree bit for bit
//! between executors, not only with the expectation. Error cases also compare the rendered
//! diagnostics with a sibling `NAME.stderr`. Snapshots are rewritten with `KILN_BLESS=1`
//! (or `kiln test --bless`); a snapshot whose case no longer asks for it is an error.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kiln_front::typed::{TExpr, TStmt};
use kiln_ir::Scalar;
use kiln_runtime::{Executor, Interpreter};
use kiln_syntax::ast::{self, Expr, ExprKind, Ident, Literal, Pattern, Stmt, StmtKind, TopLevel};
use kiln_syntax::Span;

use crate::script::{format_value, Evaluator};
use crate::Error;

/// How to run a corpus.
pub struct Options {
    /// Rewrite snapshots instead of comparing them.
    pub bless: bool,
    /// The executors every case runs on; the first is the reference.
    pub executors: Vec<Box<dyn Executor>>,
    /// The wall-clock budget of one case on all executors together: past it, running
    /// kernels are interrupted and the case fails (native code has no instruction budget,
    /// so a loop that never ends would otherwise hang the run).
    pub time_limit: std::time::Duration,
    /// The statements and loop iterations a case's script may execute on each executor
    /// (the same count everywhere, so every executor stops at the same point).
    pub script_steps: u64,
}

/// The default [`Options::time_limit`]: 60 s, far beyond the slowest case (under 2 s in a
/// debug build).
pub const DEFAULT_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The default [`Options::script_steps`].
pub const DEFAULT_SCRIPT_STEPS: u64 = 10_000_000;

impl Default for Options {
    fn default() -> Self {
        Options {
            bless: std::env::var_os("KILN_BLESS").is_some_and(|v| v != "0"),
            executors: default_executors(),
            time_limit: DEFAULT_TIME_LIMIT,
            script_steps: DEFAULT_SCRIPT_STEPS,
        }
    }
}

/// The executors available in this build: the interpreter on lowered IR (the oracle), on
/// optimised IR (which checks the optimiser), the Cranelift JIT, and the JIT again with
/// every scalar call run through its SIMD loop ([`kiln_runtime::CpuLoops`]). Every case must give
/// the same bits on all of them (math builtins included: the JIT calls the interpreter's
/// `libm`).
pub fn default_executors() -> Vec<Box<dyn Executor>> {
    let mut execs: Vec<Box<dyn Executor>> = vec![
        Box::new(Interpreter {
            fuel: 50_000_000,
            optimized: false,
        }),
        Box::new(Interpreter {
            fuel: 50_000_000,
            optimized: true,
        }),
    ];
    match (kiln_runtime::Cpu::new(), kiln_runtime::Cpu::new()) {
        (Ok(cpu), Ok(loops)) => {
            execs.push(Box::new(cpu));
            // Scalar calls again, through the SIMD loops: vector and scalar code must agree.
            execs.push(Box::new(kiln_runtime::CpuLoops(loops)));
        }
        // A host Cranelift cannot compile for: the corpus still runs on the interpreter.
        (Err(e), _) | (_, Err(e)) => tracing_unsupported(&e.to_string()),
    }
    // The GPU back end's code, run on the host: checks its translation without a GPU.
    #[cfg(feature = "gpu")]
    {
        execs.push(Box::new(kiln_runtime::llvm_host::LlvmHost::new()));
        // The GPU itself, where there is one.
        match kiln_runtime::gpu::Gpu::new() {
            Ok(gpu) => execs.push(Box::new(gpu)),
            Err(e) => skip_note(&format!("GPU executor skipped: {e}")),
        }
    }
    execs
}

#[cfg(feature = "gpu")]
#[allow(clippy::print_stderr)]
fn skip_note(why: &str) {
    eprintln!("note: {why}");
}

#[allow(clippy::print_stderr)]
fn tracing_unsupported(why: &str) {
    eprintln!("note: the CPU back end is not available on this host ({why}); corpus cases run on the interpreter only");
}

/// The outcome of a corpus run.
#[derive(Debug, Default)]
pub struct Report {
    /// Cases that passed.
    pub passed: usize,
    /// Failed cases with their explanation.
    pub failed: Vec<(PathBuf, String)>,
    /// Snapshot files written in bless mode.
    pub blessed: Vec<PathBuf>,
}

const BLESS_HINT: &str = "to accept the new output, run: KILN_BLESS=1 cargo test --test corpus (or kiln test DIR --bless)";

/// Every file under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every `.kl` file under `dir`, sorted.
pub fn cases(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    Ok(files_under(dir)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "kl"))
        .collect())
}

/// Runs every case under `dir`, calling `progress` after each.
pub fn run_dir(
    dir: &Path,
    opts: &Options,
    mut progress: impl FnMut(&Path, Result<(), &str>),
) -> std::io::Result<Report> {
    let mut report = Report::default();
    let all = cases(dir)?;
    let mut wanted: BTreeSet<PathBuf> = BTreeSet::new();
    for path in &all {
        let (result, timed_out) = with_deadline(opts.time_limit, || {
            run_case(path, opts, &mut report.blessed, &mut wanted)
        });
        let result = match result {
            Err(e) if timed_out => Err(format!(
                "the case did not finish within {} s and was stopped (a loop that does not end?): {e}",
                opts.time_limit.as_secs_f64()
            )),
            other => other,
        };
        progress(path, result.as_ref().map(|_| ()).map_err(String::as_str));
        match result {
            Ok(()) => report.passed += 1,
            Err(e) => report.failed.push((path.clone(), e)),
        }
    }
    // Orphaned snapshots.
    for p in files_under(dir)? {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let is_snapshot = name.ends_with(".ir") || name.ends_with(".stderr");
        if is_snapshot && !wanted.contains(&p) {
            if opts.bless {
                std::fs::remove_file(&p)?;
                report.blessed.push(p);
            } else {
                report.failed.push((
                    p.clone(),
                    format!("orphaned snapshot: no case asks for it (delete it, or {BLESS_HINT})"),
                ));
            }
        }
    }
    Ok(report)
}

/// Runs `f`; if it takes longer than `limit`, running kernels are interrupted (as by
/// Ctrl-C: native loops check the flag at every back-edge, the interpreter at every block,
/// scripts at every statement). Returns `f`'s result and whether the deadline passed.
fn with_deadline<T>(limit: std::time::Duration, f: impl FnOnce() -> T) -> (T, bool) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::{channel, RecvTimeoutError};
    use std::sync::Arc;
    let (done, wait) = channel::<()>();
    let fired = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let fired = fired.clone();
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                fired.store(true, Ordering::SeqCst);
                crate::interrupt::request();
            }
        })
    };
    let out = f();
    drop(done);
    // The watchdog only waits on the channel, which `drop` just closed.
    let _ = watchdog.join();
    let fired = fired.load(Ordering::SeqCst);
    if fired {
        crate::interrupt::clear();
    }
    (out, fired)
}

#[derive(Debug)]
enum Expect {
    Exact(String, usize, String, usize),
    Nan(String, usize),
    Ulps(String, usize, String, usize, u64),
    RuntimeError(String, usize, String),
}

#[derive(Debug, Default)]
struct Directives {
    stages: BTreeSet<String>,
    runs: Vec<(usize, Expect)>,
    out: Vec<String>,
    script_error: Option<String>,
    /// (line, message substring)
    errors: Vec<(usize, String)>,
}

fn parse_directives(src: &str) -> Result<Directives, String> {
    let mut d = Directives::default();
    let mut offset = 0;
    for (i, line) in src.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        let line_start = offset;
        offset += line.len();
        let line = line.trim_end_matches(['\n', '\r']);
        let Some(pos) = line.find("//") else { continue };
        let comment = &line[pos..];
        if let Some(rest) = comment.strip_prefix("//~") {
            let carets = rest.chars().take_while(|&c| c == '^').count();
            let rest = rest[carets..].trim_start();
            let msg = rest
                .strip_prefix("ERROR")
                .ok_or_else(|| format!("line {line_no}: expected `//~ ERROR message`"))?;
            if line_no <= carets {
                return Err(format!("line {line_no}: `//~^` points above the file"));
            }
            d.errors.push((line_no - carets, msg.trim().to_string()));
            continue;
        }
        let body = comment[2..].trim_start();
        let body_at = line_start + pos + (comment.len() - body.len());
        if let Some(words) = body.strip_prefix("test:") {
            d.stages
                .extend(words.split_whitespace().map(str::to_string));
        } else if let Some(r) = body.strip_prefix("run:") {
            let text_at = body_at + 4 + (r.len() - r.trim_start().len());
            d.runs.push((
                line_no,
                parse_run(r.trim(), text_at).map_err(|e| format!("line {line_no}: {e}"))?,
            ));
        } else if let Some(o) = body.strip_prefix("out:") {
            d.out.push(o.strip_prefix(' ').unwrap_or(o).to_string());
        } else if let Some(e) = body.strip_prefix("script-error:") {
            d.script_error = Some(e.trim().to_string());
        }
    }
    for s in &d.stages {
        if !["check", "error", "ir", "opt", "run", "script"].contains(&s.as_str()) {
            return Err(format!(
                "unknown stage `{s}` in `// test:` (known: check error ir opt run script)"
            ));
        }
    }
    Ok(d)
}

/// Splits a run line into its expectation; positions are byte offsets in the file.
fn parse_run(text: &str, at: usize) -> Result<Expect, String> {
    if let Some(e) = text.strip_suffix(" is nan") {
        return Ok(Expect::Nan(e.to_string(), at));
    }
    if let Some(idx) = text.rfind(" error \"") {
        if text.ends_with('"') && text.len() > idx + 8 {
            let msg = &text[idx + 8..text.len() - 1];
            return Ok(Expect::RuntimeError(
                text[..idx].to_string(),
                at,
                msg.to_string(),
            ));
        }
    }
    if let Some(idx) = text.rfind(" ~= ") {
        let rhs = &text[idx + 4..];
        let u = rhs.rfind(" ulps=").ok_or("`~=` needs `ulps=N`")?;
        let ulps = rhs[u + 6..]
            .trim()
            .parse::<u64>()
            .map_err(|_| "`ulps=` needs a number")?;
        return Ok(Expect::Ulps(
            text[..idx].to_string(),
            at,
            rhs[..u].to_string(),
            at + idx + 4,
            ulps,
        ));
    }
    // `a == b`: split where the parser sees the top-level `==`.
    let padded = format!("{}{}", " ".repeat(at), text);
    let e = kiln_syntax::parse_expr(&padded).map_err(|e| e.message)?;
    match &e.kind {
        ExprKind::Binary(ast::BinOp::Eq, a, b) => {
            let (a0, a1) = (a.span.start as usize - at, a.span.end as usize - at);
            let (b0, b1) = (b.span.start as usize - at, b.span.end as usize - at);
            Ok(Expect::Exact(text[a0..a1].to_string(), a.span.start as usize, text[b0..b1].to_string(), b.span.start as usize))
        }
        _ => Err("a run line is `EXPR == EXPECTED`, `EXPR is nan`, `EXPR ~= EXPECTED ulps=N` or `EXPR error \"TEXT\"`".into()),
    }
}

fn parse_at(text: &str, at: usize) -> Result<Expr, String> {
    let padded = format!("{}{}", " ".repeat(at), text);
    kiln_syntax::parse_expr(&padded).map_err(|e| e.message)
}

fn name_expr(name: &str, span: Span) -> Expr {
    Expr {
        kind: ExprKind::Name(Ident {
            name: name.into(),
            span,
        }),
        span,
        depth: 1,
    }
}

fn let_stmt(name: &str, value: Expr) -> Stmt {
    let span = value.span;
    Stmt {
        kind: StmtKind::Let {
            pat: Pattern::Name(Ident {
                name: name.into(),
                span,
            }),
            ty: None,
            value,
        },
        span,
    }
}

/// `if true { expected } else { actual }`: gives `expected` the type of `actual`.
fn typed_like(expected: Expr, actual: &str) -> Expr {
    let span = expected.span;
    let depth = expected.depth + 3;
    let block = |e: Expr| Expr {
        span: e.span,
        depth: e.depth + 1,
        kind: ExprKind::Block(ast::Block {
            stmts: vec![],
            tail: Some(Box::new(e)),
        }),
    };
    let cond = Expr {
        kind: ExprKind::Lit(Literal::Bool(true)),
        span,
        depth: 1,
    };
    Expr {
        kind: ExprKind::If(
            Box::new(cond),
            Box::new(block(expected)),
            Some(Box::new(block(name_expr(actual, span)))),
        ),
        span,
        depth,
    }
}

fn ulps_apart(a: Scalar, b: Scalar) -> Option<u64> {
    fn ordered64(bits: u64) -> i128 {
        let b = bits as i64;
        (if b < 0 { i64::MIN.wrapping_sub(b) } else { b }) as i128
    }
    fn ordered32(bits: u32) -> i128 {
        let b = bits as i32;
        (if b < 0 { i32::MIN.wrapping_sub(b) } else { b }) as i128
    }
    match (a, b) {
        (Scalar::F64(x), Scalar::F64(y)) => {
            Some((ordered64(x.to_bits()) - ordered64(y.to_bits())).unsigned_abs() as u64)
        }
        (Scalar::F32(x), Scalar::F32(y)) => {
            Some((ordered32(x.to_bits()) - ordered32(y.to_bits())).unsigned_abs() as u64)
        }
        _ => None,
    }
}

fn show(vals: &[Scalar]) -> String {
    let parts: Vec<String> = vals.iter().map(|v| format!("{v} ({})", v.ty())).collect();
    parts.join(", ")
}

/// Compares `actual` with a snapshot file, or writes it in bless mode.
fn snapshot(
    path: &Path,
    actual: &str,
    opts: &Options,
    blessed: &mut Vec<PathBuf>,
) -> Result<(), String> {
    let expected = std::fs::read_to_string(path).ok();
    if expected.as_deref() == Some(actual) {
        return Ok(());
    }
    if opts.bless {
        std::fs::write(path, actual).map_err(|e| format!("{}: {e}", path.display()))?;
        blessed.push(path.to_path_buf());
        return Ok(());
    }
    let expected = expected.unwrap_or_default();
    let diff = similar::TextDiff::from_lines(expected.as_str(), actual);
    let mut msg = format!("snapshot {} differs:\n", path.display());
    let _ = write!(
        msg,
        "{}",
        diff.unified_diff()
            .context_radius(3)
            .header("expected", "actual")
    );
    let _ = write!(msg, "{BLESS_HINT}");
    Err(msg)
}

/// Runs one case. Snapshot paths it uses are added to `wanted`.
pub fn run_case(
    path: &Path,
    opts: &Options,
    blessed: &mut Vec<PathBuf>,
    wanted: &mut BTreeSet<PathBuf>,
) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let src = String::from_utf8(bytes).map_err(|_| "case is not valid UTF-8".to_string())?;
    let d = parse_directives(&src)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("case.kl")
        .to_string();
    let sibling = |ext: &str| path.with_extension(ext);

    if d.stages.contains("error") || !d.errors.is_empty() {
        return error_case(
            &src,
            &file_name,
            &d,
            &sibling("stderr"),
            opts,
            blessed,
            wanted,
        );
    }

    // Items and script, plus two script statements per run line: `let __runN = EXPR;` and
    // `let __expectN = if true { EXPECTED } else { __runN };`.
    let mut ast = crate::parse(&file_name, &src).map_err(|e| e.to_string())?;
    let original_stmts = ast
        .entries
        .iter()
        .filter(|e| matches!(e, TopLevel::Stmt(_)))
        .count();
    for (i, (_, expect)) in d.runs.iter().enumerate() {
        let (expr, at, expected) = match expect {
            Expect::Exact(e, at, x, xat) | Expect::Ulps(e, at, x, xat, _) => {
                (e, *at, Some((x, *xat)))
            }
            Expect::Nan(e, at) | Expect::RuntimeError(e, at, _) => (e, *at, None),
        };
        let actual = format!("__run{i}");
        ast.entries
            .push(TopLevel::Stmt(let_stmt(&actual, parse_at(expr, at)?)));
        let expected_expr = match expected {
            Some((x, xat)) => typed_like(parse_at(x, xat)?, &actual),
            None => name_expr(&actual, Span::new(at, at)),
        };
        ast.entries.push(TopLevel::Stmt(let_stmt(
            &format!("__expect{i}"),
            expected_expr,
        )));
    }
    let compiled = crate::compile_parsed(&file_name, &src, &ast)
        .map_err(|e| format!("compile error:\n{e}"))?;

    if d.stages.contains("ir") {
        let p = sibling("ir");
        wanted.insert(p.clone());
        snapshot(&p, &kiln_ir::write_module(&compiled.module), opts, blessed)?;
    }
    if d.stages.contains("opt") {
        let p = sibling("opt.ir");
        wanted.insert(p.clone());
        snapshot(
            &p,
            &kiln_ir::write_module(&compiled.optimized),
            opts,
            blessed,
        )?;
    }

    let stmts = &compiled.program.script.stmts;
    let (script, run_stmts) = stmts.split_at(original_stmts.min(stmts.len()));
    for (i, (line, expect)) in d.runs.iter().enumerate() {
        let pair = &run_stmts[2 * i..2 * i + 2];
        run_line(&compiled, pair, expect, opts).map_err(|e| format!("line {line}: {e}"))?;
    }
    if !script.is_empty() || !d.out.is_empty() || d.script_error.is_some() {
        run_script(&compiled, script, &d, opts)?;
    }
    Ok(())
}

fn let_value(s: &TStmt) -> &TExpr {
    match s {
        TStmt::Let { value, .. } => value,
        _ => unreachable!("run lines are lowered to `let` statements"),
    }
}

fn run_line(
    c: &crate::Compiled,
    pair: &[TStmt],
    expect: &Expect,
    opts: &Options,
) -> Result<(), String> {
    let mut reference: Option<(String, Result<Vec<Scalar>, String>)> = None;
    for exec in &opts.executors {
        let mut ev = Evaluator::new(c, exec.as_ref()).with_step_budget(opts.script_steps);
        let mut out = Vec::new();
        let actual = ev.run_stmts(&pair[..1], &mut out).map(|_| ());
        let result: Result<Vec<Scalar>, String> = match actual {
            Ok(()) => {
                let TStmt::Let { locals, .. } = &pair[0] else {
                    unreachable!("a let")
                };
                Ok(ev
                    .value(locals[0])
                    .map(<[Scalar]>::to_vec)
                    .unwrap_or_default())
            }
            Err(Error::Runtime { error, .. }) => Err(error.to_string()),
            Err(e) => return Err(format!("{} failed: {e}", exec.name())),
        };
        // Agreement between executors comes first: it is the point of running several.
        if let Some((ref_name, ref_result)) = &reference {
            let agree = match (ref_result, &result) {
                (Ok(a), Ok(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(*y)),
                (Err(a), Err(b)) => a == b,
                _ => false,
            };
            if !agree {
                return Err(format!(
                    "executors disagree: {ref_name} gave {ref_result:?}, {} gave {result:?}",
                    exec.name()
                ));
            }
            continue;
        }
        match (expect, &result) {
            (Expect::RuntimeError(_, _, msg), Err(e)) if e.contains(msg.as_str()) => {}
            (Expect::RuntimeError(_, _, msg), other) => {
                return Err(format!(
                    "expected a runtime error containing {msg:?}, got {other:?} ({})",
                    exec.name()
                ))
            }
            (_, Err(e)) => return Err(format!("runtime error: {e} ({})", exec.name())),
            (Expect::Nan(..), Ok(v)) => {
                if !(v.len() == 1 && v[0].is_nan()) {
                    return Err(format!("expected NaN, got {} ({})", show(v), exec.name()));
                }
            }
            (Expect::Exact(..) | Expect::Ulps(..), Ok(v)) => {
                ev.run_stmts(&pair[1..], &mut out)
                    .map_err(|e| format!("evaluating the expected value: {e}"))?;
                let TStmt::Let { locals, .. } = &pair[1] else {
                    unreachable!("a let")
                };
                let want = ev
                    .value(locals[0])
                    .map(<[Scalar]>::to_vec)
                    .unwrap_or_default();
                let ok = match expect {
                    Expect::Ulps(.., n) => {
                        v.len() == want.len()
                            && v.iter().zip(&want).all(|(a, b)| {
                                a.same(*b) || ulps_apart(*a, *b).is_some_and(|d| d <= *n)
                            })
                    }
                    _ => v.len() == want.len() && v.iter().zip(&want).all(|(a, b)| a.same(*b)),
                };
                if !ok {
                    let ty = &let_value(&pair[0]).ty;
                    return Err(format!(
                        "expected {} = {}, got {} = {} ({})",
                        format_value(ty, &want),
                        show(&want),
                        format_value(ty, v),
                        show(v),
                        exec.name()
                    ));
                }
            }
        }
        reference = Some((exec.name().to_string(), result));
    }
    Ok(())
}

fn run_script(
    c: &crate::Compiled,
    script: &[TStmt],
    d: &Directives,
    opts: &Options,
) -> Result<(), String> {
    let mut reference: Option<(String, String, Option<String>)> = None;
    for exec in &opts.executors {
        let mut ev = Evaluator::new(c, exec.as_ref()).with_step_budget(opts.script_steps);
        let mut out = Vec::new();
        let err = match ev.run_stmts(script, &mut out) {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        };
        let out = String::from_utf8_lossy(&out).into_owned();
        if let Some((name, ref_out, ref_err)) = &reference {
            if *ref_out != out || *ref_err != err {
                return Err(format!("executors disagree on the script: {name} printed {ref_out:?} ({ref_err:?}), {} printed {out:?} ({err:?})", exec.name()));
            }
            continue;
        }
        let lines: Vec<&str> = out.lines().collect();
        if lines != d.out.iter().map(String::as_str).collect::<Vec<_>>() {
            let diff = similar::TextDiff::from_lines(&d.out.join("\n"), &lines.join("\n"))
                .unified_diff()
                .header("expected (// out:)", "actual")
                .to_string();
            return Err(format!(
                "script output differs ({}):\n{diff}{}",
                exec.name(),
                err.map(|e| format!("\nand it failed: {e}"))
                    .unwrap_or_default()
            ));
        }
        match (&d.script_error, &err) {
            (None, None) => {}
            (Some(want), Some(got)) if got.contains(want.as_str()) => {}
            (want, got) => {
                return Err(format!(
                    "script error: expected {want:?}, got {got:?} ({})",
                    exec.name()
                ))
            }
        }
        reference = Some((exec.name().to_string(), out, err));
    }
    Ok(())
}

fn error_case(
    src: &str,
    file_name: &str,
    d: &Directives,
    stderr_path: &Path,
    opts: &Options,
    blessed: &mut Vec<PathBuf>,
    wanted: &mut BTreeSet<PathBuf>,
) -> Result<(), String> {
    wanted.insert(stderr_path.to_path_buf());
    let diags = match crate::compile(file_name, src) {
        Ok(_) => return Err("expected compile errors, but the file compiled".into()),
        Err(Error::Compile(diags)) => diags,
        Err(e) => return Err(format!("expected compile errors, got: {e}")),
    };
    let line_of = |offset: usize| src[..offset.min(src.len())].matches('\n').count() + 1;
    let mut unmatched: Vec<(usize, String)> = Vec::new();
    let mut expected = d.errors.clone();
    for diag in diags.items() {
        let line = diag.labels.first().map_or(0, |l| line_of(l.range.start));
        match expected
            .iter()
            .position(|(l, m)| *l == line && diag.message.contains(m.as_str()))
        {
            Some(i) => {
                expected.remove(i);
            }
            None => unmatched.push((line, diag.message.clone())),
        }
    }
    if !expected.is_empty() || !unmatched.is_empty() {
        let mut msg = String::new();
        for (l, m) in &expected {
            let _ = writeln!(
                msg,
                "expected error on line {l} containing {m:?} was not reported"
            );
        }
        for (l, m) in &unmatched {
            let _ = writeln!(msg, "unexpected error on line {l}: {m}");
        }
        let _ = write!(msg, "rendered:\n{}", diags.render());
        return Err(msg);
    }
    snapshot(stderr_path, &diags.render(), opts, blessed)
}
