//! The body of the `pipeline` fuzz target, here so that tests can replay crashers.
//!
//! One input runs the whole pipeline: lex → parse → check → lower → verify → optimise →
//! interpret. Every kernel is called on the IR as lowered and on the optimised IR with
//! arguments derived from the input, and the two must agree (differential testing of the
//! optimiser); the script runs under a step budget. Errors are fine; panics, hangs and
//! disagreements are bugs.

use kiln_interp::{ErrorKind, Fuel};
use kiln_ir::{Scalar, ScalarType};

/// Instructions per kernel call and statements per script: small, so that endless loops end
/// quickly.
pub const FUEL: u64 = 20_000;

fn args_for(params: &[ScalarType], seed: u64) -> Vec<Scalar> {
    params
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let bits = match (seed + i as u64) % 6 {
                0 => 0,
                1 => 1,
                2 => u64::MAX,
                3 => 0x8000_0000_0000_0000,
                4 => 0x3ff0_0000_0000_0000,
                _ => seed
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .rotate_left(i as u32),
            };
            match t {
                ScalarType::F32 => Scalar::F32(f32::from_bits(bits as u32 ^ (bits >> 32) as u32)),
                _ => Scalar::from_bits(t, bits),
            }
        })
        .collect()
}

/// Whether two results of kernel `k` agree: the same bits, NaNs included. The math
/// library's own functions are exempt from the NaN rule (docs/language.md, "NaN": their
/// results only reach user code, which makes them canonical), so for them any NaN equals
/// any NaN.
fn same_value(k: &kiln_ir::Kernel, a: Scalar, b: Scalar) -> bool {
    if k.kind == kiln_ir::KernelKind::Library {
        a.canonical_nan().same(b.canonical_nan())
    } else {
        a.same(b)
    }
}

/// Whether two executions of `k` agree: the same results ([`same_value`]), or the same
/// error at the same place.
fn same_outcome(
    k: &kiln_ir::Kernel,
    a: &Result<Vec<Scalar>, kiln_interp::RuntimeError>,
    b: &Result<Vec<Scalar>, kiln_interp::RuntimeError>,
) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(k, *p, *q)),
        (Err(x), Err(y)) => x.kind == y.kind && x.loc == y.loc,
        _ => false,
    }
}

/// Runs one input through everything. Panics only on a bug (a disagreement between the
/// lowered and optimised IR, or a panic inside the pipeline).
pub fn pipeline(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(compiled) = crate::compile("fuzz.kl", src) else {
        return;
    };
    let seed = data
        .iter()
        .fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(b as u64));
    for (i, k) in compiled.module.kernels.iter().enumerate() {
        let Some(opt_id) = compiled.optimized.find(&k.name) else {
            continue;
        };
        for round in 0..3 {
            let args = args_for(&k.params, seed.wrapping_add(round));
            let a = kiln_interp::call(
                &compiled.module,
                kiln_ir::KernelId::new(i),
                &args,
                &mut Fuel(FUEL),
            );
            let b = kiln_interp::call(&compiled.optimized, opt_id, &args, &mut Fuel(FUEL));
            let fuel_out = |r: &Result<Vec<Scalar>, kiln_interp::RuntimeError>| matches!(r, Err(e) if e.kind == ErrorKind::OutOfFuel);
            if fuel_out(&a) || fuel_out(&b) {
                continue;
            }
            assert!(
                same_outcome(k, &a, &b),
                "kernel `{}` with {args:?}: lowered IR gave {a:?}, optimised IR gave {b:?}",
                k.name
            );
        }
    }
    let exec = kiln_runtime::Interpreter::new(FUEL);
    let threads = kiln_runtime::Threads::new(1).expect("one thread");
    let mut ev = crate::script::Evaluator::new(&compiled, &exec)
        .with_step_budget(FUEL)
        .with_max_elements(1 << 12)
        .without_files()
        .with_threads(threads);
    let _ = ev.run(&mut std::io::sink());
}

/// Generates a random, well-typed Kiln program from `data` (structure-aware fuzzing, after
/// Cranelift's `fuzzgen`): a few `fn` items whose bodies mix every operator, cast, builtin,
/// `let`/`var`, `if`, bounded loops with `break`/`continue`, early returns and calls of
/// earlier items. Loops are bounded by construction, so every kernel terminates; integer
/// division may still fail, which every executor must report identically.
///
/// The program must always compile: a diagnostic means the generator or the checker is
/// wrong, and [`typed_pipeline`] treats it as a bug.
pub fn random_program(data: &[u8]) -> String {
    let mut g = Gen {
        u: arbitrary::Unstructured::new(data),
        fns: Vec::new(),
        next_var: 0,
        ret: ScalarType::Bool,
        in_loop: false,
    };
    let mut out = String::new();
    let n = g.int(1, 4);
    for f in 0..n {
        out.push_str(&g.function(f));
    }
    out
}

/// Compiles a [`random_program`] (which must succeed) and runs it through [`pipeline`].
pub fn typed_pipeline(data: &[u8]) {
    let src = random_program(data);
    let compiled = match crate::compile("generated.kl", &src) {
        Ok(c) => c,
        Err(e) => panic!("a generated program was rejected:\n{src}\n{e}"),
    };
    pipeline(src.as_bytes());
    native_agrees(&compiled, &src, data);
}

/// Every kernel of a terminating program gives the same results (or the same error) on the
/// Cranelift JIT as on the interpreter.
fn native_agrees(compiled: &crate::Compiled, src: &str, data: &[u8]) {
    use kiln_runtime::Executor;
    let Ok(cpu) = kiln_runtime::Cpu::new() else {
        return;
    };
    let seed = data
        .iter()
        .fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(b as u64));
    for (i, k) in compiled.optimized.kernels.iter().enumerate() {
        let id = kiln_ir::KernelId::new(i);
        for round in 0..3 {
            let args = args_for(&k.params, seed.wrapping_add(round));
            let a = kiln_interp::call(&compiled.optimized, id, &args, &mut Fuel(FUEL));
            if matches!(&a, Err(e) if e.kind == ErrorKind::OutOfFuel) {
                continue;
            }
            let b = cpu.call(&compiled.optimized, id, &args);
            assert!(
                same_outcome(k, &a, &b),
                "kernel `{}` with {args:?}: the interpreter gave {a:?}, the CPU back end {b:?}\n{src}",
                k.name
            );
        }
        loop_agrees(compiled, &cpu, id, seed, src);
    }
}

/// Kernel `id` applied over arrays by its native loop (unrolled, remainder and strided
/// paths; uniform inputs) gives, element by element, what the interpreter gives, and fails
/// at the same first element with the same error.
fn loop_agrees(
    compiled: &crate::Compiled,
    cpu: &kiln_runtime::Cpu,
    id: kiln_ir::KernelId,
    seed: u64,
    src: &str,
) {
    use kiln_runtime::{Arg, DynArray};
    let m = &compiled.optimized;
    let k = m.kernel(id);
    if k.params.is_empty() || k.results.is_empty() {
        return;
    }
    // Nineteen elements: several SIMD groups of 2 or 4 (lanes that branch differently in
    // consecutive groups), a scalar remainder, and unrolled scalar groups of four.
    const N: usize = 19;
    let rows: Vec<Vec<Scalar>> = (0..N as u64)
        .map(|r| args_for(&k.params, seed.wrapping_add(r)))
        .collect();
    let mut want = Vec::new();
    for row in &rows {
        match kiln_interp::call(m, id, row, &mut Fuel(FUEL)) {
            Err(e) if e.kind == ErrorKind::OutOfFuel => return,
            r => want.push(r),
        }
    }
    // For every other kernel, the first argument is one broadcast scalar (a uniform input).
    let uniform_first = seed % 2 == 0 && k.params.len() > 1;
    let columns: Vec<DynArray> = (0..k.params.len())
        .map(|j| {
            let col: Vec<Scalar> = rows
                .iter()
                .map(|r| {
                    if uniform_first && j == 0 {
                        rows[0][0]
                    } else {
                        r[j]
                    }
                })
                .collect();
            DynArray::from_scalars(k.params[j], &col).expect("one dtype per column")
        })
        .collect();
    if uniform_first {
        // Recompute the expectations with the first argument fixed.
        want.clear();
        for row in &rows {
            let mut row = row.clone();
            row[0] = rows[0][0];
            match kiln_interp::call(m, id, &row, &mut Fuel(FUEL)) {
                Err(e) if e.kind == ErrorKind::OutOfFuel => return,
                r => want.push(r),
            }
        }
    }
    let args: Vec<Arg> = columns
        .iter()
        .enumerate()
        .map(|(j, c)| {
            if uniform_first && j == 0 {
                Arg::Scalar(rows[0][0])
            } else {
                Arg::Array(c.view())
            }
        })
        .collect();
    let threads = kiln_runtime::Threads::new(1).expect("one thread");
    let got = kiln_runtime::map(cpu, m, id, &args, None, &threads);
    let first_err = want.iter().position(|r| r.is_err());
    match (got, first_err) {
        (Ok(outs), None) => {
            for (i, w) in want.iter().enumerate() {
                let w = w.as_ref().expect("no error");
                for (o, wv) in outs.iter().zip(w) {
                    let g = o.get_flat(i).expect("element");
                    assert!(
                        same_value(k, g, *wv),
                        "loop of `{}` element {i}: interpreter {wv:?}, native {g:?}\n{src}",
                        k.name
                    );
                }
            }
        }
        (Err(kiln_runtime::Error::Kernel { error, index }), Some(i)) => {
            let Err(w) = &want[i] else { unreachable!() };
            assert!(
                index == vec![i] && error.kind == w.kind && error.loc == w.loc,
                "loop of `{}`: interpreter fails at {i} with {w:?}, native at {index:?} with {error:?}\n{src}",
                k.name
            );
        }
        (got, _) => panic!(
            "loop of `{}`: interpreter gave {want:?}, native {got:?}\n{src}",
            k.name
        ),
    }
}

struct FnSig {
    name: String,
    params: Vec<ScalarType>,
    ret: ScalarType,
}

#[derive(Clone)]
struct Var {
    name: String,
    ty: ScalarType,
    mutable: bool,
}

struct Gen<'a> {
    u: arbitrary::Unstructured<'a>,
    fns: Vec<FnSig>,
    next_var: usize,
    /// The result type of the function being generated (for `return` in operands).
    ret: ScalarType,
    /// Inside a loop of the function being generated (for `break`/`continue` in operands).
    in_loop: bool,
}

const TYPES: [ScalarType; 7] = ScalarType::ALL;
const MAX_EXPR_DEPTH: u32 = 4;

impl Gen<'_> {
    /// A number in `lo..=hi` (the low end once the input runs out).
    fn int(&mut self, lo: u32, hi: u32) -> u32 {
        self.u.int_in_range(lo..=hi).unwrap_or(lo)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.int(0, items.len() as u32 - 1) as usize]
    }

    fn ty(&mut self) -> ScalarType {
        self.pick(&TYPES)
    }

    fn fresh(&mut self) -> String {
        self.next_var += 1;
        format!("v{}", self.next_var)
    }

    fn function(&mut self, index: u32) -> String {
        let nparams = self.int(0, 3);
        let params: Vec<ScalarType> = (0..nparams).map(|_| self.ty()).collect();
        let ret = self.ty();
        self.ret = ret;
        self.in_loop = false;
        let mut scope: Vec<Var> = params
            .iter()
            .enumerate()
            .map(|(i, &ty)| Var {
                name: format!("p{i}"),
                ty,
                mutable: false,
            })
            .collect();
        let kw = if index % 2 == 1 { "ufunc" } else { "fn" };
        let name = format!("f{index}");
        let sig: Vec<String> = scope
            .iter()
            .map(|v| format!("{}: {}", v.name, v.ty))
            .collect();
        let mut body = String::new();
        let nstmts = self.int(0, 5);
        for _ in 0..nstmts {
            body.push_str(&self.stmt(&mut scope, ret, 1, false));
        }
        let tail = self.expr(ret, &scope, 0);
        self.fns.push(FnSig {
            name: name.clone(),
            params,
            ret,
        });
        format!(
            "{kw} {name}({}) -> {ret} {{\n{body}    {tail}\n}}\n",
            sig.join(", ")
        )
    }

    fn stmt(&mut self, scope: &mut Vec<Var>, ret: ScalarType, depth: u32, in_loop: bool) -> String {
        let indent = "    ".repeat(depth as usize);
        let choice = if depth > 3 {
            self.int(0, 2)
        } else {
            self.int(0, 8)
        };
        match choice {
            0 | 1 => {
                let ty = self.ty();
                let name = self.fresh();
                let mutable = self.int(0, 1) == 1;
                let e = self.expr(ty, scope, 0);
                scope.push(Var {
                    name: name.clone(),
                    ty,
                    mutable,
                });
                format!(
                    "{indent}{} {name}: {ty} = {e};\n",
                    if mutable { "var" } else { "let" }
                )
            }
            2 => {
                let targets: Vec<usize> = (0..scope.len()).filter(|&i| scope[i].mutable).collect();
                if targets.is_empty() {
                    return String::new();
                }
                let t = self.pick(&targets);
                let (name, ty) = (scope[t].name.clone(), scope[t].ty);
                let ops: &[&str] = match ty {
                    ScalarType::Bool => &["=", "&=", "|=", "^="],
                    t if t.is_float() => &["=", "+=", "-=", "*=", "/="],
                    _ => &["=", "+=", "-=", "*=", "&=", "|=", "^=", "<<=", ">>="],
                };
                let op = self.pick(ops);
                let rhs = self.expr(ty, scope, 0);
                format!("{indent}{name} {op} {rhs};\n")
            }
            3 | 4 => {
                let c = self.expr(ScalarType::Bool, scope, 0);
                let then = self.block(scope, ret, depth + 1, in_loop);
                let els = if self.int(0, 1) == 1 {
                    format!(
                        " else {{\n{}{indent}}}",
                        self.block(scope, ret, depth + 1, in_loop)
                    )
                } else {
                    String::new()
                };
                format!("{indent}if {c} {{\n{then}{indent}}}{els}\n")
            }
            5 => {
                let i = self.fresh();
                let n = self.int(0, 4);
                let inclusive = if self.int(0, 1) == 1 { "=" } else { "" };
                scope.push(Var {
                    name: i.clone(),
                    ty: ScalarType::I64,
                    mutable: false,
                });
                let body = self.block(scope, ret, depth + 1, true);
                scope.pop();
                format!("{indent}for {i} in 0..{inclusive}{n} {{\n{body}{indent}}}\n")
            }
            6 => {
                // A while loop with its own counter, so it always ends.
                let c = self.fresh();
                let n = self.int(0, 4);
                let body = self.block(scope, ret, depth + 1, true);
                format!("{indent}var {c}: i64 = 0;\n{indent}while {c} < {n} {{\n{indent}    {c} += 1;\n{body}{indent}}}\n")
            }
            7 if in_loop => {
                let c = self.expr(ScalarType::Bool, scope, 0);
                let word = if self.int(0, 1) == 1 {
                    "break"
                } else {
                    "continue"
                };
                format!("{indent}if {c} {{ {word}; }}\n")
            }
            _ => {
                let c = self.expr(ScalarType::Bool, scope, 0);
                let v = self.expr(ret, scope, 0);
                format!("{indent}if {c} {{ return {v}; }}\n")
            }
        }
    }

    fn block(
        &mut self,
        scope: &mut Vec<Var>,
        ret: ScalarType,
        depth: u32,
        in_loop: bool,
    ) -> String {
        let outer_loop = std::mem::replace(&mut self.in_loop, in_loop);
        let mark = scope.len();
        let n = self.int(0, 3);
        let mut out = String::new();
        for _ in 0..n {
            out.push_str(&self.stmt(scope, ret, depth, in_loop));
        }
        scope.truncate(mark);
        self.in_loop = outer_loop;
        out
    }

    fn literal(&mut self, ty: ScalarType) -> String {
        let raw = self.u.arbitrary::<u64>().unwrap_or(0);
        let special = self.int(0, 3) == 0;
        match ty {
            ScalarType::Bool => format!("{}", raw & 1 == 1),
            ScalarType::F32 | ScalarType::F64 => {
                if special {
                    let c = self.pick(&[
                        "NAN", "INF", "-INF", "PI", "0.0", "-0.0", "1e-40", "3.4e38", "1e308",
                        "5e-324",
                    ]);
                    let fits_f32 = !matches!(c, "1e308" | "5e-324");
                    return if ty == ScalarType::F32 && !fits_f32 {
                        "1.0f32".into()
                    } else if c.contains('.') || c.contains('e') {
                        format!("({c}{ty})")
                    } else {
                        format!("({c} as {ty})")
                    };
                }
                let v = (raw % 20_001) as f64 / 100.0 - 100.0;
                format!("({v:?}{ty})")
            }
            _ => {
                let v = if special {
                    Scalar::from_bits(
                        ty,
                        self.pick(&[
                            0,
                            1,
                            u64::MAX,
                            0x7fff_ffff,
                            0x8000_0000,
                            0x7fff_ffff_ffff_ffff,
                            1 << 63,
                        ]),
                    )
                } else {
                    Scalar::from_bits(ty, raw % 1000)
                };
                format!("({v}{ty})")
            }
        }
    }

    fn expr(&mut self, ty: ScalarType, scope: &[Var], depth: u32) -> String {
        let vars: Vec<usize> = (0..scope.len()).filter(|&i| scope[i].ty == ty).collect();
        if depth >= MAX_EXPR_DEPTH || self.u.is_empty() {
            return match vars.is_empty() {
                false if self.int(0, 1) == 1 => scope[self.pick(&vars)].name.clone(),
                _ => self.literal(ty),
            };
        }
        let d = depth + 1;
        // Rarely, an operand that diverges: `return`, `break` or `continue` have type `!`.
        if self.int(0, 40) == 0 {
            return match (self.in_loop, self.int(0, 2)) {
                (true, 0) => "(break)".to_string(),
                (true, 1) => "(continue)".to_string(),
                _ => format!("(return {})", self.expr(self.ret, scope, d)),
            };
        }
        match self.int(0, 11) {
            0 if !vars.is_empty() => scope[self.pick(&vars)].name.clone(),
            1 => self.literal(ty),
            2 if ty.is_signed_int() || ty.is_float() => format!("(-{})", self.expr(ty, scope, d)),
            3 if !ty.is_float() => format!("(!{})", self.expr(ty, scope, d)),
            4 if ty != ScalarType::Bool => {
                let ops: &[&str] = if ty.is_float() {
                    &["+", "-", "*", "/", "%"]
                } else {
                    &["+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"]
                };
                let op = self.pick(ops);
                let b_ty = if matches!(op, "<<" | ">>") {
                    self.pick(&TYPES[1..5])
                } else {
                    ty
                };
                format!(
                    "({} {op} {})",
                    self.expr(ty, scope, d),
                    self.expr(b_ty, scope, d)
                )
            }
            5 if ty == ScalarType::Bool => {
                let t = self.ty();
                let op = self.pick(&["==", "!=", "<", "<=", ">", ">="]);
                format!(
                    "({} {op} {})",
                    self.expr(t, scope, d),
                    self.expr(t, scope, d)
                )
            }
            6 if ty == ScalarType::Bool => {
                let op = self.pick(&["&&", "||"]);
                format!(
                    "({} {op} {})",
                    self.expr(ty, scope, d),
                    self.expr(ty, scope, d)
                )
            }
            7 if ty != ScalarType::Bool => {
                let from = self.ty();
                format!("({} as {ty})", self.expr(from, scope, d))
            }
            8 => {
                let c = self.expr(ScalarType::Bool, scope, d);
                format!(
                    "(if {c} {{ {} }} else {{ {} }})",
                    self.expr(ty, scope, d),
                    self.expr(ty, scope, d)
                )
            }
            9 => {
                let callable: Vec<usize> = (0..self.fns.len())
                    .filter(|&i| self.fns[i].ret == ty)
                    .collect();
                if callable.is_empty() {
                    return self.literal(ty);
                }
                let f = self.pick(&callable);
                let params = self.fns[f].params.clone();
                let name = self.fns[f].name.clone();
                let args: Vec<String> = params.iter().map(|&p| self.expr(p, scope, d)).collect();
                format!("{name}({})", args.join(", "))
            }
            10 if ty.is_float() => {
                let f = self.pick(&[
                    "sqrt", "cbrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin",
                    "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
                    "atanh", "erf", "erfc", "floor", "ceil", "round", "trunc", "abs",
                ]);
                format!("{f}({})", self.expr(ty, scope, d))
            }
            10 if ty == ScalarType::Bool => {
                let f = self.pick(&["isnan", "isinf", "isfinite"]);
                let t = self.pick(&[ScalarType::F32, ScalarType::F64]);
                format!("{f}({})", self.expr(t, scope, d))
            }
            11 if ty.is_float() => {
                let f = self.pick(&["atan2", "pow", "hypot", "copysign", "min", "max"]);
                format!(
                    "{f}({}, {})",
                    self.expr(ty, scope, d),
                    self.expr(ty, scope, d)
                )
            }
            11 if ty != ScalarType::Bool => {
                let f = self.pick(&["min", "max", "abs", "clamp", "select"]);
                match f {
                    "abs" => format!("abs({})", self.expr(ty, scope, d)),
                    "clamp" => format!(
                        "clamp({}, {}, {})",
                        self.expr(ty, scope, d),
                        self.expr(ty, scope, d),
                        self.expr(ty, scope, d)
                    ),
                    "select" => format!(
                        "select({}, {}, {})",
                        self.expr(ScalarType::Bool, scope, d),
                        self.expr(ty, scope, d),
                        self.expr(ty, scope, d)
                    ),
                    _ => format!(
                        "{f}({}, {})",
                        self.expr(ty, scope, d),
                        self.expr(ty, scope, d)
                    ),
                }
            }
            _ => {
                let name = self.fresh();
                let t = self.ty();
                let v = self.expr(t, scope, d);
                let mut all = scope.to_vec();
                all.push(Var {
                    name: name.clone(),
                    ty: t,
                    mutable: false,
                });
                format!("{{ let {name}: {t} = {v}; {} }}", self.expr(ty, &all, d))
            }
        }
    }
}

/// The script the `.npy` fuzz target (`fuzz/fuzz_targets/npy.rs`) runs on each input, and
/// `tests/npy.rs` replays: loads the file at `path` as `dtype`, prints it, reduces it whole
/// and along axis 0, maps it, saves the result and loads that back. A `bool` array is
/// made `i64` before the arithmetic (and saved as `i64`).
pub fn npy_script(dtype: &str, path: &str) -> String {
    let num = if dtype == "bool" { "(a as i64)" } else { "a" };
    let back = if dtype == "bool" { "i64" } else { dtype };
    format!(
        "reduce add<T: num>(a: T, b: T) -> T identity 0 {{ a + b }}\n\
         reduce mx<T: num>(a: T, b: T) -> T identity 0 {{ max(a, b) }}\n\
         ufunc sq<T: num>(x: T) -> T {{ x * x }}\n\
         let a: {dtype} = load(\"{path}\");\n\
         print(a);\n\
         print(reduce(add, {num}), reduce(mx, sq({num})));\n\
         let b = {num} + {num};\n\
         print(reduce(add, b, 0));\n\
         save(\"{path}.out\", b);\n\
         let c: {back} = load(\"{path}.out\");\n"
    )
}
