//! Running scripts and evaluating script expressions (spec §6).
//!
//! A script's statements are walked here, in order; each expression is compiled to IR and
//! run by an [`Executor`], so scripts, the corpus harness and (later) the REPL share the
//! semantics of kernels exactly:
//! - a call of an item, `f(a, b)`, evaluates its arguments and then calls the item's own
//!   compiled specialisation, so the executor runs the kernel's real code (with constant
//!   arguments inlined into a thunk, the optimiser would fold the whole call away);
//! - any other expression becomes a *thunk*: a kernel whose parameters are the script
//!   variables it reads. Thunks are compiled once per expression and cached;
//! - `if`, `while`, `for` and blocks at statement level are walked here, so `print` may
//!   appear inside them; their conditions are expressions like any other.
//!
//! **Arrays.** The checker types an array by its element type, so an expression that reads
//! arrays is checked as if on one element. When it runs and any variable it reads holds an
//! array, its thunk is applied elementwise over the arrays and scalars with broadcasting
//! (`kiln_runtime::map`), one fused pass for the whole expression. The array builtins
//! (`linspace`, `reduce`, `load`, …) are evaluated first, their results taking the place of
//! the call in the thunk.

use std::collections::HashMap;
use std::io::Write;

use kiln_front::typed::{
    ArrayFn, LocalId, LocalInfo, LocalOrigin, TBlock, TExpr, TExprKind, TLit, TStmt,
};
use kiln_front::{Lowerer, Ty};
use kiln_ir::{KernelId, Module, Scalar, ScalarType};
use kiln_runtime::{Arg, DynArray, Executor, Threads};

use crate::{Compiled, Error};

mod arrays;
pub(crate) mod npy;
pub use arrays::{format_arrays, random_f64};

/// The default limit on the elements of one array made by a builtin: 2³² (32 GiB of `f64`).
pub const DEFAULT_MAX_ELEMENTS: usize = 1 << 32;

/// A script value: scalars (several for a tuple), or arrays (several for a tuple of
/// arrays, as a ufunc with several outputs gives).
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// Scalars.
    S(Vec<Scalar>),
    /// Arrays.
    A(Vec<DynArray>),
}

impl Val {
    fn part(&self, i: usize) -> Val {
        match self {
            Val::S(v) => Val::S(v.get(i).copied().into_iter().collect()),
            Val::A(v) => Val::A(v.get(i).cloned().into_iter().collect()),
        }
    }
}

struct Thunk {
    module: Module,
    kernel: KernelId,
    params: Vec<LocalId>,
    /// The value, when the thunk optimises to constants (`let x = 5;`): then it is not
    /// compiled or run at all, and its module is dropped. A straight-line script of 100k
    /// such statements took 16 s and 1.7 GB compiling one native function for each.
    constant: Option<Vec<Scalar>>,
}

/// An expression that reads arrays: its thunk (over the script's locals and one extra local
/// per array builtin it contains) and those builtin calls.
struct Elementwise<'c> {
    thunk: Thunk,
    temps: Vec<(LocalId, &'c TExpr)>,
}

enum Flow {
    Next,
    Break,
    Continue,
}

/// Evaluates script statements and expressions of one compiled file.
pub struct Evaluator<'c> {
    c: &'c Compiled,
    exec: &'c dyn Executor,
    locals: &'c [LocalInfo],
    values: HashMap<LocalId, Val>,
    thunks: HashMap<*const TExpr, Thunk>,
    elementwise: HashMap<*const TExpr, Elementwise<'c>>,
    /// Free locals and whether the expression contains an array builtin, per expression.
    reads: HashMap<*const TExpr, (Vec<LocalId>, bool)>,
    threads: Option<Threads>,
    /// The most elements an array builtin may create (see [`Evaluator::with_max_elements`]).
    max_elements: usize,
    /// Whether `load` and `save` may touch files (see [`Evaluator::without_files`]).
    files: bool,
    /// The kernel each call expression calls, looked up once.
    callees: HashMap<*const TExpr, KernelId>,
    /// Script statements and loop iterations left before the script stops with
    /// [`kiln_interp::ErrorKind::OutOfFuel`] (each kernel call has its executor's own budget).
    steps: u64,
    /// The value and the variable of the `let` statement being run (not a destructuring
    /// one), so that a failing `load` can name the variable to annotate.
    binding: Option<(*const TExpr, LocalId)>,
}

/// Formats a value as `print` shows it: a scalar as Rust's `{:?}`, a tuple as `(a, b)`.
pub fn format_value(ty: &Ty, vals: &[Scalar]) -> String {
    match ty {
        Ty::Tuple(_) => {
            let parts: Vec<String> = vals.iter().map(|v| v.to_string()).collect();
            format!("({})", parts.join(", "))
        }
        _ => vals
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

impl<'c> Evaluator<'c> {
    /// An evaluator for `c`'s script, running on `exec`.
    pub fn new(c: &'c Compiled, exec: &'c dyn Executor) -> Self {
        Evaluator {
            c,
            exec,
            locals: &c.program.script.locals,
            values: HashMap::new(),
            thunks: HashMap::new(),
            elementwise: HashMap::new(),
            reads: HashMap::new(),
            threads: None,
            max_elements: DEFAULT_MAX_ELEMENTS,
            files: true,
            callees: HashMap::new(),
            steps: u64::MAX,
            binding: None,
        }
    }

    /// Limits the statements and loop iterations the script may execute.
    pub fn with_step_budget(mut self, steps: u64) -> Self {
        self.steps = steps;
        self
    }

    fn step(&mut self) -> Result<(), Error> {
        let stop = if self.steps == 0 {
            Some(kiln_interp::ErrorKind::OutOfFuel)
        } else if kiln_interp::interrupted() {
            Some(kiln_interp::ErrorKind::Interrupted)
        } else {
            None
        };
        if let Some(kind) = stop {
            let error = kiln_interp::RuntimeError {
                kind,
                kernel: "<script>".into(),
                loc: None,
            };
            return Err(self.runtime(error));
        }
        self.steps -= 1;
        Ok(())
    }

    /// Limits the arrays the builtins may create (`zeros(n)` and the like) to `n` elements,
    /// so that a typo fails with a message instead of exhausting memory.
    pub fn with_max_elements(mut self, n: usize) -> Self {
        self.max_elements = n;
        self
    }

    /// Makes `load` and `save` fail instead of touching files: for scripts from untrusted
    /// sources, such as the fuzzer's.
    pub fn without_files(mut self) -> Self {
        self.files = false;
        self
    }

    /// Runs array calls on `threads` (default: `KILN_NUM_THREADS`, or one per CPU).
    pub fn with_threads(mut self, threads: Threads) -> Self {
        self.threads = Some(threads);
        self
    }

    /// The current value of a script local, if it holds scalars.
    pub fn value(&self, l: LocalId) -> Option<&[Scalar]> {
        match self.values.get(&l)? {
            Val::S(v) => Some(v),
            Val::A(_) => None,
        }
    }

    /// The current value of a script local.
    pub fn val(&self, l: LocalId) -> Option<&Val> {
        self.values.get(&l)
    }

    /// Gives a script local a value before statements run (the REPL's variables from
    /// earlier inputs).
    pub fn set_val(&mut self, l: LocalId, v: Val) {
        self.values.insert(l, v);
    }

    fn threads(&mut self) -> Result<Threads, Error> {
        if self.threads.is_none() {
            self.threads = Some(Threads::from_env().map_err(Error::Usage)?);
        }
        Ok(self.threads.clone().expect("just set"))
    }

    fn module(&self) -> &'c Module {
        if self.exec.wants_optimized() {
            &self.c.optimized
        } else {
            &self.c.module
        }
    }

    /// An error at `span` of the script, shown like a diagnostic.
    fn fail(&self, span: kiln_syntax::Span, msg: impl Into<String>, label: &str) -> Error {
        Error::Compile(
            self.c
                .diagnostics(vec![kiln_front::diag::error(0, span, msg, label)]),
        )
    }

    fn array_error(&self, e: kiln_runtime::Error, span: kiln_syntax::Span) -> Error {
        match e {
            kiln_runtime::Error::Usage(msg) => self.fail(span, msg, "in this expression"),
            kiln_runtime::Error::Kernel { error, index } => Error::Element {
                error,
                file: Some(self.c.name.clone()),
                index,
            },
            kiln_runtime::Error::Call(error) => self.runtime(error),
        }
    }

    /// Evaluates `e` to scalars; an array is an error (conditions, loop bounds).
    fn eval_scalar(&mut self, e: &'c TExpr, what: &str) -> Result<Vec<Scalar>, Error> {
        match self.eval_val(e)? {
            Val::S(v) => Ok(v),
            Val::A(_) => Err(self.fail(
                e.span,
                format!("{what} is an array; it must be a scalar"),
                "an array",
            )),
        }
    }

    /// Runs every statement of the script, writing `print` output to `out`.
    pub fn run(&mut self, out: &mut dyn Write) -> Result<(), Error> {
        let c = self.c;
        self.run_stmts(&c.program.script.stmts, out)
    }

    /// Runs `stmts` in order.
    pub fn run_stmts(&mut self, stmts: &'c [TStmt], out: &mut dyn Write) -> Result<(), Error> {
        for s in stmts {
            match self.stmt(s, out)? {
                Flow::Next => {}
                // The checker rejects `break`/`continue` outside loops.
                Flow::Break | Flow::Continue => break,
            }
        }
        Ok(())
    }

    fn runtime(&self, error: kiln_interp::RuntimeError) -> Error {
        Error::Runtime {
            error,
            file: Some(self.c.name.clone()),
        }
    }

    /// Evaluates an expression of the script to scalars (an array is an error).
    pub fn eval(&mut self, e: &'c TExpr) -> Result<Vec<Scalar>, Error> {
        self.eval_scalar(e, "the value")
    }

    /// Evaluates an expression of the script.
    pub fn eval_val(&mut self, e: &'c TExpr) -> Result<Val, Error> {
        let key = e as *const TExpr;
        let (free, has_array_fn) = self.reads.entry(key).or_insert_with(|| {
            let mut has_array_fn = false;
            kiln_front::lower::visit(e, &mut |x| {
                has_array_fn |= matches!(x.kind, TExprKind::Array(..));
            });
            (kiln_front::lower::free_locals(e), has_array_fn)
        });
        let reads_array = free
            .iter()
            .any(|l| matches!(self.values.get(l), Some(Val::A(_))));
        if *has_array_fn || reads_array {
            return self.eval_elementwise(e);
        }
        self.eval_scalars(e).map(Val::S)
    }

    fn eval_scalars(&mut self, e: &'c TExpr) -> Result<Vec<Scalar>, Error> {
        if let TExprKind::Call(id, targs, args) = &e.kind {
            let mut vals = Vec::new();
            for a in args {
                vals.extend(self.eval_scalars(a)?);
            }
            let key = e as *const TExpr;
            let k = match self.callees.get(&key) {
                Some(&k) => k,
                None => {
                    let targs: Vec<_> = targs.iter().map(|t| t.flatten(&[])[0]).collect();
                    let item = &self.c.program.items[id.0 as usize];
                    let k = self.c.kernel(&item.name, &targs).ok_or_else(|| {
                        Error::Usage(format!("no compiled specialisation of `{}`", item.name))
                    })?;
                    self.callees.insert(key, k);
                    k
                }
            };
            let m = if self.exec.wants_optimized() {
                &self.c.optimized
            } else {
                &self.c.module
            };
            return self.exec.call(m, k, &vals).map_err(|e| self.runtime(e));
        }
        let key = e as *const TExpr;
        if !self.thunks.contains_key(&key) {
            let thunk = self.compile_thunk(e)?;
            self.thunks.insert(key, thunk);
        }
        let t = &self.thunks[&key];
        if let Some(values) = &t.constant {
            return Ok(values.clone());
        }
        let mut args = Vec::new();
        for l in &t.params {
            match self.values.get(l) {
                Some(Val::S(v)) => args.extend(v.iter().copied()),
                _ => {
                    return Err(self.fail(
                        e.span,
                        "internal error: a variable this expression reads has no scalar value (a Kiln bug)",
                        "here",
                    ))
                }
            }
        }
        self.exec
            .call(&t.module, t.kernel, &args)
            .map_err(|e| self.runtime(e))
    }

    fn compile_thunk(&self, e: &TExpr) -> Result<Thunk, Error> {
        self.compile_thunk_with(e, self.locals)
    }

    fn compile_thunk_with(&self, e: &TExpr, locals: &[LocalInfo]) -> Result<Thunk, Error> {
        let mut lw = Lowerer::new(&self.c.program).with_math(crate::math_library());
        let (kernel, params) = lw
            .thunk("<script>", locals, e)
            .map_err(|d| Error::Compile(self.c.diagnostics(d)))?;
        let mut module = lw.finish();
        kiln_ir::verify(&module)?;
        if self.exec.wants_optimized() {
            kiln_opt::optimize(&mut module, cfg!(debug_assertions))?;
        }
        // Every executor gives the interpreter's bits, so a thunk that reads nothing and
        // is only constants gives these on all of them. (One that reads a variable is also
        // mapped over arrays, so it keeps its code.)
        let constant = if params.is_empty() {
            module.kernel(kernel).constant_results()
        } else {
            None
        };
        if constant.is_some() {
            module = Module::default();
        }
        Ok(Thunk {
            module,
            kernel,
            params,
            constant,
        })
    }

    fn stmt(&mut self, s: &'c TStmt, out: &mut dyn Write) -> Result<Flow, Error> {
        self.step()?;
        match s {
            TStmt::Let {
                locals,
                destructure,
                value,
            } => {
                self.binding = locals
                    .first()
                    .filter(|_| !*destructure)
                    .map(|l| (value as *const TExpr, *l));
                let val = self.eval_val(value)?;
                if *destructure {
                    for (i, l) in locals.iter().enumerate() {
                        self.values.insert(*l, val.part(i));
                    }
                } else if let Some(l) = locals.first() {
                    self.values.insert(*l, val);
                }
                Ok(Flow::Next)
            }
            TStmt::Assign(l, value) => {
                let val = self.eval_val(value)?;
                self.values.insert(*l, val);
                Ok(Flow::Next)
            }
            TStmt::Print(args, _) => {
                let mut parts = Vec::new();
                for a in args {
                    match &a.kind {
                        TExprKind::Lit(TLit::Str(s)) => parts.push(s.clone()),
                        _ => match self.eval_val(a)? {
                            Val::S(v) => parts.push(format_value(&a.ty, &v)),
                            Val::A(arrays) => parts.push(format_arrays(&arrays)),
                        },
                    }
                }
                writeln!(out, "{}", parts.join(" ")).map_err(|error| Error::Io {
                    path: "<stdout>".into(),
                    error,
                })?;
                Ok(Flow::Next)
            }
            TStmt::Expr(e) => self.stmt_expr(e, out),
        }
    }

    fn stmt_expr(&mut self, e: &'c TExpr, out: &mut dyn Write) -> Result<Flow, Error> {
        match &e.kind {
            TExprKind::Break => Ok(Flow::Break),
            TExprKind::Continue => Ok(Flow::Continue),
            TExprKind::Block(b) => {
                for s in &b.stmts {
                    match self.stmt(s, out)? {
                        Flow::Next => {}
                        other => return Ok(other),
                    }
                }
                match &b.tail {
                    Some(t) => self.stmt_expr(t, out),
                    None => Ok(Flow::Next),
                }
            }
            TExprKind::If(c, t, els) => {
                if self.eval_scalar(c, "the condition")? == [Scalar::Bool(true)] {
                    self.stmt_expr(t, out)
                } else if let Some(e) = els {
                    self.stmt_expr(e, out)
                } else {
                    Ok(Flow::Next)
                }
            }
            TExprKind::While(c, body) => {
                while self.eval_scalar(c, "the condition")? == [Scalar::Bool(true)] {
                    self.step()?;
                    if let Flow::Break = self.stmt_expr(body, out)? {
                        break;
                    }
                }
                Ok(Flow::Next)
            }
            TExprKind::For {
                var,
                start,
                end,
                inclusive,
                body,
            } => {
                let as_i64 = |v: Vec<Scalar>| match v.first() {
                    Some(Scalar::I64(x)) => *x,
                    _ => 0,
                };
                let start = as_i64(self.eval_scalar(start, "the range's start")?);
                let end = as_i64(self.eval_scalar(end, "the range's end")?);
                let mut i = start;
                loop {
                    let go = if *inclusive { i <= end } else { i < end };
                    if !go {
                        break;
                    }
                    self.step()?;
                    self.values.insert(*var, Val::S(vec![Scalar::I64(i)]));
                    if let Flow::Break = self.stmt_expr(body, out)? {
                        break;
                    }
                    if *inclusive && i == end {
                        break;
                    }
                    i += 1;
                }
                Ok(Flow::Next)
            }
            _ => {
                self.eval_val(e)?;
                Ok(Flow::Next)
            }
        }
    }
}
