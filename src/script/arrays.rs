//! Arrays in scripts: elementwise evaluation, the array builtins, and printing.

use super::npy;
use super::*;

/// Element counts above which `print` summarises an array (NumPy's threshold), showing
/// [`EDGE`] elements at each end of every dimension.
const SUMMARY_THRESHOLD: usize = 1000;
const EDGE: usize = 3;

impl<'c> Evaluator<'c> {
    /// Evaluates an expression that contains array builtins or reads arrays.
    pub(super) fn eval_elementwise(&mut self, e: &'c TExpr) -> Result<Val, Error> {
        if let TExprKind::Array(f, args) = &e.kind {
            return self.array_fn(e, f, args);
        }
        let key = e as *const TExpr;
        if !self.elementwise.contains_key(&key) {
            let compiled = self.compile_elementwise(e)?;
            self.elementwise.insert(key, compiled);
        }
        // The array builtins inside, in order.
        let temps: Vec<(LocalId, &'c TExpr)> = self.elementwise[&key].temps.clone();
        let mut temp_vals: HashMap<LocalId, Val> = HashMap::new();
        for (l, sub) in temps {
            // A builtin is evaluated before the expression around it, so it may only read
            // the script's variables, not those of a block around it.
            let inner = kiln_front::lower::free_locals(sub);
            if inner.iter().any(|v| !self.values.contains_key(v)) {
                return Err(self.fail(
                    sub.span,
                    "an array builtin inside an expression can only use the script's variables",
                    "uses a variable declared inside the expression",
                ));
            }
            let v = self.array_fn_expr(sub)?;
            temp_vals.insert(l, v);
        }
        let threads = self.threads()?;
        let ew = &self.elementwise[&key];
        let mut args: Vec<Arg> = Vec::new();
        for l in &ew.thunk.params {
            let v = temp_vals
                .get(l)
                .or_else(|| self.values.get(l))
                .ok_or_else(|| {
                    self.fail(e.span, "a variable is used before it has a value", "here")
                })?;
            match v {
                Val::S(s) => args.extend(s.iter().map(|&x| Arg::Scalar(x))),
                Val::A(a) => args.extend(a.iter().map(|x| Arg::Array(x.view()))),
            }
        }
        let (module, kernel) = (&ew.thunk.module, ew.thunk.kernel);
        if args.iter().all(|a| matches!(a, Arg::Scalar(_))) {
            let scalars: Vec<Scalar> = args
                .iter()
                .filter_map(|a| match a {
                    Arg::Scalar(s) => Some(*s),
                    _ => None,
                })
                .collect();
            return self
                .exec
                .call(module, kernel, &scalars)
                .map(Val::S)
                .map_err(|e| self.runtime(e));
        }
        kiln_runtime::map(
            self.exec,
            &ew.thunk.module,
            ew.thunk.kernel,
            &args,
            None,
            &threads,
        )
        .map(Val::A)
        .map_err(|err| self.array_error(err, e.span))
    }

    /// The thunk of `e` with each array builtin call replaced by a fresh local.
    fn compile_elementwise(&self, e: &'c TExpr) -> Result<Elementwise<'c>, Error> {
        let mut locals: Vec<LocalInfo> = self.locals.to_vec();
        let mut temps = Vec::new();
        let rewritten = replace_array_fns(e, &mut locals, &mut temps);
        let thunk = self.compile_thunk_with(&rewritten, &locals)?;
        Ok(Elementwise { thunk, temps })
    }

    fn array_fn_expr(&mut self, e: &'c TExpr) -> Result<Val, Error> {
        match &e.kind {
            TExprKind::Array(f, args) => self.array_fn(e, f, args),
            _ => self.eval_val(e),
        }
    }

    fn scalar_arg(&mut self, e: &'c TExpr) -> Result<Scalar, Error> {
        match self.eval_scalar(e, "this argument")?.as_slice() {
            [s] => Ok(*s),
            _ => Err(self.fail(e.span, "expected one scalar", "here")),
        }
    }

    fn count_arg(&mut self, e: &'c TExpr) -> Result<usize, Error> {
        match self.scalar_arg(e)? {
            Scalar::I64(n) if n >= 0 && n as u64 > self.max_elements as u64 => Err(self.fail(
                e.span,
                format!(
                    "{n} elements is more than this script may allocate ({})",
                    self.max_elements
                ),
                "length",
            )),
            Scalar::I64(n) if n >= 0 => {
                self.probe(n as usize, e.span)?;
                Ok(n as usize)
            }
            other => Err(self.fail(
                e.span,
                format!("an array length must be a non-negative i64, found {other}"),
                "length",
            )),
        }
    }

    /// Fails cleanly if `n` elements (with a temporary copy) cannot be allocated, where
    /// making the array would abort the process.
    fn probe(&self, n: usize, span: kiln_syntax::Span) -> Result<(), Error> {
        let bytes = n.checked_mul(16);
        let ok = bytes.is_some_and(|b| Vec::<u8>::new().try_reserve_exact(b).is_ok());
        if ok {
            Ok(())
        } else {
            Err(self.fail(
                span,
                format!("cannot allocate an array of {n} elements"),
                "out of memory",
            ))
        }
    }

    fn path_arg(&self, e: &TExpr) -> Result<String, Error> {
        if !self.files {
            return Err(self.fail(e.span, "this script may not read or write files", "a file"));
        }
        match &e.kind {
            TExprKind::Lit(TLit::Str(s)) => Ok(s.clone()),
            _ => Err(self.fail(e.span, "expected a file name in quotes", "here")),
        }
    }

    /// Runs an array builtin.
    fn array_fn(&mut self, e: &'c TExpr, f: &ArrayFn, args: &'c [TExpr]) -> Result<Val, Error> {
        let ty = match &e.ty {
            Ty::Scalar(t) => Some(*t),
            _ => None,
        };
        let one = |a: DynArray| Ok(Val::A(vec![a]));
        match f {
            ArrayFn::Linspace => {
                let (a, b) = (self.scalar_arg(&args[0])?, self.scalar_arg(&args[1])?);
                let n = self.count_arg(&args[2])?;
                let (a, b) = (as_f64(a), as_f64(b));
                // As NumPy: computed in f64, the last point exactly `stop`.
                let step = if n > 1 { (b - a) / (n - 1) as f64 } else { 0.0 };
                let v: Vec<f64> = (0..n)
                    .map(|i| {
                        if n > 1 && i == n - 1 {
                            b
                        } else {
                            a + i as f64 * step
                        }
                    })
                    .collect();
                one(from_f64s(ty.unwrap_or(ScalarType::F64), &v))
            }
            ArrayFn::Arange => {
                let vals: Vec<Scalar> = args
                    .iter()
                    .map(|a| self.scalar_arg(a))
                    .collect::<Result<_, _>>()?;
                let t = ty.unwrap_or(ScalarType::I64);
                let (start, stop, step) = match vals.as_slice() {
                    [stop] => (0.0, as_f64(*stop), 1.0),
                    [start, stop] => (as_f64(*start), as_f64(*stop), 1.0),
                    [start, stop, step] => (as_f64(*start), as_f64(*stop), as_f64(*step)),
                    _ => return Err(self.fail(e.span, "`arange` takes 1 to 3 arguments", "here")),
                };
                let names: &[&str] = match args.len() {
                    1 => &["stop"],
                    2 => &["start", "stop"],
                    _ => &["start", "stop", "step"],
                };
                for ((v, a), name) in vals.iter().zip(args).zip(names) {
                    let x = as_f64(*v);
                    if !x.is_finite() {
                        return Err(self.fail(
                            a.span,
                            format!("the {name} of `arange` must be finite, found {x}"),
                            name,
                        ));
                    }
                }
                if step == 0.0 {
                    return Err(self.fail(
                        args[args.len() - 1].span,
                        "the step of `arange` must not be zero",
                        "step",
                    ));
                }
                if t.is_int() {
                    // Exact integer arithmetic (i128 holds every i64/u64 value).
                    let as_i = |s: Scalar| -> i128 {
                        match s {
                            Scalar::I32(v) => v as i128,
                            Scalar::I64(v) => v as i128,
                            Scalar::U32(v) => v as i128,
                            Scalar::U64(v) => v as i128,
                            _ => 0,
                        }
                    };
                    let (start, stop, step) = match vals.as_slice() {
                        [stop] => (0, as_i(*stop), 1),
                        [start, stop] => (as_i(*start), as_i(*stop), 1),
                        [start, stop, step] => (as_i(*start), as_i(*stop), as_i(*step)),
                        _ => unreachable!("checked above"),
                    };
                    let n = if (step > 0 && stop > start) || (step < 0 && stop < start) {
                        ((stop - start).abs() + step.abs() - 1) / step.abs()
                    } else {
                        0
                    };
                    let n = usize::try_from(n)
                        .ok()
                        .filter(|&n| n <= self.max_elements)
                        .ok_or_else(|| {
                            self.fail(
                                e.span,
                                format!("`arange` would make {n} elements"),
                                "too many",
                            )
                        })?;
                    self.probe(n, e.span)?;
                    let v: Vec<Scalar> = (0..n)
                        .map(|i| Scalar::from_bits(t, (start + i as i128 * step) as u64))
                        .collect();
                    return one(DynArray::from_scalars(t, &v).expect("one dtype"));
                }
                // As NumPy: the length from f64 arithmetic. Not NaN: the arguments are finite
                // and the step is not zero (the quotient may still overflow to infinity).
                let n = ((stop - start) / step).ceil().max(0.0);
                if n > self.max_elements as f64 {
                    let count = if !n.is_finite() {
                        "more than f64::MAX".into()
                    } else if n < 1e15 {
                        format!("{n}")
                    } else {
                        format!("about {n:.3e}")
                    };
                    return Err(self.fail(
                        e.span,
                        format!(
                            "`arange` would make {count} elements, more than this script may allocate ({})",
                            self.max_elements
                        ),
                        "too many",
                    ));
                }
                let n = n as usize;
                self.probe(n, e.span)?;
                one(match t {
                    ScalarType::F32 => {
                        DynArray::from(ndarray::Array1::from(arange_f32(start, step, n)))
                    }
                    _ => DynArray::from(ndarray::Array1::from(arange_f64(start, step, n))),
                })
            }
            ArrayFn::Zeros | ArrayFn::Ones => {
                let n = self.count_arg(&args[0])?;
                let v = if matches!(f, ArrayFn::Zeros) {
                    0.0
                } else {
                    1.0
                };
                one(DynArray::full(&[n], Scalar::F64(v)))
            }
            ArrayFn::Full => {
                let n = self.count_arg(&args[0])?;
                let v = self.scalar_arg(&args[1])?;
                one(DynArray::full(&[n], v))
            }
            ArrayFn::Random => {
                let n = self.count_arg(&args[0])?;
                let Scalar::I64(seed) = self.scalar_arg(&args[1])? else {
                    return Err(self.fail(args[1].span, "the seed is an i64", "seed"));
                };
                one(DynArray::from(ndarray::Array1::from(random_f64(
                    n,
                    seed as u64,
                ))))
            }
            ArrayFn::Load => {
                let path = self.path_arg(&args[0])?;
                let t = ty.unwrap_or(ScalarType::F64);
                match npy::load(&path, t, self.max_elements) {
                    Ok(a) => one(a),
                    Err(npy::LoadError::Bad(msg)) => Err(self.fail(e.span, msg, "loaded here")),
                    Err(npy::LoadError::Mismatch { found, message }) => {
                        let call = format!("load(\"{}\")", npy::shorten(&path));
                        let hint = match self.binding {
                            Some((value, l)) if std::ptr::eq(value, e) => {
                                let name = &self.locals[l.0 as usize].name;
                                format!(
                                    "annotate the variable with the file's dtype: `let {name}: {found} = {call};`"
                                )
                            }
                            _ => format!(
                                "load the file into a variable of its own, annotated with the file's dtype, \
                                 and convert that: `let a: {found} = {call};`, then `a as {t}`"
                            ),
                        };
                        Err(Error::Compile(self.c.diagnostics(vec![
                            kiln_front::diag::help(
                                kiln_front::diag::error(0, e.span, message, "loaded here"),
                                hint,
                            ),
                        ])))
                    }
                }
            }
            ArrayFn::Save => {
                let path = self.path_arg(&args[0])?;
                let arr = match self.eval_val(&args[1])? {
                    Val::A(a) if a.len() == 1 => a.into_iter().next().expect("one"),
                    Val::S(s) if s.len() == 1 => DynArray::full(&[], s[0]),
                    _ => {
                        return Err(self.fail(
                            args[1].span,
                            "`save` writes one array",
                            "not one array",
                        ))
                    }
                };
                npy::save(&path, &arr).map_err(|error| {
                    self.fail(
                        e.span,
                        format!(
                            "cannot save to `{}`: {}",
                            npy::shorten(&path),
                            npy::io_message(&error)
                        ),
                        "saved here",
                    )
                })?;
                Ok(Val::S(vec![]))
            }
            ArrayFn::Reduce { item, targs } => self.reduce(e, *item, targs, args),
        }
    }

    fn reduce(
        &mut self,
        e: &'c TExpr,
        item: kiln_front::ItemId,
        targs: &[ScalarType],
        args: &'c [TExpr],
    ) -> Result<Val, Error> {
        let name = &self.c.program.items[item.0 as usize].name;
        let (Some(combine), Some(identity)) =
            (self.c.kernel(name, targs), self.c.identity(name, targs))
        else {
            return Err(Error::Usage(format!(
                "no compiled specialisation of `{name}` for {targs:?}"
            )));
        };
        let x = self.eval_val(&args[0])?;
        let axis = match args.get(1) {
            Some(a) => Some(self.scalar_arg(a)?),
            None => None,
        };
        let m = self.module();
        let threads = self.threads()?;
        match (x, axis) {
            (Val::S(s), None) => {
                let id = self
                    .exec
                    .call(m, identity, &[])
                    .map_err(|e| self.runtime(e))?;
                let mut acc = id[0];
                for v in s {
                    acc = self
                        .exec
                        .call(m, combine, &[acc, v])
                        .map_err(|e| self.runtime(e))?[0];
                }
                Ok(Val::S(vec![acc]))
            }
            (Val::A(a), None) => {
                let r = kiln_runtime::reduce_all(
                    self.exec,
                    m,
                    combine,
                    identity,
                    None,
                    &[Arg::Array(a[0].view())],
                    &threads,
                )
                .map_err(|err| self.array_error(err, e.span))?;
                Ok(Val::S(vec![r]))
            }
            (Val::A(a), Some(Scalar::I64(axis))) if axis >= 0 => {
                let r = kiln_runtime::reduce_axis(
                    self.exec,
                    m,
                    combine,
                    identity,
                    &a[0].view(),
                    axis as usize,
                    &threads,
                )
                .map_err(|err| self.array_error(err, e.span))?;
                Ok(Val::A(vec![r]))
            }
            (Val::S(_), Some(_)) => Err(self.fail(
                args[0].span,
                "`reduce` along an axis needs an array",
                "a scalar",
            )),
            (_, Some(other)) => Err(self.fail(
                args[1].span,
                format!("the axis must be a non-negative i64, found {other}"),
                "axis",
            )),
        }
    }
}

fn as_f64(s: Scalar) -> f64 {
    match s {
        Scalar::Bool(b) => b as u8 as f64,
        Scalar::I32(v) => v as f64,
        Scalar::I64(v) => v as f64,
        Scalar::U32(v) => v as f64,
        Scalar::U64(v) => v as f64,
        Scalar::F32(v) => v as f64,
        Scalar::F64(v) => v,
    }
}

fn from_f64s(t: ScalarType, v: &[f64]) -> DynArray {
    match t {
        ScalarType::F32 => DynArray::from(ndarray::Array1::from_iter(v.iter().map(|&x| x as f32))),
        _ => DynArray::from(ndarray::Array1::from(v.to_vec())),
    }
}

/// `n` values of `arange(start, …, step)` in f64, bit for bit as NumPy's `np.arange`
/// (`PyArray_ArangeObj` and `DOUBLE_fill` in `arraytypes.c.src`): `start`, `start + step`, then
/// `start + i * delta` with `delta` the difference of those two, which is not always `step`.
fn arange_f64(start: f64, step: f64, n: usize) -> Vec<f64> {
    let second = start + step;
    let delta = second - start;
    (0..n)
        .map(|i| match i {
            0 => start,
            1 => second,
            _ => start + i as f64 * delta,
        })
        .collect()
}

/// As [`arange_f64`] for f32 output, as `np.arange(start, stop, step, dtype=np.float32)` with
/// the (f32) arguments as Python floats: `start + step` is computed in f64 and rounded, and
/// `FLOAT_fill` computes `delta` and `start + i * delta` in f32 (`i` rounded to f32).
fn arange_f32(start: f64, step: f64, n: usize) -> Vec<f32> {
    let first = start as f32;
    let second = (start + step) as f32;
    let delta = second - first;
    (0..n)
        .map(|i| match i {
            0 => first,
            1 => second,
            _ => first + i as f32 * delta,
        })
        .collect()
}

/// `n` uniform values in [0, 1) from splitmix64 seeded with `seed`: the top 53 bits of each
/// output, scaled by 2⁻⁵³. The same seed gives the same values on every machine.
pub fn random_f64(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
        })
        .collect()
}

/// `e` with every array builtin call replaced by a new local (appended to `locals`, listed
/// in `temps` with the call it stands for).
fn replace_array_fns<'c>(
    e: &'c TExpr,
    locals: &mut Vec<LocalInfo>,
    temps: &mut Vec<(LocalId, &'c TExpr)>,
) -> TExpr {
    if let TExprKind::Array(..) = &e.kind {
        let id = LocalId(locals.len() as u32);
        locals.push(LocalInfo {
            name: format!("<{}>", temps.len()),
            ty: e.ty.clone(),
            mutable: false,
            origin: LocalOrigin::Binding,
            span: e.span,
        });
        temps.push((id, e));
        return TExpr {
            kind: TExprKind::Local(id),
            ty: e.ty.clone(),
            span: e.span,
        };
    }
    let mut out = e.clone();
    let map = |x: &'c TExpr, locals: &mut Vec<LocalInfo>, temps: &mut Vec<(LocalId, &'c TExpr)>| {
        Box::new(replace_array_fns(x, locals, temps))
    };
    out.kind = match &e.kind {
        TExprKind::Unary(op, x) => TExprKind::Unary(*op, map(x, locals, temps)),
        TExprKind::Cast(x) => TExprKind::Cast(map(x, locals, temps)),
        TExprKind::Binary(op, a, b) => {
            let a = map(a, locals, temps);
            TExprKind::Binary(*op, a, map(b, locals, temps))
        }
        TExprKind::Builtin(b, args) => TExprKind::Builtin(
            *b,
            args.iter()
                .map(|a| replace_array_fns(a, locals, temps))
                .collect(),
        ),
        TExprKind::Call(id, t, args) => TExprKind::Call(
            *id,
            t.clone(),
            args.iter()
                .map(|a| replace_array_fns(a, locals, temps))
                .collect(),
        ),
        TExprKind::Tuple(args) => TExprKind::Tuple(
            args.iter()
                .map(|a| replace_array_fns(a, locals, temps))
                .collect(),
        ),
        TExprKind::If(c, t, f) => {
            let c = map(c, locals, temps);
            let t = map(t, locals, temps);
            TExprKind::If(c, t, f.as_ref().map(|f| map(f, locals, temps)))
        }
        TExprKind::Block(b) => TExprKind::Block(TBlock {
            stmts: b
                .stmts
                .iter()
                .map(|st| match st {
                    TStmt::Let {
                        locals: ls,
                        destructure,
                        value,
                    } => TStmt::Let {
                        locals: ls.clone(),
                        destructure: *destructure,
                        value: replace_array_fns(value, locals, temps),
                    },
                    TStmt::Assign(l, value) => {
                        TStmt::Assign(*l, replace_array_fns(value, locals, temps))
                    }
                    TStmt::Expr(value) => TStmt::Expr(replace_array_fns(value, locals, temps)),
                    TStmt::Print(..) => st.clone(),
                })
                .collect(),
            tail: b.tail.as_ref().map(|t| map(t, locals, temps)),
        }),
        TExprKind::While(c, body) => {
            let c = map(c, locals, temps);
            TExprKind::While(c, map(body, locals, temps))
        }
        TExprKind::For {
            var,
            start,
            end,
            inclusive,
            body,
        } => {
            let start = map(start, locals, temps);
            let end = map(end, locals, temps);
            TExprKind::For {
                var: *var,
                start,
                end,
                inclusive: *inclusive,
                body: map(body, locals, temps),
            }
        }
        TExprKind::Return(v) => TExprKind::Return(v.as_ref().map(|v| map(v, locals, temps))),
        TExprKind::Lit(_)
        | TExprKind::Local(_)
        | TExprKind::Const(_)
        | TExprKind::Break
        | TExprKind::Continue
        | TExprKind::Array(..)
        | TExprKind::Error => e.kind.clone(),
    };
    out
}

/// Formats arrays as `print` shows them: nested brackets, elements as Rust's `{:?}`,
/// summarised with `...` beyond 1000 elements (as NumPy does); a tuple as `(a, b)`.
pub fn format_arrays(arrays: &[DynArray]) -> String {
    let parts: Vec<String> = arrays.iter().map(format_array).collect();
    if parts.len() == 1 {
        parts.into_iter().next().expect("one")
    } else {
        format!("({})", parts.join(", "))
    }
}

fn format_array(a: &DynArray) -> String {
    let shape = a.shape();
    if shape.is_empty() {
        return a.get(&[]).map_or(String::new(), |v| v.to_string());
    }
    // Elements are read where they are shown: a summary of a 2^32-element array reads
    // a few dozen, and never copies the whole array.
    let summarise = shape.iter().product::<usize>() > SUMMARY_THRESHOLD;
    let mut out = String::new();
    nested(a, &mut Vec::with_capacity(shape.len()), summarise, &mut out);
    out
}

/// Appends the sub-array of `a` at `prefix` (a partial index) to `out`.
fn nested(a: &DynArray, prefix: &mut Vec<usize>, summarise: bool, out: &mut String) {
    let shape = a.shape();
    let n = shape[prefix.len()];
    let last = prefix.len() + 1 == shape.len();
    out.push('[');
    let mut first = true;
    let mut i = 0;
    while i < n {
        if summarise && n > 2 * EDGE && i == EDGE {
            out.push_str(", ...");
            i = n - EDGE;
            continue;
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        prefix.push(i);
        if last {
            if let Some(v) = a.get(prefix) {
                out.push_str(&v.to_string());
            }
        } else {
            nested(a, prefix, summarise, out);
        }
        prefix.pop();
        i += 1;
    }
    out.push(']');
}
