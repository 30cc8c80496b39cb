//! The embedding API: compile Kiln source once, run its ufuncs and reductions over
//! `ndarray` arrays on every core.
//!
//! ```
//! use ndarray::Array1;
//! use kiln::{Arg, Jit};
//!
//! let jit = Jit::new()?;
//! let m = jit.compile("demo.kl", "
//!     ufunc axpy<T: float>(a: T, x: T, y: T) -> T { a * x + y }
//!     reduce add<T: num>(a: T, b: T) -> T identity 0 { a + b }
//! ")?;
//! let x = Array1::linspace(0.0, 1.0, 5);
//! let y = Array1::from_elem(5, 1.0);
//! // Dynamic dtypes: the specialisation is picked from the arguments (here axpy<f64>).
//! let z = m.ufunc("axpy")?.call(&[2.0.into(), (&x).into(), (&y).into()])?;
//! assert_eq!(z[0].to_scalars()[4], kiln::Scalar::F64(3.0));
//! // A typed handle resolves the specialisation and the native code once.
//! let axpy = m.ufunc("axpy")?.typed::<f64>(&[kiln::ScalarType::F64; 3])?;
//! let z = axpy.call(&[2.0.into(), (&x).into(), (&y).into()])?;
//! assert_eq!(z[[4]], 3.0);
//! // Reductions: whole array or along an axis.
//! let s = m.reduction("add")?.reduce(&z)?;
//! assert_eq!(s, kiln::Scalar::F64(10.0));
//! # Ok::<(), kiln::Error>(())
//! ```
//!
//! Errors render with their source: a compile error shows the diagnostic, a kernel failure
//! names the kernel, the source location and the element.

use std::sync::Arc;

use kiln_ir::{KernelId, Scalar, ScalarType};
use kiln_runtime::{Arg, DynArray, DynView, DynViewMut, Element, Executor, InnerLoop, Threads};
use ndarray::{ArrayD, ArrayViewMutD};

use crate::{Compiled, Error};

/// The JIT: a back end and a thread pool. Cheap to clone.
#[derive(Clone)]
pub struct Jit {
    exec: Arc<dyn Executor>,
    threads: Threads,
    fast_math: bool,
}

impl std::fmt::Debug for Jit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jit")
            .field("backend", &self.exec.name())
            .field("threads", &self.threads.count())
            .finish()
    }
}

impl Jit {
    /// The Cranelift JIT for this CPU, with `KILN_NUM_THREADS` threads (default: one per
    /// CPU).
    pub fn new() -> Result<Jit, Error> {
        let threads = Threads::from_env().map_err(Error::Usage)?;
        Jit::with_executor(Arc::new(cpu()?), threads)
    }

    /// The Cranelift JIT with `n` threads.
    pub fn with_threads(n: usize) -> Result<Jit, Error> {
        Jit::with_executor(Arc::new(cpu()?), Threads::new(n).map_err(Error::Usage)?)
    }

    /// The GPU (CUDA device `KILN_GPU_DEVICE`, default 0), through the same API: ufuncs and
    /// reductions on host arrays move them to the device in chunks and back (reductions
    /// there give the CPU's bits); [`Jit::gpu_device`] gives the device itself, for arrays
    /// that stay there. Fails with a plain message where there is no NVIDIA driver or no
    /// device. Needs the `gpu` feature.
    ///
    /// ```
    /// match kiln::Jit::gpu() {
    ///     Ok(jit) => assert_eq!(jit.backend(), "gpu"),
    ///     // No driver, or no device: the error says which.
    ///     Err(e) => assert!(e.to_string().contains("NVIDIA driver") || e.to_string().contains("device")),
    /// }
    /// ```
    #[cfg(feature = "gpu")]
    pub fn gpu() -> Result<Jit, Error> {
        let gpu = kiln_runtime::gpu::Gpu::new().map_err(|e| Error::Usage(e.to_string()))?;
        // One host thread feeds the device: chunks already overlap copies and kernels.
        Jit::with_executor(Arc::new(gpu), Threads::new(1).map_err(Error::Usage)?)
    }

    /// The device behind a [`Jit::gpu`] (for [`kiln_runtime::gpu::DeviceArray`]s), or
    /// `None` for other back ends.
    #[cfg(feature = "gpu")]
    pub fn gpu_device(&self) -> Option<kiln_runtime::gpu::Gpu> {
        self.exec
            .as_any()
            .and_then(|a| a.downcast_ref::<kiln_runtime::gpu::Gpu>())
            .cloned()
    }

    /// Any executor (the reference interpreter, say) with a thread pool.
    pub fn with_executor(exec: Arc<dyn Executor>, threads: Threads) -> Result<Jit, Error> {
        Ok(Jit {
            exec,
            threads,
            fast_math: false,
        })
    }

    /// Opts in to **fast math** for the modules this `Jit` compiles from now on: a float
    /// `a * b + c` becomes one `fma(a, b, c)` (one rounding instead of two). Results may
    /// differ from the default in the last bit — usually they are closer to the exact
    /// value — and no longer match NumPy's bit for bit. Reductions already use a fixed lane
    /// order in both modes (`docs/runtime.md` §7), and the math library has one variant,
    /// so this is all fast math changes today. The default stays exact and reproducible.
    ///
    /// ```
    /// # fn main() -> Result<(), kiln::Error> {
    /// let src = "ufunc f(a: f64, b: f64, c: f64) -> f64 { a * b + c }";
    /// let args = [kiln::Scalar::F64(0.1), kiln::Scalar::F64(10.0), kiln::Scalar::F64(-1.0)];
    /// let exact = kiln::Jit::new()?.compile("f.kl", src)?.call("f", &args)?;
    /// let fast = kiln::Jit::new()?.with_fast_math(true).compile("f.kl", src)?.call("f", &args)?;
    /// assert_eq!(exact, [kiln::Scalar::F64(0.0)]); // 0.1 * 10.0 rounds to 1.0
    /// assert_eq!(fast, [kiln::Scalar::F64(0.1f64.mul_add(10.0, -1.0))]); // 5.55e-17
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_fast_math(mut self, on: bool) -> Jit {
        self.fast_math = on;
        self
    }

    /// The number of threads array calls use.
    pub fn threads(&self) -> usize {
        self.threads.count()
    }

    /// The executor's name (`cpu`, `interp`).
    pub fn backend(&self) -> &str {
        self.exec.name()
    }

    /// Compiles a source file. Every independent error is reported, as one
    /// [`Error::Compile`] that renders the diagnostics.
    pub fn compile(&self, name: &str, src: &str) -> Result<JitModule, Error> {
        let mut compiled = crate::compile(name, src)?;
        if self.fast_math {
            kiln_opt::contract_fma(&mut compiled.module);
            kiln_opt::contract_fma(&mut compiled.optimized);
        }
        Ok(JitModule {
            compiled: Arc::new(compiled),
            jit: self.clone(),
        })
    }
}

fn cpu() -> Result<kiln_runtime::Cpu, Error> {
    kiln_runtime::Cpu::new().map_err(|e| Error::Usage(e.to_string()))
}

/// A compiled source file, ready to run. `Send + Sync`: share it between threads.
#[derive(Clone)]
pub struct JitModule {
    compiled: Arc<Compiled>,
    jit: Jit,
}

impl std::fmt::Debug for JitModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitModule")
            .field("compiled", &self.compiled)
            .field("jit", &self.jit)
            .finish()
    }
}

impl JitModule {
    /// The compiled program (IR, optimised IR, checked items).
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The executor and threads this module runs on.
    pub fn jit(&self) -> &Jit {
        &self.jit
    }

    fn module(&self) -> &kiln_ir::Module {
        if self.jit.exec.wants_optimized() {
            &self.compiled.optimized
        } else {
            &self.compiled.module
        }
    }

    /// Calls any `fn` or `ufunc` with scalars.
    pub fn call(&self, name: &str, args: &[Scalar]) -> Result<Vec<Scalar>, Error> {
        self.compiled.call_on(self.jit.exec.as_ref(), name, args)
    }

    /// The ufunc `name`.
    pub fn ufunc(&self, name: &str) -> Result<Ufunc<'_>, Error> {
        self.item_of_kind(name, kiln_syntax::ast::ItemKind::Ufunc, "ufunc")?;
        Ok(Ufunc {
            module: self,
            name: name.to_string(),
        })
    }

    /// The reduction `name` (a `reduce` item).
    pub fn reduction(&self, name: &str) -> Result<Reduction<'_>, Error> {
        self.item_of_kind(name, kiln_syntax::ast::ItemKind::Reduce, "reduce")?;
        Ok(Reduction {
            module: self,
            name: name.to_string(),
        })
    }

    fn item_of_kind(
        &self,
        name: &str,
        kind: kiln_syntax::ast::ItemKind,
        word: &str,
    ) -> Result<(), Error> {
        match self.compiled.program.item(name) {
            Some((_, item)) if item.kind == kind => Ok(()),
            Some((_, item)) => Err(Error::Usage(format!(
                "`{name}` is a {}, not a {word}",
                kind_word(item.kind)
            ))),
            None => Err(Error::Usage(format!(
                "{} has no {word} named `{name}`",
                self.compiled.name
            ))),
        }
    }

    /// The specialisation of item `name` for arguments of `dtypes`.
    fn resolve(
        &self,
        name: &str,
        dtypes: &[ScalarType],
    ) -> Result<(KernelId, Vec<ScalarType>), Error> {
        let (_, item) = self
            .compiled
            .program
            .item(name)
            .ok_or_else(|| Error::Usage(format!("no item named `{name}`")))?;
        let targs = crate::infer_type_args_of(item, dtypes).ok_or_else(|| {
            let tys: Vec<&str> = dtypes.iter().map(|t| t.name()).collect();
            Error::Usage(format!(
                "`{name}` cannot be called with ({}): {}",
                tys.join(", "),
                signature(item)
            ))
        })?;
        let id = self
            .compiled
            .kernel(name, &targs)
            .ok_or_else(|| Error::Usage(format!("`{name}` has no specialisation for {targs:?}")))?;
        Ok((id, targs))
    }

    fn runtime_error(&self, e: kiln_runtime::Error) -> Error {
        match e {
            kiln_runtime::Error::Usage(msg) => Error::Usage(msg),
            kiln_runtime::Error::Kernel { error, index } => Error::Element {
                error,
                file: Some(self.compiled.name.clone()),
                index,
            },
            kiln_runtime::Error::Call(error) => Error::Runtime {
                error,
                file: Some(self.compiled.name.clone()),
            },
        }
    }
}

fn kind_word(kind: kiln_syntax::ast::ItemKind) -> &'static str {
    use kiln_syntax::ast::ItemKind;
    match kind {
        ItemKind::Fn => "fn",
        ItemKind::Ufunc => "ufunc",
        ItemKind::Reduce => "reduce",
        ItemKind::Gufunc => "gufunc",
        ItemKind::Kernel => "kernel",
    }
}

fn signature(item: &kiln_front::CheckedItem) -> String {
    let params: Vec<String> = item
        .params
        .iter()
        .map(|(n, t, _)| format!("{n}: {t}"))
        .collect();
    let generics: Vec<String> = item
        .generics
        .iter()
        .map(|(n, c)| format!("{n}: {}", c.name()))
        .collect();
    if generics.is_empty() {
        format!("it takes ({})", params.join(", "))
    } else {
        format!(
            "it takes ({}) for <{}>",
            params.join(", "),
            generics.join(", ")
        )
    }
}

/// `f64`, or `(f64, i32)` for several.
fn types_text(types: &[ScalarType]) -> String {
    match types {
        [t] => t.to_string(),
        ts => format!(
            "({})",
            ts.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The dtypes of arguments, with `Arg::Out(k)` taking output `k`'s dtype.
fn arg_dtypes(args: &[Arg], outs: &[ScalarType]) -> Result<Vec<ScalarType>, Error> {
    args.iter()
        .map(|a| match a {
            Arg::Out(k) => outs.get(*k).copied().ok_or_else(|| {
                Error::Usage(format!("an argument reads output {k}, which is not given"))
            }),
            other => Ok(other.dtype().expect("arrays and scalars have a dtype")),
        })
        .collect()
}

/// A ufunc of a [`JitModule`], dtype-dynamic: each call picks the specialisation from its
/// arguments' dtypes (compiled on first use, then cached).
#[derive(Clone, Debug)]
pub struct Ufunc<'m> {
    module: &'m JitModule,
    name: String,
}

impl<'m> Ufunc<'m> {
    /// Applies the ufunc elementwise with NumPy broadcasting; returns one fresh array per
    /// output.
    pub fn call(&self, args: &[Arg]) -> Result<Vec<DynArray>, Error> {
        self.run(args, None)
    }

    /// Like [`Ufunc::call`], writing into `outs` (one per output). The arguments broadcast
    /// to the outputs' shape, as NumPy's `out=`. `Arg::Out(k)` as an argument reads output
    /// `k`, so `x = f(x)` runs in place; if the call fails, elements before the failing one
    /// (at least) have been written, as with any output.
    ///
    /// ```
    /// # use kiln::{Arg, Jit};
    /// let m = Jit::new()?.compile("scale.kl", "ufunc scale(x: f64, s: f64) -> f64 { x * s }")?;
    /// let mut x = ndarray::Array2::<f64>::ones((2, 3));
    /// // x = scale(x, 4.0), in place.
    /// m.ufunc("scale")?.call_into(&[Arg::Out(0), 4.0.into()], &mut [(&mut x).into()])?;
    /// assert!(x.iter().all(|&v| v == 4.0));
    /// # Ok::<(), kiln::Error>(())
    /// ```
    pub fn call_into(&self, args: &[Arg], outs: &mut [DynViewMut]) -> Result<(), Error> {
        self.run(args, Some(outs)).map(|_| ())
    }

    /// Picks the specialisation from the arguments' (and outputs') dtypes and maps it.
    fn run(&self, args: &[Arg], outs: Option<&mut [DynViewMut]>) -> Result<Vec<DynArray>, Error> {
        let out_types: Vec<ScalarType> = outs
            .iter()
            .flat_map(|o| o.iter().map(|v| v.dtype()))
            .collect();
        let dtypes = arg_dtypes(args, &out_types)?;
        let (id, _) = self.module.resolve(&self.name, &dtypes)?;
        kiln_runtime::map(
            self.module.jit.exec.as_ref(),
            self.module.module(),
            id,
            args,
            outs,
            &self.module.jit.threads,
        )
        .map_err(|e| self.module.runtime_error(e))
    }

    /// A handle for arguments of `dtypes` whose (single) output has type `T`: the
    /// specialisation and its native loop are resolved now, so calls only check shapes.
    pub fn typed<T: Element>(&self, dtypes: &[ScalarType]) -> Result<TypedUfunc<'m, T>, Error> {
        let (id, _) = self.module.resolve(&self.name, dtypes)?;
        let m = self.module.module();
        let results = &m.kernel(id).results;
        if results.as_slice() != [T::DTYPE] {
            return Err(Error::Usage(format!(
                "`{}` for {} returns {}, not {}",
                self.name,
                types_text(dtypes),
                types_text(results),
                T::DTYPE
            )));
        }
        Ok(TypedUfunc {
            module: self.module,
            id,
            loops: std::sync::Mutex::new(Vec::new()),
            _out: std::marker::PhantomData,
        })
    }
}

/// A ufunc specialised for fixed argument dtypes with one output of type `T`
/// ([`Ufunc::typed`]): no lookup, type inference or cache access per call.
pub struct TypedUfunc<'m, T> {
    module: &'m JitModule,
    id: KernelId,
    /// Native loops by their set of uniform (broadcast scalar) inputs: usually one or two.
    loops: std::sync::Mutex<Vec<(u64, Arc<dyn InnerLoop + 'm>)>>,
    _out: std::marker::PhantomData<fn() -> T>,
}

impl<'m, T: Element> TypedUfunc<'m, T> {
    fn inner(&self, uniform: u64) -> Result<Arc<dyn InnerLoop + 'm>, kiln_interp::RuntimeError> {
        let mut loops = self.loops.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, l)) = loops.iter().find(|(u, _)| *u == uniform) {
            return Ok(l.clone());
        }
        let l = self
            .module
            .jit
            .exec
            .inner_loop(self.module.module(), self.id, uniform)?;
        loops.push((uniform, l.clone()));
        Ok(l)
    }

    /// Applies the ufunc; returns a fresh array.
    pub fn call(&self, args: &[Arg]) -> Result<ArrayD<T>, Error> {
        let out = self.run(args, None)?;
        Ok(T::unwrap(out.into_iter().next().expect("one output")).expect("checked output dtype"))
    }

    /// Applies the ufunc into `out` (of the broadcast shape).
    pub fn call_into(&self, args: &[Arg], out: ArrayViewMutD<'_, T>) -> Result<(), Error> {
        self.run(args, Some(&mut [T::wrap_view_mut(out)]))
            .map(|_| ())
    }

    fn run(&self, args: &[Arg], outs: Option<&mut [DynViewMut]>) -> Result<Vec<DynArray>, Error> {
        kiln_runtime::map_with(
            self.module.module(),
            self.id,
            &|u| self.inner(u),
            args,
            outs,
            &self.module.jit.threads,
        )
        .map_err(|e| self.module.runtime_error(e))
    }
}

/// A reduction of a [`JitModule`]. Results are bit-identical for any thread count.
#[derive(Clone, Debug)]
pub struct Reduction<'m> {
    module: &'m JitModule,
    name: String,
}

impl Reduction<'_> {
    fn kernels(&self, dtype: ScalarType) -> Result<(KernelId, KernelId), Error> {
        let (combine, targs) = self.module.resolve(&self.name, &[dtype, dtype])?;
        let identity = self
            .module
            .compiled
            .identity(&self.name, &targs)
            .ok_or_else(|| Error::Usage(format!("`{}` has no identity kernel", self.name)))?;
        Ok((combine, identity))
    }

    /// Reduces every element of `x`.
    pub fn reduce<'a>(&self, x: impl Into<DynView<'a>>) -> Result<Scalar, Error> {
        let x = x.into();
        let (combine, identity) = self.kernels(x.dtype())?;
        kiln_runtime::reduce_all(
            self.module.jit.exec.as_ref(),
            self.module.module(),
            combine,
            identity,
            None,
            &[Arg::Array(x)],
            &self.module.jit.threads,
        )
        .map_err(|e| self.module.runtime_error(e))
    }

    /// Reduces `x` along `axis`; the result has `x`'s shape without it.
    ///
    /// ```
    /// # use kiln::Jit;
    /// let m = Jit::new()?.compile("max.kl", "reduce biggest(a: i64, b: i64) -> i64 identity -9223372036854775807 - 1 { max(a, b) }")?;
    /// let a = ndarray::arr2(&[[1i64, 9, 3], [7, 2, 8]]);
    /// let rows = m.reduction("biggest")?.reduce_axis(&a, 1)?;
    /// assert_eq!(rows.to_scalars(), vec![kiln::Scalar::I64(9), kiln::Scalar::I64(8)]);
    /// # Ok::<(), kiln::Error>(())
    /// ```
    pub fn reduce_axis<'a>(
        &self,
        x: impl Into<DynView<'a>>,
        axis: usize,
    ) -> Result<DynArray, Error> {
        let x = x.into();
        let (combine, identity) = self.kernels(x.dtype())?;
        kiln_runtime::reduce_axis(
            self.module.jit.exec.as_ref(),
            self.module.module(),
            combine,
            identity,
            &x,
            axis,
            &self.module.jit.threads,
        )
        .map_err(|e| self.module.runtime_error(e))
    }

    /// Applies `map` (a ufunc with one output) to `args` and reduces its results in one
    /// pass, without materialising them: `sum(x * x)` as `add.map_reduce(sq, [x])`.
    pub fn map_reduce(&self, map: &Ufunc, args: &[Arg]) -> Result<Scalar, Error> {
        let dtypes = arg_dtypes(args, &[])?;
        let (map_id, _) = self.module.resolve(&map.name, &dtypes)?;
        let m = self.module.module();
        let out = m.kernel(map_id).results.clone();
        let [acc] = out.as_slice() else {
            return Err(Error::Usage(format!(
                "`{}` must have exactly one output to be reduced",
                map.name
            )));
        };
        let (combine, identity) = self.kernels(*acc).map_err(|_| {
            Error::Usage(format!(
                "`{}` gives {acc}, which the reduction `{}` cannot combine",
                map.name, self.name
            ))
        })?;
        kiln_runtime::reduce_all(
            self.module.jit.exec.as_ref(),
            m,
            combine,
            identity,
            Some(map_id),
            args,
            &self.module.jit.threads,
        )
        .map_err(|e| self.module.runtime_error(e))
    }
}

/// Device arrays through the same handles: the GPU of a [`Jit::gpu`] computes on arrays that
/// stay in its memory.
#[cfg(feature = "gpu")]
mod device {
    use kiln_runtime::gpu::{DeviceArg, DeviceArray, Gpu, GpuError};

    use super::*;

    impl JitModule {
        fn gpu(&self) -> Result<Gpu, Error> {
            self.jit.gpu_device().ok_or_else(|| {
                Error::Usage("device arrays need a `Jit::gpu()` (this Jit runs on the CPU)".into())
            })
        }

        fn gpu_error(&self, e: GpuError, shape: &[usize]) -> Error {
            match e {
                GpuError::Kernel { error, index } => {
                    // The flat index as an index into the call's shape.
                    let mut rest = index;
                    let mut idx = vec![0; shape.len()];
                    for (d, &len) in shape.iter().enumerate().rev() {
                        if len > 0 {
                            idx[d] = rest % len;
                            rest /= len;
                        }
                    }
                    Error::Element {
                        error,
                        file: Some(self.compiled.name.clone()),
                        index: idx,
                    }
                }
                other => Error::Usage(other.to_string()),
            }
        }
    }

    impl Ufunc<'_> {
        /// Applies the ufunc on the GPU to device arrays of one shape and scalars, without
        /// copies; one new device array per output. The specialisation comes from the
        /// arguments' dtypes, as for [`Ufunc::call`].
        pub fn call_device(&self, args: &[DeviceArg]) -> Result<Vec<DeviceArray>, Error> {
            let gpu = self.module.gpu()?;
            let dtypes: Vec<ScalarType> = args
                .iter()
                .map(|a| match a {
                    DeviceArg::Array(d) => d.dtype(),
                    DeviceArg::Scalar(s) => s.ty(),
                })
                .collect();
            let shape = args
                .iter()
                .find_map(|a| match a {
                    DeviceArg::Array(d) => Some(d.shape().to_vec()),
                    DeviceArg::Scalar(_) => None,
                })
                .unwrap_or_default();
            let (id, _) = self.module.resolve(&self.name, &dtypes)?;
            gpu.map(self.module.module(), id, args)
                .map_err(|e| self.module.gpu_error(e, &shape))
        }
    }

    impl Reduction<'_> {
        /// Reduces a device array on the GPU in the device's fast order (a block tree fixed
        /// by the length: deterministic; float sums differ from the CPU's in the last bits,
        /// see `docs/gpu.md`).
        pub fn reduce_device(&self, x: &DeviceArray) -> Result<Scalar, Error> {
            let gpu = self.module.gpu()?;
            let (combine, identity) = self.kernels(x.dtype())?;
            let m = self.module.module();
            let acc = self
                .module
                .jit
                .exec
                .call(m, identity, &[])
                .map_err(|error| Error::Runtime {
                    error,
                    file: Some(self.module.compiled.name.clone()),
                })?[0];
            gpu.reduce(m, None, combine, acc, &[x])
                .map_err(|e| self.module.gpu_error(e, x.shape()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<JitModule>();
        check::<Jit>();
    }
}
