//! Broadcasting, iteration and parallel execution over arrays.
//!
//! A call is planned once ([`Plan`]): operand shapes are broadcast (NumPy's rules), each
//! operand gets byte strides over the broadcast shape (0 along broadcast dimensions), and
//! dimensions that every operand traverses contiguously are merged, so a call on
//! contiguous arrays of any rank is one flat loop. The flat element range is then cut into
//! chunks run on a rayon pool; each chunk walks its range in *segments* (runs along the
//! innermost dimension), one inner-loop call per segment.
//!
//! Reductions cut the range into fixed blocks of [`REDUCE_BLOCK`] elements, fold each block
//! from the identity, and combine the block results pairwise in a fixed tree, so the
//! result is bit-identical for any thread count.

use kiln_interp::RuntimeError;
use kiln_ir::{KernelId, Module, Scalar, ScalarType};
use rayon::prelude::*;

use crate::array::{Arg, DynArray, DynViewMut, Uninit};
use crate::{write_scalar, Executor, InnerLoop};

/// Fails with [`kiln_interp::ErrorKind::Interrupted`] at element `first` when an interrupt
/// was requested ([`kiln_interp::INTERRUPT`]): checked before every segment of an array
/// operation, so Ctrl-C stops a long one between pieces.
fn stop_if_interrupted(
    m: &Module,
    id: KernelId,
    first: usize,
) -> Result<(), (usize, RuntimeError)> {
    if kiln_interp::interrupted() {
        return Err((
            first,
            RuntimeError {
                kind: kiln_interp::ErrorKind::Interrupted,
                kernel: m.kernel(id).name.clone(),
                loc: None,
            },
        ));
    }
    Ok(())
}

/// Elements per reduction block: fixed, so results do not depend on the thread count.
pub const REDUCE_BLOCK: usize = 1 << 16;

/// Below this many elements a call runs on the calling thread; above, chunks are at least
/// this big, so a chunk's scheduling cost (about a microsecond) stays under 1% of its work
/// even for the cheapest kernels (≈ 0.3 ns per element). Kernels estimated to cost more per
/// element use proportionally smaller chunks ([`min_chunk`]).
const MIN_CHUNK: usize = 1 << 18;

/// The smallest chunk worth its scheduling: [`MIN_CHUNK`] divided by the kernel's estimated
/// cost per element relative to the cheapest kernels (one unit per IR instruction, 40 per
/// call of a transcendental function, ×16 for a kernel with loops), so a chunk is always
/// about 100 µs of work or more.
pub fn min_chunk(m: &Module, id: KernelId) -> usize {
    use kiln_ir::{BinaryOp, InstKind, UnaryOp};
    let k = m.kernel(id);
    let mut cost = 0usize;
    let mut loops = false;
    let order = kiln_ir::cfg::reverse_post_order(k);
    let mut rank = vec![usize::MAX; k.blocks.len()];
    for (i, b) in order.iter().enumerate() {
        rank[b.index()] = i;
    }
    for &b in &order {
        for &i in &k.block(b).insts {
            let kind = &k.inst(i).kind;
            cost += match kind {
                InstKind::Unary(op, _)
                    if op.float_only()
                        && !matches!(
                            op,
                            UnaryOp::Sqrt
                                | UnaryOp::Floor
                                | UnaryOp::Ceil
                                | UnaryOp::Trunc
                                | UnaryOp::IsNan
                                | UnaryOp::IsInf
                                | UnaryOp::IsFinite
                        ) =>
                {
                    40
                }
                InstKind::Binary(BinaryOp::Atan2 | BinaryOp::Pow | BinaryOp::Hypot, ..) => 40,
                InstKind::Call(..) => 40,
                _ => 1,
            };
            loops |= kind
                .successors()
                .iter()
                .any(|t| rank[t.block.index()] <= rank[b.index()]);
        }
    }
    let units = cost.div_ceil(8).max(1) * if loops { 16 } else { 1 };
    (MIN_CHUNK / units).max(1024)
}

/// Chunks per thread, for load balance.
const CHUNKS_PER_THREAD: usize = 4;

/// A thread pool for array calls. The default size is `KILN_NUM_THREADS` if set, else the
/// number of CPUs.
#[derive(Clone, Debug)]
pub struct Threads {
    pool: std::sync::Arc<rayon::ThreadPool>,
    n: usize,
}

/// The most threads a pool may have. Far more threads than cores only adds start-up and
/// scheduling cost (10000 made a one-line script take 40 s), so a larger count is refused
/// rather than silently clamped: it is almost always a typo.
pub const MAX_THREADS: usize = 512;

impl Threads {
    /// A pool of `n` threads (`1 ≤ n ≤ MAX_THREADS`).
    pub fn new(n: usize) -> Result<Threads, String> {
        if n == 0 {
            return Err("the thread count must be at least 1".into());
        }
        if n > MAX_THREADS {
            return Err(format!(
                "{n} threads is more than Kiln supports (at most {MAX_THREADS}; this machine has {} CPUs)",
                std::thread::available_parallelism().map_or(1, |c| c.get())
            ));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("kiln-{i}"))
            .build()
            .map_err(|e| format!("cannot start {n} threads: {e}"))?;
        Ok(Threads {
            pool: std::sync::Arc::new(pool),
            n,
        })
    }

    /// `KILN_NUM_THREADS` threads, or one per CPU; an invalid value is an error.
    pub fn from_env() -> Result<Threads, String> {
        match std::env::var("KILN_NUM_THREADS") {
            Ok(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Threads::new(n).map_err(|e| format!("KILN_NUM_THREADS={n}: {e}")),
                _ => Err(format!(
                    "KILN_NUM_THREADS={v:?}: expected a whole number from 1 to {MAX_THREADS}"
                )),
            },
            Err(_) => Threads::new(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
            ),
        }
    }

    /// The number of threads.
    pub fn count(&self) -> usize {
        self.n
    }

    fn chunk_len(&self, total: usize, min_chunk: usize) -> usize {
        let per = total.div_ceil(self.n * CHUNKS_PER_THREAD);
        per.max(min_chunk)
    }
}

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Wrong arguments: count, dtypes, shapes.
    #[error("{0}")]
    Usage(String),
    /// The kernel failed at an element (the first failing element, in row-major order).
    #[error("{error} (element {index:?})")]
    Kernel {
        /// What failed.
        error: RuntimeError,
        /// The element's index in the broadcast shape.
        index: Vec<usize>,
    },
    /// The kernel failed, but not at one element: a reduction's identity, the combination
    /// of partial results, or the compilation of its loop.
    #[error("{0}")]
    Call(RuntimeError),
}

fn usage<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error::Usage(msg.into()))
}

/// Shapes, strides and operand lists: short, so kept inline (a call's fixed cost is mostly
/// allocation otherwise).
pub(crate) type Small<T> = smallvec::SmallVec<[T; 6]>;

/// One operand before planning: a pointer to its element 0, its shape and byte strides.
struct Operand {
    ptr: *mut u8,
    shape: Small<usize>,
    strides: Small<isize>,
}

/// The broadcast shape of `shapes`, or `None` if they do not broadcast.
pub fn broadcast_shapes<'s>(shapes: impl IntoIterator<Item = &'s [usize]>) -> Option<Vec<usize>> {
    let mut out: Vec<usize> = Vec::new();
    for s in shapes {
        if s.len() > out.len() {
            let mut grown = vec![1; s.len() - out.len()];
            grown.extend(&out);
            out = grown;
        }
        let off = out.len() - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

/// An iteration plan: merged dimensions and every operand's base pointer and byte strides.
struct Plan {
    /// The broadcast shape (for reporting element indices).
    shape: Small<usize>,
    /// Merged dimensions, outermost first; never empty.
    dims: Small<usize>,
    /// Per operand: base pointer and one byte stride per merged dimension.
    bases: Small<*mut u8>,
    strides: Small<Small<isize>>,
    total: usize,
}

// SAFETY: a plan only holds addresses of arrays that the planning call borrows (inputs
// shared, outputs exclusively) for as long as the plan is used; chunks write disjoint
// elements of the outputs.
unsafe impl Sync for Plan {}
// SAFETY: as above.
unsafe impl Send for Plan {}

impl Plan {
    fn new(shape: Small<usize>, ops: &[Operand]) -> Plan {
        let nd = shape.len();
        // Byte strides of every operand aligned to the broadcast shape.
        let aligned: Small<Small<isize>> = ops
            .iter()
            .map(|op| {
                let off = nd - op.shape.len();
                (0..nd)
                    .map(|d| {
                        if d < off || op.shape[d - off] == 1 {
                            0
                        } else {
                            op.strides[d - off]
                        }
                    })
                    .collect()
            })
            .collect();
        // Merge dimension d into the next kept one when every operand steps through both
        // as one: stride[d] == stride[next] * len[next]. Length-1 dimensions vanish.
        let mut dims: Small<usize> = Small::new();
        let mut strides: Small<Small<isize>> = smallvec::smallvec![Small::new(); ops.len()];
        for d in (0..nd).rev() {
            let len = shape[d];
            if len == 1 {
                continue;
            }
            let merge = !dims.is_empty()
                && aligned.iter().zip(&strides).all(|(a, s)| {
                    let inner = *s.last().expect("same length as dims");
                    a[d] == inner * *dims.last().expect("non-empty") as isize
                });
            if merge {
                *dims.last_mut().expect("non-empty") *= len;
            } else {
                dims.push(len);
                for (s, a) in strides.iter_mut().zip(&aligned) {
                    s.push(a[d]);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            for s in strides.iter_mut() {
                s.push(0);
            }
        }
        dims.reverse();
        for s in strides.iter_mut() {
            s.reverse();
        }
        let total = shape.iter().product();
        Plan {
            shape,
            dims,
            bases: ops.iter().map(|o| o.ptr).collect(),
            strides,
            total,
        }
    }

    /// Calls `f(len, ptrs, inner_strides, first_flat_index)` for each segment of the flat
    /// range `start..end`, in order; stops at the first error.
    fn segments<E>(
        &self,
        start: usize,
        end: usize,
        mut f: impl FnMut(usize, &[*mut u8], &[isize], usize) -> Result<(), E>,
    ) -> Result<(), E> {
        let last = self.dims.len() - 1;
        let inner = self.dims[last];
        let inner_strides: Small<isize> = self.strides.iter().map(|s| s[last]).collect();
        let mut ptrs: Small<*mut u8> = smallvec::smallvec![std::ptr::null_mut(); self.bases.len()];
        let mut flat = start;
        while flat < end {
            let (outer, pos) = (flat / inner, flat % inner);
            let len = (inner - pos).min(end - flat);
            for (j, p) in ptrs.iter_mut().enumerate() {
                let mut off = pos as isize * self.strides[j][last];
                let mut o = outer;
                for d in (0..last).rev() {
                    off += (o % self.dims[d]) as isize * self.strides[j][d];
                    o /= self.dims[d];
                }
                *p = self.bases[j].wrapping_offset(off);
            }
            f(len, &ptrs, &inner_strides, flat)?;
            flat += len;
        }
        Ok(())
    }

    /// The multi-index of flat element `i` in the broadcast shape.
    fn unravel(&self, mut i: usize) -> Vec<usize> {
        let mut idx = vec![0; self.shape.len()];
        for d in (0..self.shape.len()).rev() {
            let n = self.shape[d].max(1);
            idx[d] = i % n;
            i /= n;
        }
        idx
    }
}

/// 8-byte, 8-aligned storage for the scalar arguments of one call, allocated once; slots
/// never move, so their addresses stay valid while the storage lives.
struct ScalarSlots(Vec<u64>);

impl ScalarSlots {
    fn for_args(args: &[Arg]) -> ScalarSlots {
        let n = args.iter().filter(|a| matches!(a, Arg::Scalar(_))).count();
        ScalarSlots(Vec::with_capacity(n))
    }

    /// Stores `s` in the next slot and returns its address.
    fn push(&mut self, s: Scalar) -> *mut u8 {
        assert!(
            self.0.len() < self.0.capacity(),
            "one slot per scalar argument"
        );
        self.0.push(0);
        let slot = self.0.last_mut().expect("just pushed");
        let p = (slot as *mut u64).cast::<u8>();
        // SAFETY: every scalar fits in the slot's 8 aligned bytes.
        unsafe { write_scalar(p, s) };
        p
    }
}

/// Applies kernel `id` (a ufunc, or any kernel with scalar parameters) of `m` over `args`
/// with NumPy broadcasting. Results go into `outputs` when given (one per kernel result,
/// each of the broadcast shape and the result's dtype; `Arg::Out(k)` reads output `k` in
/// place) and are returned as fresh arrays otherwise. Argument dtypes must be the kernel's
/// parameter types exactly.
pub fn map(
    exec: &dyn Executor,
    m: &Module,
    id: KernelId,
    args: &[Arg],
    outputs: Option<&mut [DynViewMut]>,
    threads: &Threads,
) -> Result<Vec<DynArray>, Error> {
    map_with(
        m,
        id,
        &|uniform| exec.inner_loop(m, id, uniform),
        args,
        outputs,
        threads,
    )
}

/// Where [`map_with`] gets the inner loop for a set of uniform inputs (see
/// [`Executor::inner_loop`]).
pub type LoopSource<'a, 'm> =
    dyn Fn(u64) -> Result<std::sync::Arc<dyn InnerLoop + 'm>, RuntimeError> + 'a;

/// [`map`] with the inner loop from `loops` (for kernel `id` of `m`): what typed handles
/// use to keep their loops and skip the back end's lookup on every call.
pub fn map_with<'m>(
    m: &Module,
    id: KernelId,
    loops: &LoopSource<'_, 'm>,
    args: &[Arg],
    outputs: Option<&mut [DynViewMut]>,
    threads: &Threads,
) -> Result<Vec<DynArray>, Error> {
    let k = m.kernel(id);
    if args.len() != k.params.len() {
        return usage(format!(
            "`{}` takes {} arguments, got {}",
            k.name,
            k.params.len(),
            args.len()
        ));
    }
    let mut outs_raw: Small<Operand> = Small::new();
    let mut out_meta: Small<(ScalarType, Small<usize>)> = Small::new();
    let given = outputs.is_some();
    if let Some(outs) = outputs {
        if outs.len() != k.results.len() {
            return usage(format!(
                "`{}` has {} outputs, got {} output arrays",
                k.name,
                k.results.len(),
                outs.len()
            ));
        }
        for (j, (o, &t)) in outs.iter_mut().zip(&k.results).enumerate() {
            if o.dtype() != t {
                return usage(format!(
                    "output {j} of `{}` has dtype {t}, but the array given is {}",
                    k.name,
                    o.dtype()
                ));
            }
            out_meta.push((t, Small::from_slice(o.shape())));
            let shape = Small::from_slice(o.shape());
            let (ptr, strides) = o.raw();
            outs_raw.push(Operand {
                ptr,
                shape,
                strides,
            });
        }
    }
    let mut slots = ScalarSlots::for_args(args);
    let mut ins: Small<Operand> = Small::new();
    for (i, (a, &t)) in args.iter().zip(&k.params).enumerate() {
        let dtype = match a {
            Arg::Out(j) => match out_meta.get(*j) {
                Some((dt, _)) => *dt,
                None => return usage(format!("argument {i} reads output {j}, which is not given")),
            },
            other => other.dtype().expect("arrays and scalars have dtypes"),
        };
        if dtype != t {
            return usage(format!(
                "argument {i} of `{}` must be {t}, not {dtype}",
                k.name
            ));
        }
        ins.push(match a {
            Arg::Array(v) => {
                let (ptr, strides) = v.raw();
                Operand {
                    ptr,
                    shape: Small::from_slice(v.shape()),
                    strides,
                }
            }
            Arg::Scalar(s) => Operand {
                ptr: slots.push(*s),
                shape: Small::new(),
                strides: Small::new(),
            },
            Arg::Out(j) => Operand {
                ptr: outs_raw[*j].ptr,
                shape: outs_raw[*j].shape.clone(),
                strides: outs_raw[*j].strides.clone(),
            },
        });
    }
    let in_shape = broadcast_shapes(ins.iter().map(|o| o.shape.as_slice())).ok_or_else(|| {
        let shapes: Vec<String> = ins.iter().map(|o| format!("{:?}", o.shape)).collect();
        Error::Usage(format!(
            "arguments of `{}` cannot be broadcast together: shapes {}",
            k.name,
            shapes.join(", ")
        ))
    })?;
    // Given outputs take part in broadcasting (NumPy's `out=`): the arguments may broadcast
    // up to the outputs' shape, which is then the shape iterated.
    let shape = match out_meta.first() {
        Some((_, s)) if broadcast_shapes([in_shape.as_slice(), s]).as_deref() == Some(s) => {
            s.to_vec()
        }
        _ => in_shape.clone(),
    };
    let mut fresh: Small<Uninit> = Small::new();
    if given {
        for (j, (_, s)) in out_meta.iter().enumerate() {
            if s.as_slice() != shape.as_slice() {
                return usage(format!(
                    "output {j} of `{}` has shape {s:?}, but the arguments broadcast to {in_shape:?}",
                    k.name
                ));
            }
        }
    } else {
        for &t in &k.results {
            let mut u = Uninit::new(t, &shape).ok_or_else(|| {
                Error::Usage(format!(
                    "cannot allocate an output of shape {shape:?} ({t}) for `{}`",
                    k.name
                ))
            })?;
            let (ptr, strides) = u.raw();
            outs_raw.push(Operand {
                ptr,
                shape: Small::from_slice(&shape),
                strides,
            });
            fresh.push(u);
        }
    }
    ins.extend(outs_raw);
    let plan = Plan::new(Small::from_vec(shape), &ins);
    crate::progress::begin(plan.total);
    // Inputs with stride 0 along the innermost dimension are the same for every element of
    // every segment.
    let last = plan.dims.len() - 1;
    let uniform = (0..k.params.len().min(64))
        .filter(|&j| plan.strides[j][last] == 0)
        .fold(0u64, |mask, j| mask | 1 << j);
    let inner = if plan.total == 0 {
        None
    } else {
        Some(loops(uniform).map_err(Error::Call)?)
    };
    let run = |start: usize, end: usize| -> Result<(), (usize, RuntimeError)> {
        let Some(inner) = &inner else {
            return Ok(());
        };
        plan.segments(start, end, |n, ptrs, strides, first| {
            stop_if_interrupted(m, id, first)?;
            // SAFETY: the plan's operands are the borrowed arrays and scalar slots; every
            // segment stays inside them; outputs are exclusively borrowed (or fresh), and
            // chunks cover disjoint elements.
            unsafe { inner.run(n, ptrs, strides) }.map_err(|(i, e)| (first + i, e))?;
            crate::progress::advance(n);
            Ok(())
        })
    };
    let min = if plan.total <= 1024 || threads.count() == 1 {
        usize::MAX
    } else {
        min_chunk(m, id)
    };
    let result = if plan.total <= min {
        run(0, plan.total)
    } else {
        let chunk = threads.chunk_len(plan.total, min);
        let nchunks = plan.total.div_ceil(chunk);
        let results: Vec<Result<(), (usize, RuntimeError)>> = threads.pool.install(|| {
            (0..nchunks)
                .into_par_iter()
                .map(|c| run(c * chunk, ((c + 1) * chunk).min(plan.total)))
                .collect()
        });
        results.into_iter().find(|r| r.is_err()).unwrap_or(Ok(()))
    };
    drop(slots);
    match result {
        Ok(()) => Ok(fresh
            .into_iter()
            // SAFETY: the loop wrote every element of every fresh output.
            .map(|u| unsafe { u.assume_init() })
            .collect()),
        Err((i, error)) => Err(Error::Kernel {
            error,
            index: plan.unravel(i),
        }),
    }
}

/// Combines partial results pairwise, left to right, level by level: a fixed tree. The
/// result's NaN is the canonical one: a reduction loop that folds by lanes with the bare
/// operator (`kiln_ir::commutative_combine`) may leave another.
fn tree_combine(
    exec: &dyn Executor,
    m: &Module,
    combine: KernelId,
    mut parts: Vec<Scalar>,
    identity: Scalar,
) -> Result<Scalar, RuntimeError> {
    if parts.is_empty() {
        return Ok(identity);
    }
    while parts.len() > 1 {
        let mut next = Vec::with_capacity(parts.len().div_ceil(2));
        for pair in parts.chunks(2) {
            next.push(match pair {
                [a, b] => exec.call(m, combine, &[*a, *b])?[0],
                [a] => *a,
                _ => unreachable!("chunks of two"),
            });
        }
        parts = next;
    }
    Ok(parts[0].canonical_nan())
}

/// Reduces every element of the (broadcast) arguments with `combine`, after applying
/// `map` to them when given (otherwise there is exactly one argument, of the combine's
/// type). `identity` is the `reduce` item's identity kernel.
pub fn reduce_all(
    exec: &dyn Executor,
    m: &Module,
    combine: KernelId,
    identity: KernelId,
    map: Option<KernelId>,
    args: &[Arg],
    threads: &Threads,
) -> Result<Scalar, Error> {
    let acc_ty = m.kernel(combine).results[0];
    let params = match map {
        Some(f) => {
            let k = m.kernel(f);
            if k.results.len() != 1 || k.results[0] != acc_ty {
                return usage(format!(
                    "`{}` gives {:?}, but the reduction combines {acc_ty}",
                    k.name, k.results
                ));
            }
            k.params.clone()
        }
        None => vec![acc_ty],
    };
    if args.len() != params.len() {
        return usage(format!(
            "the reduction takes {} arguments, got {}",
            params.len(),
            args.len()
        ));
    }
    let mut slots = ScalarSlots::for_args(args);
    let mut ops: Small<Operand> = Small::new();
    for (i, (a, &t)) in args.iter().zip(&params).enumerate() {
        match a {
            Arg::Array(v) if v.dtype() == t => {
                let (ptr, strides) = v.raw();
                ops.push(Operand {
                    ptr,
                    shape: Small::from_slice(v.shape()),
                    strides,
                });
            }
            Arg::Scalar(s) if s.ty() == t => ops.push(Operand {
                ptr: slots.push(*s),
                shape: Small::new(),
                strides: Small::new(),
            }),
            Arg::Out(_) => return usage("a reduction has no outputs to read"),
            other => {
                return usage(format!(
                    "argument {i} of the reduction must be {t}, not {}",
                    other.dtype().map_or("?", |d| d.name())
                ))
            }
        }
    }
    let shape = broadcast_shapes(ops.iter().map(|o| o.shape.as_slice())).ok_or_else(|| {
        Error::Usage("the reduction's arguments cannot be broadcast together".into())
    })?;
    let plan = Plan::new(Small::from_vec(shape), &ops);
    crate::progress::begin(plan.total);
    let identity = exec.call(m, identity, &[]).map_err(Error::Call)?[0];
    let folder = exec.reduce_loop(m, map, combine).map_err(Error::Call)?;
    let nblocks = plan.total.div_ceil(REDUCE_BLOCK);
    let block = |b: usize| -> Result<Scalar, (usize, RuntimeError)> {
        let mut acc = identity;
        let end = ((b + 1) * REDUCE_BLOCK).min(plan.total);
        plan.segments(b * REDUCE_BLOCK, end, |n, ptrs, strides, first| {
            stop_if_interrupted(m, combine, first)?;
            // SAFETY: the plan's operands are borrowed arrays and scalar slots.
            acc = unsafe { folder.run(acc, n, ptrs, strides) }.map_err(|(i, e)| (first + i, e))?;
            crate::progress::advance(n);
            Ok(())
        })?;
        Ok(acc)
    };
    let parts: Vec<Result<Scalar, (usize, RuntimeError)>> =
        if nblocks <= 1 || threads.count() == 1 || plan.total <= MIN_CHUNK {
            (0..nblocks).map(block).collect()
        } else {
            threads
                .pool
                .install(|| (0..nblocks).into_par_iter().map(block).collect())
        };
    drop(slots);
    let mut values = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Ok(v) => values.push(v),
            Err((i, error)) => {
                return Err(Error::Kernel {
                    error,
                    index: plan.unravel(i),
                })
            }
        }
    }
    tree_combine(exec, m, combine, values, identity).map_err(Error::Call)
}

/// Reduces `x` along `axis` with `combine`: the result has `x`'s shape without that axis.
/// Each lane is folded in the same fixed blocks and tree as [`reduce_all`].
pub fn reduce_axis(
    exec: &dyn Executor,
    m: &Module,
    combine: KernelId,
    identity: KernelId,
    x: &crate::DynView,
    axis: usize,
    threads: &Threads,
) -> Result<DynArray, Error> {
    let acc_ty = m.kernel(combine).results[0];
    if x.dtype() != acc_ty {
        return usage(format!(
            "the reduction combines {acc_ty}, not {}",
            x.dtype()
        ));
    }
    let shape = x.shape().to_vec();
    if axis >= shape.len() {
        return usage(format!(
            "axis {axis} is out of range for an array of {} dimensions",
            shape.len()
        ));
    }
    let (ptr, strides) = x.raw();
    let lane_len = shape[axis];
    let lane_stride = strides[axis];
    let mut out_shape = shape.clone();
    out_shape.remove(axis);
    let mut out_strides = strides.clone();
    out_strides.remove(axis);
    // The output is the one allocation that does not follow from the input's size: a
    // (10^10, 0) array holds nothing, but its sum along axis 1 is 10^10 zeros. Reserve it
    // fallibly, before any work, so a size that cannot be met is an error, not an abort.
    let mut out = Uninit::new(acc_ty, &out_shape).ok_or_else(|| {
        Error::Usage(format!(
            "cannot allocate the result of shape {out_shape:?} ({acc_ty}) of the reduction"
        ))
    })?;
    let lanes: usize = out_shape.iter().product();
    // Lane `l`'s result goes to element `l` of the (row-major, contiguous) output.
    let (out_ptr, _) = out.raw();
    let size = crate::array::element_bytes(acc_ty);
    let put = |l: usize, v: Scalar| {
        debug_assert!(l < lanes);
        // SAFETY: `l < lanes`, the output's element count, and `v` has its dtype.
        unsafe { write_scalar(out_ptr.add(l * size), v) }
    };
    let identity = exec.call(m, identity, &[]).map_err(Error::Call)?[0];
    if lane_len == 0 || lanes == 0 {
        (0..lanes).for_each(|l| put(l, identity));
        // SAFETY: every element was written just above.
        return Ok(unsafe { out.assume_init() });
    }
    let folder = exec.reduce_loop(m, None, combine).map_err(Error::Call)?;
    let nblocks = lane_len.div_ceil(REDUCE_BLOCK);
    struct Base(*mut u8);
    // SAFETY: the array is borrowed for the whole call and only read.
    unsafe impl Sync for Base {}
    impl Base {
        fn ptr(&self) -> *mut u8 {
            self.0
        }
    }
    let base = Base(ptr);
    let lane_ptr = |mut l: usize| -> *mut u8 {
        let mut off = 0isize;
        for d in (0..out_shape.len()).rev() {
            off += (l % out_shape[d]) as isize * out_strides[d];
            l /= out_shape[d];
        }
        base.ptr().wrapping_offset(off)
    };
    let item = |it: usize| -> Result<Scalar, (usize, RuntimeError)> {
        let (l, b) = (it / nblocks, it % nblocks);
        let start = b * REDUCE_BLOCK;
        let n = (lane_len - start).min(REDUCE_BLOCK);
        let p = lane_ptr(l).wrapping_offset(start as isize * lane_stride);
        // SAFETY: `n` elements from `start` along the lane lie inside the array.
        unsafe { folder.run(identity, n, &[p], &[lane_stride]) }
            .map_err(|(i, e)| (l * lane_len + start + i, e))
    };
    // The blocks' partial results are kept for a batch of lanes at a time, so that their
    // memory stays a fraction of the input's even when lanes are short.
    let lanes_per_batch = (AXIS_BATCH_ITEMS / nblocks).max(1);
    let mut first_lane = 0;
    while first_lane < lanes {
        let batch = first_lane..(first_lane + lanes_per_batch).min(lanes);
        let items = batch.start * nblocks..batch.end * nblocks;
        let parallel = threads.count() > 1 && batch.len() * lane_len > MIN_CHUNK;
        let parts: Vec<Result<Scalar, (usize, RuntimeError)>> = if parallel {
            threads.pool.install(|| {
                items
                    .clone()
                    .into_par_iter()
                    .with_min_len((MIN_CHUNK / lane_len).max(1))
                    .map(item)
                    .collect()
            })
        } else {
            items.clone().map(item).collect()
        };
        let mut values = Vec::with_capacity(nblocks);
        for (it, p) in items.zip(parts) {
            match p {
                Ok(v) => values.push(v),
                Err((flat, error)) => {
                    let index = axis_index(flat, lane_len, &out_shape, axis);
                    return Err(Error::Kernel { error, index });
                }
            }
            if (it + 1) % nblocks == 0 {
                let parts = std::mem::take(&mut values);
                let r = tree_combine(exec, m, combine, parts, identity).map_err(Error::Call)?;
                put(it / nblocks, r);
            }
        }
        first_lane = batch.end;
    }
    // SAFETY: every lane's result was written: the batches cover `0..lanes`, and each lane's
    // last block writes it.
    Ok(unsafe { out.assume_init() })
}

/// How many blocks' partial results [`reduce_axis`] keeps at once.
const AXIS_BATCH_ITEMS: usize = 1 << 16;

/// The index in the reduced array of element `flat`, counted lane-major (lane by lane, and
/// along the lane within each).
fn axis_index(flat: usize, lane_len: usize, out_shape: &[usize], axis: usize) -> Vec<usize> {
    let (l, i) = (flat / lane_len, flat % lane_len);
    let mut outer = vec![0; out_shape.len()];
    let mut rest = l;
    for d in (0..out_shape.len()).rev() {
        outer[d] = rest % out_shape[d];
        rest /= out_shape[d];
    }
    let mut idx = Vec::with_capacity(out_shape.len() + 1);
    idx.extend(&outer[..axis]);
    idx.push(i);
    idx.extend(&outer[axis..]);
    idx
}
