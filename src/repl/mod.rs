//! The kernel REPL: a [`Session`] that keeps the items and variables of everything typed so
//! far, and (in [`editor`]) the line editor around it that `kiln` opens on a terminal.
//!
//! **How an input runs.** Items (`fn`, `ufunc`, `reduce`, `const`) are remembered by name;
//! a new definition replaces the old one, and later calls use it. Variables are remembered
//! with their type and value. Each input is checked and compiled as one file made of
//! 1. one placeholder declaration per variable, `let x: f64 = 0.0;` (`var` for mutable
//!    ones) — the evaluator then gives each placeholder the variable's real value, an array
//!    included (the checker types arrays by their element type, spec §6);
//! 2. the input itself;
//! 3. the remembered items not redefined by the input.
//!
//! so an input is checked against everything defined before, exactly as a script file would
//! be. Diagnostics and runtime errors that point into the input are shown against the
//! input alone — line 1 is the line just typed. A bare expression (no `let`, no `;` needed)
//! prints its value; arrays are summarised NumPy-style with their shape and dtype.

pub mod editor;

use std::io::Write;
use std::sync::Arc;

use kiln_front::typed::TStmt;
use kiln_front::{Diag, Ty};
use kiln_ir::ScalarType;
use kiln_runtime::{DynArray, Executor, Threads};
use kiln_syntax::ast::{StmtKind, TopLevel};

use crate::script::{format_arrays, format_value, Evaluator, Val};
use crate::{Compiled, Diagnostics, Error, RuntimeError};

/// The file name inputs are shown under.
pub const INPUT_NAME: &str = "<repl>";

/// A remembered item: its name and source text.
#[derive(Clone, Debug)]
struct Item {
    name: String,
    src: String,
}

/// A remembered variable.
#[derive(Clone, Debug)]
pub struct Var {
    /// Its name.
    pub name: String,
    /// Its type (an array's element type).
    pub ty: Ty,
    /// Declared with `var`.
    pub mutable: bool,
    /// Its value.
    pub val: Val,
}

/// What became of one input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Items defined (name, whether it replaced an earlier definition).
    pub defined: Vec<(String, bool)>,
}

/// The state of a REPL session: items, variables, and where kernels run.
pub struct Session {
    items: Vec<Item>,
    vars: Vec<Var>,
    exec: Arc<dyn Executor>,
    threads: Threads,
    /// The file of the last `:load`, for `:reload`.
    last_file: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("items", &self.items.len())
            .field("vars", &self.vars.len())
            .field("backend", &self.exec.name())
            .finish_non_exhaustive()
    }
}

/// The session source of one input and where the input sits in it.
struct Assembled {
    src: String,
    /// Byte offset of the input.
    start: usize,
    /// Line (1-based) of the input's first line.
    first_line: u32,
    /// Number of placeholder statements before the input's statements.
    placeholders: usize,
    /// The input as compiled (a bare expression becomes `let __value = …;`).
    input: String,
    /// What the user typed, which errors are shown against.
    display: String,
    /// Offset from a byte of `input` to the same byte of `display` (negative by the
    /// length of the `let __value = ` prefix of a bare expression).
    shift: isize,
    /// Whether the input is a bare expression whose value is printed.
    shows_value: bool,
    /// The items the input defines.
    items: Vec<Item>,
    /// The remembered items after the input, with the line each starts on.
    item_lines: Vec<(u32, Item)>,
}

/// The local a bare expression's value is bound to.
const VALUE: &str = "__value";

/// `let __value = EXPR;`, and the shift from its bytes to `expr`'s (minus the prefix).
fn bind_value(expr: &str) -> (String, isize) {
    let prefix = format!("let {VALUE} = ");
    (format!("{prefix}{expr};"), -(prefix.len() as isize))
}

impl Session {
    /// A session running kernels on `exec` with `threads`.
    pub fn new(exec: Arc<dyn Executor>, threads: Threads) -> Session {
        Session {
            items: Vec::new(),
            vars: Vec::new(),
            exec,
            threads,
            last_file: None,
        }
    }

    /// The executor kernels run on.
    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.exec
    }

    /// Runs kernels on `exec` from now on.
    pub fn set_executor(&mut self, exec: Arc<dyn Executor>) {
        self.exec = exec;
    }

    /// The thread pool of array calls.
    pub fn threads(&self) -> &Threads {
        &self.threads
    }

    /// Runs array calls on `threads` from now on.
    pub fn set_threads(&mut self, threads: Threads) {
        self.threads = threads;
    }

    /// The variables, in the order they were first defined.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The names of the items defined so far.
    pub fn item_names(&self) -> Vec<&str> {
        self.items.iter().map(|i| i.name.as_str()).collect()
    }

    /// Runs one complete input (items and statements, as in a `.kl` file), writing what it
    /// prints to `out`. On an error, statements that ran before it keep their effects.
    pub fn eval(&mut self, input: &str, out: &mut dyn Write) -> Result<Outcome, Error> {
        let (ast, asm) = self.assemble(input)?;
        let compiled =
            crate::compile_parsed(INPUT_NAME, &asm.src, &ast).map_err(|e| relocate(e, &asm))?;
        // The input's items replace or join the remembered ones.
        let mut outcome = Outcome::default();
        for item in &asm.items {
            let replaced = match self.items.iter_mut().find(|i| i.name == item.name) {
                Some(old) => {
                    old.src.clone_from(&item.src);
                    true
                }
                None => {
                    self.items.push(item.clone());
                    false
                }
            };
            outcome.defined.push((item.name.clone(), replaced));
        }
        self.run(&compiled, &asm, out)?;
        Ok(outcome)
    }

    /// Type-checks `expr` against the session and returns its type (an array's element
    /// type for an expression over arrays).
    pub fn type_of(&self, expr: &str) -> Result<Ty, Error> {
        let expr = expr.trim().trim_end_matches(';');
        if expr.trim().is_empty() {
            return Err(Error::Usage(
                ":type needs an expression, as in `:type x * 2.0`".into(),
            ));
        }
        let (input, shift) = bind_value(expr);
        let (ast, asm) = self.assemble_exact(&input, false, (expr, shift))?;
        let compiled =
            crate::compile_parsed(INPUT_NAME, &asm.src, &ast).map_err(|e| relocate(e, &asm))?;
        let locals = &compiled.program.script.locals;
        locals
            .iter()
            .rev()
            .find(|l| l.name == VALUE)
            .map(|l| l.ty.clone())
            .ok_or_else(|| Error::Usage("not an expression".into()))
    }

    /// The session source for `input`, parsed. A bare expression is bound to a local whose
    /// value is printed afterwards.
    fn assemble(&self, input: &str) -> Result<(kiln_syntax::ast::Module, Assembled), Error> {
        let trimmed = input.trim_end();
        // A bare expression: `x + 1`, with or without `;`.
        let bare = format!("{};", trimmed.trim_end_matches(';'));
        if let Ok(m) = crate::parse(INPUT_NAME, &bare) {
            if let [TopLevel::Stmt(s)] = &m.entries[..] {
                if let StmtKind::Expr { expr, .. } = &s.kind {
                    if !is_print(expr) {
                        let span = expr.span.range();
                        let (shown, shift) = bind_value(&bare[span.clone()]);
                        let shift = shift + span.start as isize;
                        return self.assemble_exact(&shown, true, (trimmed, shift));
                    }
                }
            }
        }
        self.assemble_exact(trimmed, false, (trimmed, 0))
    }

    /// The session source for `input` as it is; errors are shown against `display.0`, whose
    /// byte `i + display.1` is the input's byte `i`.
    fn assemble_exact(
        &self,
        input: &str,
        shows_value: bool,
        display: (&str, isize),
    ) -> Result<(kiln_syntax::ast::Module, Assembled), Error> {
        let mut asm = Assembled {
            src: String::new(),
            start: 0,
            first_line: 1,
            placeholders: 0,
            input: input.to_string(),
            display: display.0.to_string(),
            shift: display.1,
            shows_value,
            items: Vec::new(),
            item_lines: Vec::new(),
        };
        // Parse the input alone first, so syntax errors point into it.
        let input_ast = crate::parse(INPUT_NAME, input).map_err(|e| relocate_from(e, &asm, 0))?;
        let items: Vec<Item> = input_ast
            .entries
            .iter()
            .filter_map(|e| match e {
                TopLevel::Item(i) => {
                    let span = i.span().range();
                    let start = with_doc_lines(input, span.start);
                    Some(Item {
                        name: i.name().name.clone(),
                        src: input[start..span.end].to_string(),
                    })
                }
                TopLevel::Stmt(_) => None,
            })
            .collect();
        let mut src = String::new();
        let mut placeholders = 0;
        for v in &self.vars {
            let kw = if v.mutable { "var" } else { "let" };
            src.push_str(&format!(
                "{kw} {}: {} = {};\n",
                v.name,
                type_text(&v.ty),
                zero_of(&v.ty)
            ));
            placeholders += 1;
        }
        let start = src.len();
        let first_line = src.lines().count() as u32 + 1;
        src.push_str(input);
        src.push('\n');
        let mut item_lines = Vec::new();
        for item in &self.items {
            if !items.iter().any(|i| i.name == item.name) {
                let first = src.lines().count() as u32 + 1;
                src.push_str(&item.src);
                src.push('\n');
                item_lines.push((first, item.clone()));
            }
        }
        asm.src = src;
        asm.start = start;
        asm.first_line = first_line;
        asm.placeholders = placeholders;
        asm.items = items;
        asm.item_lines = item_lines;
        let ast = crate::parse(INPUT_NAME, &asm.src).map_err(|e| relocate(e, &asm))?;
        Ok((ast, asm))
    }

    /// An evaluator for a compiled session source whose placeholders (its first statements)
    /// hold the variables' values; also returns the placeholders' locals.
    fn evaluator<'c>(
        &self,
        compiled: &'c Compiled,
        exec: &'c dyn Executor,
    ) -> (Evaluator<'c>, Vec<kiln_front::LocalId>) {
        let mut ev = Evaluator::new(compiled, exec).with_threads(self.threads.clone());
        let mut placeholders = Vec::new();
        for (v, s) in self.vars.iter().zip(&compiled.program.script.stmts) {
            if let TStmt::Let { locals, .. } = s {
                ev.set_val(locals[0], v.val.clone());
                placeholders.push(locals[0]);
            }
        }
        (ev, placeholders)
    }

    /// Runs the input's statements with the variables' values, then remembers the values
    /// of the variables they defined or changed (also when a statement fails).
    fn run(
        &mut self,
        compiled: &Compiled,
        asm: &Assembled,
        out: &mut dyn Write,
    ) -> Result<(), Error> {
        let exec = self.exec.clone();
        let (mut ev, placeholder_locals) = self.evaluator(compiled, exec.as_ref());
        let stmts = &compiled.program.script.stmts;
        let locals = &compiled.program.script.locals;
        let result = ev.run_stmts(&stmts[asm.placeholders..], out);
        // Placeholders declared with `var` may have been assigned.
        for (v, l) in self.vars.iter_mut().zip(&placeholder_locals) {
            if let Some(val) = ev.val(*l) {
                v.val = val.clone();
            }
        }
        let mut shown = None;
        for s in &stmts[asm.placeholders..] {
            let TStmt::Let { locals: ls, .. } = s else {
                continue;
            };
            for &l in ls {
                let info = &locals[l.0 as usize];
                let Some(val) = ev.val(l) else { continue };
                if asm.shows_value && info.name == VALUE {
                    shown = Some((info.ty.clone(), val.clone()));
                    continue;
                }
                let var = Var {
                    name: info.name.clone(),
                    ty: concrete(&info.ty),
                    mutable: info.mutable,
                    val: val.clone(),
                };
                match self.vars.iter_mut().find(|v| v.name == var.name) {
                    Some(old) => *old = var,
                    None => self.vars.push(var),
                }
            }
        }
        result.map_err(|e| relocate(e, asm))?;
        if let Some((ty, val)) = shown {
            let text = show(&ty, &val);
            if !text.is_empty() {
                writeln!(out, "{text}").map_err(|e| Error::Io {
                    path: "<stdout>".into(),
                    error: e,
                })?;
            }
        }
        Ok(())
    }
}

/// `start` moved back over the `///` lines just before it (an item's documentation).
fn with_doc_lines(src: &str, start: usize) -> usize {
    let mut begin = src[..start].rfind('\n').map_or(0, |i| i + 1);
    if !src[begin..start].trim().is_empty() {
        return start;
    }
    while begin > 0 {
        let prev = src[..begin - 1].rfind('\n').map_or(0, |i| i + 1);
        if !src[prev..begin].trim_start().starts_with("///") {
            break;
        }
        begin = prev;
    }
    begin
}

fn is_print(e: &kiln_syntax::ast::Expr) -> bool {
    matches!(&e.kind, kiln_syntax::ast::ExprKind::Call(f, _) if f.name == "print")
}

/// `ty` with literal types made concrete (an unconstrained literal is `i64` or `f64`).
fn concrete(ty: &Ty) -> Ty {
    match ty {
        Ty::IntLit => Ty::Scalar(ScalarType::I64),
        Ty::FloatLit => Ty::Scalar(ScalarType::F64),
        Ty::Tuple(ts) => Ty::Tuple(ts.iter().map(concrete).collect()),
        other => other.clone(),
    }
}

/// `ty` as source text, for a placeholder's annotation.
fn type_text(ty: &Ty) -> String {
    concrete(ty).to_string()
}

/// A literal of type `ty`, for a placeholder's value.
fn zero_of(ty: &Ty) -> String {
    match concrete(ty) {
        Ty::Scalar(ScalarType::Bool) => "false".into(),
        Ty::Scalar(t) if t.is_float() => format!("0.0{}", t.name()),
        Ty::Scalar(t) => format!("0{}", t.name()),
        Ty::Tuple(ts) => {
            let parts: Vec<String> = ts.iter().map(zero_of).collect();
            format!("({})", parts.join(", "))
        }
        _ => "()".into(),
    }
}

/// A value as the REPL shows it: scalars as `print` does, arrays summarised with their
/// shape and dtype.
pub fn show(ty: &Ty, val: &Val) -> String {
    match val {
        Val::S(v) if v.is_empty() => String::new(),
        Val::S(v) => format_value(ty, v),
        Val::A(arrays) => {
            let parts: Vec<String> = arrays.iter().map(show_array).collect();
            if parts.len() == 1 {
                parts.into_iter().next().unwrap_or_default()
            } else {
                format!("({})", parts.join(", "))
            }
        }
    }
}

/// `array([0.0, 0.5, ..., 1.0], shape=(1000000,), dtype=f64)`.
pub fn show_array(a: &DynArray) -> String {
    let dims: Vec<String> = a.shape().iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    format!(
        "array({}, shape={shape}, dtype={})",
        format_arrays(std::slice::from_ref(a)),
        a.dtype()
    )
}

/// An error of the session source (or of the input parsed alone), made to point into what
/// the user typed where it can: diagnostics whose labels all lie in the input are shown
/// against the input alone, and runtime errors located in the input get the input's line
/// and column.
fn relocate(e: Error, asm: &Assembled) -> Error {
    relocate_from(e, asm, asm.start)
}

/// [`relocate`] for diagnostics whose offsets count from `base` (0 for the input parsed
/// alone, the input's start for the session source).
fn relocate_from(e: Error, asm: &Assembled, base: usize) -> Error {
    // Byte `i` of the compiled input, as a byte of what the user typed.
    let to_display = |i: usize| -> usize {
        (i as isize + asm.shift).clamp(0, asm.display.len() as isize) as usize
    };
    match e {
        Error::Compile(d) => {
            let diags: Vec<Diag> = d.items().to_vec();
            let end = base + asm.input.len();
            let inside = diags.iter().all(|d| {
                d.labels
                    .iter()
                    .all(|l| l.range.start >= base && l.range.end <= end + 1)
            });
            if !inside {
                return Error::Compile(d);
            }
            let moved = diags
                .into_iter()
                .map(|mut d| {
                    for l in &mut d.labels {
                        let s = to_display(l.range.start - base);
                        let t = to_display((l.range.end - base).min(asm.input.len()));
                        l.range = s..t.max(s);
                    }
                    d
                })
                .collect();
            Error::Compile(Diagnostics::new(INPUT_NAME, &asm.display, moved))
        }
        Error::Runtime { error, file } => {
            let (error, place) = relocate_runtime(error, asm);
            match place.and_then(|p| runtime_diagnostic(&error, asm, p, None)) {
                Some(d) => Error::Compile(d),
                None => Error::Runtime { error, file },
            }
        }
        Error::Element { error, file, index } => {
            let (error, place) = relocate_runtime(error, asm);
            match place.and_then(|p| runtime_diagnostic(&error, asm, p, Some(&index))) {
                Some(d) => Error::Compile(d),
                None => Error::Element { error, file, index },
            }
        }
        other => other,
    }
}

/// A runtime error located in what the user typed or in a remembered item, as a diagnostic
/// quoting that text (as `kiln run` shows them).
fn runtime_diagnostic(
    e: &RuntimeError,
    asm: &Assembled,
    place: Place<'_>,
    index: Option<&[usize]>,
) -> Option<Diagnostics> {
    let (name, text) = match place {
        Place::Input => (INPUT_NAME.to_string(), asm.display.as_str()),
        Place::Item(item) => (format!("<{}>", item.name), item.src.as_str()),
    };
    crate::runtime_diagnostic_in(&name, text, e, index)
}

/// Where a runtime error's location lies: in what the user typed, or in a remembered item
/// (its text and name).
enum Place<'a> {
    Input,
    Item(&'a Item),
}

/// Moves a runtime error's location from the session source into the text it lies in: the
/// input (line 1 is its first line) or a remembered item.
fn relocate_runtime(mut e: RuntimeError, asm: &Assembled) -> (RuntimeError, Option<Place<'_>>) {
    let input_lines = asm.input.lines().count().max(1) as u32;
    let mut place = None;
    if let Some(loc) = &mut e.loc {
        if loc.line >= asm.first_line && loc.line < asm.first_line + input_lines {
            loc.line -= asm.first_line - 1;
            if loc.line == 1 {
                loc.col = (loc.col as isize + asm.shift).max(1) as u32;
            }
            place = Some(Place::Input);
        } else if let Some((first, item)) = asm
            .item_lines
            .iter()
            .rev()
            .find(|(first, _)| *first <= loc.line)
        {
            loc.line -= first - 1;
            place = Some(Place::Item(item));
        }
    }
    (e, place)
}

/// What the editor does after a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Read the next input.
    Continue,
    /// Leave the REPL.
    Quit,
}

/// The commands, with their arguments and what they do (`:help`).
pub const COMMANDS: [(&str, &str, &str); 15] = [
    (":help", "", "this list"),
    (
        ":load",
        "FILE",
        "run a .kl file in the session (items and statements)",
    ),
    (":reload", "", "run the last loaded file again"),
    (
        ":doc",
        "NAME",
        "an item's documentation and signature, or a builtin's",
    ),
    (
        ":type",
        "EXPR",
        "the type of an expression (an array's element type)",
    ),
    (
        ":ir",
        "NAME [TYPES]",
        "the optimised IR of an item (TYPES: f64 or f32,i64)",
    ),
    (
        ":clif",
        "NAME [TYPES]",
        "the Cranelift IR of its native entry point",
    ),
    (":asm", "NAME [TYPES]", "its machine code"),
    (
        ":ptx",
        "NAME [TYPES]",
        "its PTX (builds with the `gpu` feature)",
    ),
    (
        ":time",
        "EXPR",
        "run an expression repeatedly: median time and throughput",
    ),
    (":device", "cpu|gpu", "where kernels run"),
    (":threads", "N", "threads for array operations"),
    (":vars", "", "the variables and their types"),
    (":quit", "", "leave (Ctrl-D too)"),
    (":items", "", "the items defined so far"),
];

fn io(e: std::io::Error) -> Error {
    Error::Io {
        path: "<stdout>".into(),
        error: e,
    }
}

impl Session {
    /// Handles one line from the editor: a `:command` or source (which may span several
    /// lines, as the editor collects them).
    pub fn handle(&mut self, line: &str, out: &mut dyn Write) -> Result<Control, Error> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(Control::Continue);
        }
        if !line.starts_with(':') {
            let outcome = self.eval(line, out)?;
            for (name, replaced) in outcome.defined {
                let what = if replaced { "redefined" } else { "defined" };
                writeln!(out, "{what} `{name}`").map_err(io)?;
            }
            return Ok(Control::Continue);
        }
        let (cmd, arg) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let arg = arg.trim();
        match cmd {
            ":help" | ":h" | ":?" => {
                writeln!(out, "Type items (fn, ufunc, reduce, const) and statements as in a .kl file;\na bare expression prints its value. An open brace continues the input on the next line.\nCtrl-C interrupts a running kernel, Ctrl-D leaves.\n").map_err(io)?;
                for (c, a, what) in COMMANDS {
                    writeln!(out, "  {:<22} {what}", format!("{c} {a}")).map_err(io)?;
                }
            }
            ":quit" | ":q" | ":exit" => return Ok(Control::Quit),
            ":vars" => {
                if self.vars.is_empty() {
                    writeln!(out, "no variables yet (`let x = ...`)").map_err(io)?;
                }
                for v in &self.vars {
                    let kind = match &v.val {
                        Val::A(a) => {
                            let shapes: Vec<String> =
                                a.iter().map(|x| format!("{:?}", x.shape())).collect();
                            format!("array {}", shapes.join(", "))
                        }
                        Val::S(_) => "scalar".into(),
                    };
                    writeln!(out, "  {}: {} ({kind})", v.name, v.ty).map_err(io)?;
                }
            }
            ":items" => {
                for i in &self.items {
                    writeln!(out, "  {}", signature_line(&i.src)).map_err(io)?;
                }
            }
            ":type" => {
                let ty = self.type_of(arg)?;
                writeln!(out, "{}", concrete(&ty)).map_err(io)?;
            }
            ":doc" => writeln!(out, "{}", self.doc(arg)?).map_err(io)?,
            ":ir" | ":clif" | ":asm" | ":ptx" => {
                let stage = match cmd {
                    ":ir" => crate::emit::Stage::Opt,
                    ":clif" => crate::emit::Stage::Clif,
                    ":asm" => crate::emit::Stage::Asm,
                    _ => crate::emit::Stage::Ptx,
                };
                let mut words = arg.split_whitespace();
                let name = words
                    .next()
                    .ok_or_else(|| Error::Usage(format!("{cmd} needs an item name")))?;
                let types: Vec<String> = words
                    .flat_map(|w| w.split(','))
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect();
                let text =
                    crate::emit::emit(stage, INPUT_NAME, &self.items_source(), Some(name), &types)?;
                write!(out, "{text}").map_err(io)?;
            }
            ":time" => self.time(arg, out)?,
            ":device" => self.device(arg, out)?,
            ":threads" => {
                let n: usize = arg
                    .parse()
                    .map_err(|_| Error::Usage(format!(":threads takes a number, not `{arg}`")))?;
                self.set_threads(Threads::new(n).map_err(Error::Usage)?);
                writeln!(out, "{n} threads").map_err(io)?;
            }
            ":load" | ":reload" => {
                let path = if cmd == ":load" {
                    if arg.is_empty() {
                        return Err(Error::Usage(":load needs a file".into()));
                    }
                    self.last_file = Some(arg.to_string());
                    arg.to_string()
                } else {
                    self.last_file
                        .clone()
                        .ok_or_else(|| Error::Usage("nothing loaded yet (:load FILE)".into()))?
                };
                let (_, src) = crate::read_source(std::path::Path::new(&path))?;
                let outcome = self.eval(&src, out)?;
                let names: Vec<String> = outcome
                    .defined
                    .iter()
                    .map(|(n, _)| format!("`{n}`"))
                    .collect();
                writeln!(
                    out,
                    "loaded {path}: {} item(s) {}",
                    names.len(),
                    names.join(" ")
                )
                .map_err(io)?;
            }
            other => {
                return Err(Error::Usage(format!(
                    "unknown command `{other}` (:help lists them)"
                )))
            }
        }
        Ok(Control::Continue)
    }

    /// The remembered items as one file.
    fn items_source(&self) -> String {
        self.items.iter().map(|i| format!("{}\n", i.src)).collect()
    }

    /// Documentation of an item or a builtin.
    fn doc(&self, name: &str) -> Result<String, Error> {
        if let Some(item) = self.items.iter().find(|i| i.name == name) {
            let ast = crate::parse(INPUT_NAME, &item.src)?;
            let doc = ast.entries.iter().find_map(|e| match e {
                TopLevel::Item(i) => i.doc().map(str::to_string),
                TopLevel::Stmt(_) => None,
            });
            let sig = signature_line(&item.src);
            return Ok(match doc {
                Some(d) => format!("{sig}\n\n{}", d.trim_end()),
                None => format!("{sig}\n\n(no documentation: write `///` lines before it)"),
            });
        }
        if let Some(doc) = builtin_doc(name) {
            return Ok(doc);
        }
        if name == "print" || kiln_front::check::ARRAY_BUILTINS.contains(&name) {
            return Ok(format!(
                "`{name}` is a script builtin (arrays and output): docs/language.md §11"
            ));
        }
        Err(Error::Usage(format!("no item or builtin named `{name}`")))
    }

    /// `:device cpu|gpu`.
    fn device(&mut self, arg: &str, out: &mut dyn Write) -> Result<(), Error> {
        match arg {
            "" => writeln!(out, "kernels run on {}", self.exec.name()).map_err(io)?,
            "cpu" => {
                let cpu = crate::Cpu::new().map_err(|e| Error::Usage(e.to_string()))?;
                self.set_executor(Arc::new(cpu));
                writeln!(out, "kernels run on the CPU").map_err(io)?;
            }
            #[cfg(feature = "gpu")]
            "gpu" => {
                let gpu = kiln_runtime::gpu::Gpu::new().map_err(|e| Error::Usage(e.to_string()))?;
                writeln!(out, "kernels run on {} ({})", gpu.name(), gpu.arch()).map_err(io)?;
                self.set_executor(Arc::new(gpu));
            }
            #[cfg(not(feature = "gpu"))]
            "gpu" => return Err(crate::emit::no_gpu_feature()),
            other => {
                return Err(Error::Usage(format!(
                    ":device takes cpu or gpu, not `{other}`"
                )))
            }
        }
        Ok(())
    }

    /// `:time EXPR`: compiles once, runs once to warm up, then repeatedly for about a second
    /// (at least 3 and at most 1000 runs); prints the median, the fastest run and, for an
    /// array result, the elements per second.
    fn time(&mut self, expr: &str, out: &mut dyn Write) -> Result<(), Error> {
        if expr.is_empty() {
            return Err(Error::Usage(":time needs an expression".into()));
        }
        let expr = expr.trim_end_matches(';');
        // An expression with no value (`save(..)`, a loop) is timed as a statement; any
        // other is bound, so that the rate can count its elements.
        let has_value = {
            let stmt = format!("{expr};");
            let (ast, asm) = self.assemble_exact(&stmt, true, (expr, 0))?;
            let compiled =
                crate::compile_parsed(INPUT_NAME, &asm.src, &ast).map_err(|e| relocate(e, &asm))?;
            !matches!(
                compiled.program.script.stmts.get(asm.placeholders),
                Some(TStmt::Expr(e)) if matches!(e.ty, Ty::Unit)
            )
        };
        let (input, shift) = if has_value {
            bind_value(expr)
        } else {
            (format!("{expr};"), 0)
        };
        let (ast, asm) = self.assemble_exact(&input, true, (expr, shift))?;
        let compiled =
            crate::compile_parsed(INPUT_NAME, &asm.src, &ast).map_err(|e| relocate(e, &asm))?;
        let exec = self.exec.clone();
        let (mut ev, _) = self.evaluator(&compiled, exec.as_ref());
        let stmts = &compiled.program.script.stmts;
        let body = &stmts[asm.placeholders..];
        let mut sink = std::io::sink();
        let mut run = || -> Result<f64, Error> {
            let t0 = std::time::Instant::now();
            ev.run_stmts(body, &mut sink)
                .map_err(|e| relocate(e, &asm))?;
            Ok(t0.elapsed().as_secs_f64())
        };
        run()?; // compiles the kernels, warms the caches
        let mut times = Vec::new();
        let started = std::time::Instant::now();
        while times.len() < 3 || (started.elapsed().as_secs_f64() < 1.0 && times.len() < 1000) {
            times.push(run()?);
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let elements = compiled
            .program
            .script
            .locals
            .iter()
            .position(|l| l.name == VALUE)
            .and_then(|i| ev.val(kiln_front::LocalId(i as u32)))
            .and_then(|v| match v {
                Val::A(a) => a.first().map(|x| x.shape().iter().product::<usize>()),
                Val::S(_) => None,
            });
        let rate = elements
            .map(|n| format!(", {} elements/s", si(n as f64 / median)))
            .unwrap_or_default();
        writeln!(
            out,
            "median {} over {} runs (fastest {}){rate}",
            seconds(median),
            times.len(),
            seconds(times[0])
        )
        .map_err(io)?;
        Ok(())
    }
}

/// The math page, whose table gives each function's measured accuracy and algorithm.
const MATH_DOC: &str = include_str!("../../docs/math.md");

/// A kernel builtin's signature and, for the math library's functions, its measured accuracy
/// and algorithm (from docs/math.md).
fn builtin_doc(name: &str) -> Option<String> {
    let b = kiln_front::builtins::Builtin::from_name(name)?;
    let sig = b.signature();
    let generic = sig
        .class
        .map(|c| format!("<T: {}>", c.name()))
        .unwrap_or_default();
    let params: Vec<String> = sig.params.iter().map(|t| t.to_string()).collect();
    let mut doc = format!(
        "builtin {name}{generic}({}) -> {}",
        params.join(", "),
        sig.ret
    );
    let row = format!("| `{name}` |");
    if let Some(line) = MATH_DOC.lines().find(|l| l.starts_with(&row)) {
        let cells: Vec<&str> = line.split(" | ").map(str::trim).collect();
        if let [_, f64_ulp, f32_ulp, _, algorithm] = &cells[..] {
            doc.push_str(&format!(
                "\n\nmax error {f64_ulp} ulp (f64), {f32_ulp} ulp (f32), measured against MPFR\n{}",
                algorithm.trim_end_matches('|').trim().replace("\\|", "|")
            ));
        }
    }
    Some(doc)
}

/// An item's first line, up to its body.
fn signature_line(src: &str) -> String {
    let code: String = src
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join(" ");
    let head = code.split('{').next().unwrap_or(&code);
    head.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `1.23 ms`.
pub fn seconds(s: f64) -> String {
    if s < 1e-6 {
        format!("{:.0} ns", s * 1e9)
    } else if s < 1e-3 {
        format!("{:.2} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// `812 M`.
fn si(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.1} ")
    }
}
