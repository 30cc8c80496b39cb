//! Kernels on an NVIDIA GPU: PTX from `kiln-nvptx`, loaded and launched through the CUDA
//! driver API (cudarc, which loads `libcuda` at run time: nothing CUDA is needed to build).
//!
//! - [`Gpu`] is a device (context created on first use of [`Gpu::new`], once per process and
//!   device) with a module cache in memory and on disk (PTX under the user's cache
//!   directory, keyed by the kernel's IR, the entry, the architecture and the driver
//!   version); the driver keeps its own cache of the machine code it JIT-compiles from PTX.
//! - [`Gpu`] is an [`Executor`], so `kiln::Jit` runs ufuncs and reductions on host arrays
//!   through the same API as on the CPU: inputs move to the device in chunks of at most
//!   [`Gpu::chunk_elements`] (so arrays larger than device memory work), on two streams with
//!   pinned staging buffers, so that copying one chunk overlaps computing the other.
//!   Reductions there use the CPU's order (8 lanes, fixed tree), so results match the CPU
//!   bit for bit.
//! - [`DeviceArray`]s stay on the device: [`Gpu::map`] and [`Gpu::reduce`] run on them
//!   without copies; the reduction there is the fast block tree (deterministic, but its
//!   float results differ from the CPU's in the last bits: see `docs/gpu.md`).
//!
//! Nothing here panics on a missing driver, a missing device or a full device: every such
//! case is a [`GpuError`] that says which.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DriverError,
    LaunchConfig, PushKernelArg,
};
use kiln_interp::{ErrorKind, RuntimeError};
use kiln_ir::{KernelId, Module, Scalar, ScalarType};
use kiln_nvptx::host::decode_error;
use kiln_nvptx::{Arch, Entry, Site, BLOCK};

use crate::array::element_bytes as elem_size;
use crate::array::{DynArray, DynView};
use crate::{Executor, InnerLoop, ReduceLoop};

/// Why the GPU cannot be used, or what it failed to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// `libcuda` (the NVIDIA driver) is not installed.
    #[error("no NVIDIA driver: libcuda.so could not be loaded (install the NVIDIA driver, or use the CPU back end)")]
    NoDriver,
    /// The driver sees no device (or not the one asked for).
    #[error("no CUDA device {0} (the driver reports {1} device(s))")]
    NoDevice(usize, usize),
    /// Device memory ran out.
    #[error("out of GPU memory: {0}")]
    OutOfMemory(String),
    /// Any other driver failure.
    #[error("CUDA driver error: {0}")]
    Driver(String),
    /// The GPU back end could not compile a kernel (a Kiln bug or limit).
    #[error("{0}")]
    Compile(String),
    /// Arrays that do not fit the call (shapes, dtypes, counts).
    #[error("{0}")]
    Usage(String),
    /// A kernel failed at element `index` (flat) of the call.
    #[error("{error} at element {index}")]
    Kernel {
        /// What failed.
        error: RuntimeError,
        /// The flat index of the failing element.
        index: usize,
    },
}

/// The bytes of a `dtype` array of `shape`, or an error if that overflows.
fn device_bytes(dtype: ScalarType, shape: &[usize]) -> Result<usize, GpuError> {
    shape
        .iter()
        .try_fold(elem_size(dtype), |n, &d| n.checked_mul(d))
        .ok_or_else(|| GpuError::Usage(format!("a device array of shape {shape:?} is too large")))
}

/// Copies `src` back to a fresh host vector and waits for the copy. cudarc's `clone_dtoh`
/// only enqueues an asynchronous copy into pageable memory, which CUDA documents as
/// synchronous in most cases, not all: reading the vector before the stream is synchronised
/// could see it unwritten.
fn read_back<T: cudarc::driver::DeviceRepr>(
    stream: &Arc<CudaStream>,
    src: &CudaSlice<T>,
) -> Result<Vec<T>, GpuError> {
    let v = stream.clone_dtoh(src).map_err(driver)?;
    stream.synchronize().map_err(driver)?;
    Ok(v)
}

fn driver(e: DriverError) -> GpuError {
    let text = e.to_string();
    if text.contains("OUT_OF_MEMORY") {
        GpuError::OutOfMemory(text)
    } else {
        GpuError::Driver(text)
    }
}

impl GpuError {
    /// As a runtime error of `kernel` (executors report those).
    fn runtime(&self, kernel: &str) -> RuntimeError {
        match self {
            GpuError::Kernel { error, .. } => error.clone(),
            GpuError::OutOfMemory(_) => RuntimeError {
                kind: ErrorKind::OutOfDeviceMemory,
                kernel: kernel.to_string(),
                loc: None,
            },
            GpuError::Compile(_) => internal(kernel),
            _ => RuntimeError {
                kind: ErrorKind::Device,
                kernel: kernel.to_string(),
                loc: None,
            },
        }
    }
}

/// The cache key of `entry` for `m`.
pub(crate) fn entry_key(m: &Module, entry: Entry) -> Vec<u64> {
    let mut key = Vec::with_capacity(256);
    match entry {
        Entry::Call { kernel } => {
            key.push(0);
            kiln_ir::key::encode(m, &[kernel], &mut key);
        }
        Entry::Map { kernel, uniform } => {
            key.extend([1, uniform]);
            kiln_ir::key::encode(m, &[kernel], &mut key);
        }
        Entry::Reduce {
            map,
            combine,
            width,
        } => {
            key.extend([2, width as u64, map.is_some() as u64]);
            let roots: Vec<KernelId> = map.into_iter().chain([combine]).collect();
            kiln_ir::key::encode(m, &roots, &mut key);
        }
    }
    key
}

pub(crate) fn internal(kernel: &str) -> RuntimeError {
    RuntimeError {
        kind: ErrorKind::Internal,
        kernel: kernel.to_string(),
        loc: None,
    }
}

/// Lanes of the reduction order that matches the CPU's (`kiln_ir::reduce`): 8 for a
/// commutative combine over at least 8 elements, else 1 (in order).
pub fn exact_lanes(m: &Module, combine: KernelId, n: usize) -> u64 {
    if n >= kiln_ir::REDUCE_LANES && kiln_ir::commutative_combine(m.kernel(combine)).is_some() {
        kiln_ir::REDUCE_LANES as u64
    } else {
        1
    }
}

/// Whether the NVIDIA driver library can be loaded (checked before any cudarc call, which
/// would panic without it).
pub fn driver_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to open the library.
    *PRESENT.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() })
}

/// A loaded entry: its module and functions, and how to read its errors.
struct Loaded {
    _module: Arc<CudaModule>,
    functions: Vec<CudaFunction>,
    sites: Vec<Site>,
    width: u32,
}

/// A CUDA device and Kiln's modules loaded on it. Cheap to clone.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<CudaContext>,
    streams: [Arc<CudaStream>; 2],
    arch: Arch,
    name: String,
    driver_version: i32,
    cache: Mutex<HashMap<Vec<u64>, Arc<Loaded>>>,
    /// One launch sequence at a time (executor calls may come from several threads).
    busy: Mutex<()>,
    chunk: usize,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("device", &self.inner.name)
            .field("arch", &self.inner.arch)
            .finish_non_exhaustive()
    }
}

/// Elements per chunk of a host-array call (per operand), unless `KILN_GPU_CHUNK` says
/// otherwise: 2^22 (32 MiB of f64), which keeps a chunk's transfers (~1 ms over PCIe) far
/// above the ~10 µs a copy costs to start, and its pinned and device buffers (two sets)
/// at a few hundred MiB for the widest kernels.
const DEFAULT_CHUNK: usize = 1 << 22;

impl Gpu {
    /// Device `KILN_GPU_DEVICE` (default 0).
    pub fn new() -> Result<Gpu, GpuError> {
        let ordinal = std::env::var("KILN_GPU_DEVICE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Gpu::with_device(ordinal)
    }

    /// Device `ordinal`. Creating the context takes a few hundred milliseconds, once.
    pub fn with_device(ordinal: usize) -> Result<Gpu, GpuError> {
        if !driver_present() {
            return Err(GpuError::NoDriver);
        }
        // A driver with no device fails `cuInit` itself with CUDA_ERROR_NO_DEVICE.
        let count = match CudaContext::device_count() {
            Ok(n) => n as usize,
            Err(e) if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_NO_DEVICE => 0,
            Err(e) => return Err(driver(e)),
        };
        if ordinal >= count {
            return Err(GpuError::NoDevice(ordinal, count));
        }
        let ctx = CudaContext::new(ordinal).map_err(driver)?;
        // Kiln orders its own work (each call ends with a synchronisation).
        // SAFETY: no allocation exists yet.
        unsafe { ctx.disable_event_tracking() };
        let (major, minor) = ctx.compute_capability().map_err(driver)?;
        let name = ctx.name().map_err(driver)?;
        let mut driver_version = 0i32;
        // SAFETY: writes one int; the library is present (checked above).
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut driver_version) }
            .result()
            .map_err(driver)?;
        let streams = [
            ctx.new_stream().map_err(driver)?,
            ctx.new_stream().map_err(driver)?,
        ];
        let chunk = std::env::var("KILN_GPU_CHUNK")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&c: &usize| c > 0)
            .unwrap_or(DEFAULT_CHUNK);
        Ok(Gpu {
            inner: Arc::new(Inner {
                ctx,
                streams,
                arch: Arch::for_device(major as u32, minor as u32),
                name,
                driver_version,
                cache: Mutex::new(HashMap::new()),
                busy: Mutex::new(()),
                chunk,
            }),
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The architecture PTX is compiled for.
    pub fn arch(&self) -> Arch {
        self.inner.arch
    }

    /// Elements per chunk of a host-array call.
    pub fn chunk_elements(&self) -> usize {
        self.inner.chunk
    }

    /// Compiles (or finds in the caches) and loads `entry`.
    fn load(&self, m: &Module, entry: Entry) -> Result<Arc<Loaded>, GpuError> {
        let mut key = entry_key(m, entry);
        key.extend([
            self.inner.arch.major as u64,
            self.inner.arch.minor as u64,
            self.inner.driver_version as u64,
            u64::from_str_radix(kiln_nvptx::CODEGEN_FINGERPRINT, 16).unwrap_or(0),
        ]);
        // The pass pipeline (`KILN_LLVM_PASSES`) changes the PTX, so its bytes join the key.
        key.extend(kiln_nvptx::llvm_passes().bytes().map(u64::from));
        if let Some(l) = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(l.clone());
        }
        let (ptx, sites, width) = match disk_cache::load(&key) {
            Some(hit) => hit,
            None => {
                let p = kiln_nvptx::compile(m, entry, self.inner.arch)
                    .map_err(|e| GpuError::Compile(e.to_string()))?;
                disk_cache::store(&key, &p.text, &p.sites, p.width);
                (p.text, p.sites, p.width)
            }
        };
        let module = self
            .inner
            .ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(driver)?;
        let names: &[&str] = match entry {
            Entry::Call { .. } => &["kiln_call"],
            Entry::Map { .. } => &["kiln_map"],
            Entry::Reduce { .. } => &["kiln_reduce", "kiln_reduce_final"],
        };
        let functions = names
            .iter()
            .map(|n| module.load_function(n).map_err(driver))
            .collect::<Result<Vec<_>, _>>()?;
        let loaded = Arc::new(Loaded {
            _module: module,
            functions,
            sites,
            width,
        });
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, loaded.clone());
        Ok(loaded)
    }

    fn alloc(&self, stream: &Arc<CudaStream>, bytes: usize) -> Result<CudaSlice<u8>, GpuError> {
        // SAFETY: bytes are plain data; every buffer is written before it is read.
        unsafe { stream.alloc::<u8>(bytes.max(1)) }.map_err(driver)
    }

    /// Copies a host array to the device (contiguous, row-major).
    pub fn to_device<'a>(&self, a: impl Into<DynView<'a>>) -> Result<DeviceArray, GpuError> {
        let a: DynView = a.into();
        let dtype = a.dtype();
        let shape = a.shape().to_vec();
        let bytes = a.to_owned().to_le_bytes();
        let stream = &self.inner.streams[0];
        let mut buf = self.alloc(stream, bytes.len())?;
        stream.memcpy_htod(&bytes, &mut buf).map_err(driver)?;
        stream.synchronize().map_err(driver)?;
        Ok(DeviceArray {
            gpu: self.clone(),
            buf,
            dtype,
            shape,
        })
    }

    /// A device array of zeros.
    pub fn zeros(&self, dtype: ScalarType, shape: &[usize]) -> Result<DeviceArray, GpuError> {
        let bytes = device_bytes(dtype, shape)?;
        let stream = &self.inner.streams[0];
        let buf = stream.alloc_zeros::<u8>(bytes.max(1)).map_err(driver)?;
        Ok(DeviceArray {
            gpu: self.clone(),
            buf,
            dtype,
            shape: shape.to_vec(),
        })
    }

    /// A device array whose elements the caller writes before anyone reads them (a fresh
    /// output: zero-filling it first would only cost a pass over device memory).
    fn uninit(&self, dtype: ScalarType, shape: &[usize]) -> Result<DeviceArray, GpuError> {
        let bytes = device_bytes(dtype, shape)?;
        let buf = self.alloc(&self.inner.streams[0], bytes)?;
        Ok(DeviceArray {
            gpu: self.clone(),
            buf,
            dtype,
            shape: shape.to_vec(),
        })
    }

    /// Applies ufunc kernel `id` of `m` (verified, optimised) to device arrays of one shape
    /// and scalars (broadcast); returns one new device array per result.
    pub fn map(
        &self,
        m: &Module,
        id: KernelId,
        args: &[DeviceArg],
    ) -> Result<Vec<DeviceArray>, GpuError> {
        let shape = call_shape(m, id, args)?;
        let mut outs = m
            .kernel(id)
            .results
            .iter()
            .map(|&t| self.uninit(t, &shape))
            .collect::<Result<Vec<_>, _>>()?;
        let mut refs: Vec<&mut DeviceArray> = outs.iter_mut().collect();
        // Every element is written, or the call fails and the outputs are dropped unread.
        self.map_into(m, id, args, &mut refs)?;
        Ok(outs)
    }

    /// As [`Gpu::map`], into existing device arrays (one per result, of the call's shape
    /// and the results' dtypes).
    pub fn map_into(
        &self,
        m: &Module,
        id: KernelId,
        args: &[DeviceArg],
        outs: &mut [&mut DeviceArray],
    ) -> Result<(), GpuError> {
        let k = m.kernel(id);
        let shape = call_shape(m, id, args)?;
        if outs.len() != k.results.len()
            || outs
                .iter()
                .zip(&k.results)
                .any(|(o, &t)| o.dtype != t || o.shape != shape)
        {
            return Err(GpuError::Usage(format!(
                "`{}` writes {} array(s) of dtypes {:?} and shape {shape:?}",
                k.name,
                k.results.len(),
                k.results
            )));
        }
        let n: usize = shape.iter().product();
        if n == 0 {
            return Ok(());
        }
        let uniform = args
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, DeviceArg::Scalar(_)))
            .fold(0u64, |u, (j, _)| u | 1 << j);
        let loaded = self.load(
            m,
            Entry::Map {
                kernel: id,
                uniform,
            },
        )?;
        let stream = &self.inner.streams[0];
        let _busy = self.inner.busy.lock().unwrap_or_else(|p| p.into_inner());
        // Scalars travel as one-element buffers read once (stride 0).
        let mut scalars = Vec::new();
        for a in args {
            if let DeviceArg::Scalar(s) = a {
                scalars.push(stream.clone_htod(&[s.to_bits()]).map_err(driver)?);
            }
        }
        let mut ptrs = Vec::new();
        let mut strides = Vec::new();
        let mut si = scalars.iter();
        for a in args {
            match a {
                DeviceArg::Array(d) => {
                    ptrs.push(raw(&d.buf, stream));
                    strides.push(1i64);
                }
                DeviceArg::Scalar(_) => {
                    ptrs.push(raw(si.next().expect("one buffer per scalar"), stream));
                    strides.push(0);
                }
            }
        }
        for o in outs.iter() {
            ptrs.push(raw(&o.buf, stream));
            strides.push(1);
        }
        let err = self.launch_map(&loaded, stream, &ptrs, &strides, n)?;
        stream.synchronize().map_err(driver)?;
        let word = read_back(stream, &err)?[0];
        check_word(&loaded, word, &k.name)
    }

    /// Copies `src` into `dst` on the device (same dtype and length): the benchmark's
    /// yardstick for what a memory-bound kernel can reach.
    pub fn copy(&self, src: &DeviceArray, dst: &mut DeviceArray) -> Result<(), GpuError> {
        if src.dtype != dst.dtype || src.len() != dst.len() {
            return Err(GpuError::Usage(
                "copy between device arrays of different dtypes or lengths".into(),
            ));
        }
        let stream = &self.inner.streams[0];
        let _busy = self.inner.busy.lock().unwrap_or_else(|p| p.into_inner());
        stream.memcpy_dtod(&src.buf, &mut dst.buf).map_err(driver)?;
        stream.synchronize().map_err(driver)
    }

    /// Reduces device arrays (one input, or the inputs of `map`) with `combine`, starting
    /// from `acc` (the identity): the fast order (every block of the grid folds 16-byte
    /// groups, then the block tree; deterministic for a given `n`).
    pub fn reduce(
        &self,
        m: &Module,
        map: Option<KernelId>,
        combine: KernelId,
        acc: Scalar,
        inputs: &[&DeviceArray],
    ) -> Result<Scalar, GpuError> {
        let types = kiln_nvptx::reduce_inputs(m, map, combine);
        if inputs.len() != types.len()
            || inputs.iter().zip(&types).any(|(d, &t)| d.dtype != t)
            || inputs.windows(2).any(|w| w[0].shape != w[1].shape)
        {
            return Err(GpuError::Usage(format!(
                "the reduction takes {} array(s) of dtypes {types:?} and one shape",
                types.len()
            )));
        }
        let n = inputs.first().map_or(0, |d| d.len());
        let width = kiln_nvptx::vector_width(&types);
        let named = &m.kernel(map.unwrap_or(combine)).name;
        let loaded = self.load(
            m,
            Entry::Reduce {
                map,
                combine,
                width,
            },
        )?;
        let stream = &self.inner.streams[0];
        let _busy = self.inner.busy.lock().unwrap_or_else(|p| p.into_inner());
        let ptrs: Vec<u64> = inputs.iter().map(|d| raw(&d.buf, stream)).collect();
        let strides = vec![1i64; inputs.len()];
        // Enough blocks to fill the device several times over; fixed by `n` alone, so the
        // result does not depend on the device.
        let per_block = (BLOCK as usize) * width as usize * 8;
        let grid = n.div_ceil(per_block).clamp(1, 1024);
        let (value, word) =
            self.launch_reduce(&loaded, stream, acc, 0, grid, &ptrs, &strides, n)?;
        check_word(&loaded, word, named)?;
        // The block tree folds with the bare operator where the combine allows it
        // (`kiln_ir::commutative_combine`): its NaN is made canonical here.
        Ok(value.canonical_nan())
    }

    fn launch_map(
        &self,
        loaded: &Loaded,
        stream: &Arc<CudaStream>,
        ptrs: &[u64],
        strides: &[i64],
        n: usize,
    ) -> Result<CudaSlice<u64>, GpuError> {
        let err = stream.clone_htod(&[u64::MAX]).map_err(driver)?;
        let err_ptr = raw(&err, stream);
        let groups = n.div_ceil(loaded.width as usize);
        // One group per thread up to 2^16 blocks, then the grid-stride loop.
        let grid = groups.div_ceil(BLOCK as usize).clamp(1, 1 << 16) as u32;
        let n64 = n as u64;
        let mut b = stream.launch_builder(&loaded.functions[0]);
        push_operands(&mut b, ptrs, strides, &n64, &err_ptr);
        let cfg = LaunchConfig {
            grid_dim: (grid, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the argument list is `kiln_map`'s (pointers, element strides, n, error
        // word); every pointer addresses `n` elements (or one, for stride 0).
        unsafe { b.launch(cfg) }.map_err(driver)?;
        Ok(err)
    }

    #[allow(clippy::too_many_arguments)]
    fn launch_reduce(
        &self,
        loaded: &Loaded,
        stream: &Arc<CudaStream>,
        acc: Scalar,
        lanes: u64,
        grid: usize,
        ptrs: &[u64],
        strides: &[i64],
        n: usize,
    ) -> Result<(Scalar, u64), GpuError> {
        let err = stream.clone_htod(&[u64::MAX]).map_err(driver)?;
        let result = stream.clone_htod(&[acc.to_bits()]).map_err(driver)?;
        let size = elem_size(acc.ty());
        let pvals = self.alloc(stream, grid * size)?;
        let poks = self.alloc(stream, grid)?;
        let (err_ptr, res_ptr) = (raw(&err, stream), raw(&result, stream));
        let (pv, po) = (raw(&pvals, stream), raw(&poks, stream));
        let n64 = n as u64;
        let mut b = stream.launch_builder(&loaded.functions[0]);
        push_operands(&mut b, ptrs, strides, &n64, &err_ptr);
        b.arg(&lanes);
        b.arg(&pv);
        b.arg(&po);
        let cfg = LaunchConfig {
            grid_dim: (grid as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `kiln_reduce`'s argument list; the partial buffers hold `grid` entries.
        unsafe { b.launch(cfg) }.map_err(driver)?;
        let count = grid as u64;
        let mut f = stream.launch_builder(&loaded.functions[1]);
        f.arg(&pv);
        f.arg(&po);
        f.arg(&count);
        f.arg(&res_ptr);
        f.arg(&err_ptr);
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `kiln_reduce_final`'s argument list, on the partials just written.
        unsafe { f.launch(one) }.map_err(driver)?;
        let word = read_back(stream, &err)?[0];
        let value = read_back(stream, &result)?[0];
        Ok((Scalar::from_bits(acc.ty(), value), word))
    }

    /// Runs a map over host operands in chunks: pack a chunk into pinned memory, copy it to
    /// the device, launch, copy the results back, unpack — chunk `c` on stream `c % 2`, so
    /// one chunk's copies overlap the other's kernel.
    ///
    /// # Safety
    /// As [`InnerLoop::run`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn map_host(
        &self,
        loaded: &Loaded,
        types: &[ScalarType],
        inputs: usize,
        uniform: u64,
        n: usize,
        ptrs: &[*mut u8],
        strides: &[isize],
    ) -> Result<Option<(usize, u32)>, GpuError> {
        let _busy = self.inner.busy.lock().unwrap_or_else(|p| p.into_inner());
        let chunk = self.inner.chunk.min(n).max(1);
        let sizes: Vec<usize> = types.iter().map(|&t| elem_size(t)).collect();
        let varying = |j: usize| j >= inputs || uniform & (1 << j) == 0;
        // Per stream: a device buffer and a pinned staging buffer per operand.
        struct Lane {
            dev: Vec<CudaSlice<u8>>,
            pinned: Vec<cudarc::driver::PinnedHostSlice<u8>>,
            pending: Option<(usize, usize, CudaSlice<u64>)>,
        }
        let mut lanes = Vec::new();
        // A second lane only when there is a second chunk to overlap with.
        let used = if n > chunk { 2 } else { 1 };
        for stream in &self.inner.streams[..used] {
            let mut dev = Vec::new();
            let mut pinned = Vec::new();
            for (j, &s) in sizes.iter().enumerate() {
                let elems = if varying(j) { chunk } else { 1 };
                dev.push(self.alloc(stream, elems * s)?);
                // Inputs are only written by the host: write-combined memory suits them;
                // outputs are read back, which write-combined memory makes very slow.
                let flags = if j < inputs {
                    cudarc::driver::sys::CU_MEMHOSTALLOC_WRITECOMBINED
                } else {
                    0
                };
                // SAFETY: plain bytes, written before they are read.
                let p = unsafe {
                    self.inner
                        .ctx
                        .alloc_pinned_with_flags::<u8>(elems * s, flags)
                };
                pinned.push(p.map_err(driver)?);
            }
            lanes.push(Lane {
                dev,
                pinned,
                pending: None,
            });
        }
        // However this function ends — an error from `?` included — no stream may still be
        // copying from or into the pinned buffers when `lanes` frees them: wait for both.
        // (Declared after `lanes`, so it is dropped first.)
        struct WaitOnDrop<'a>(&'a [Arc<CudaStream>]);
        impl Drop for WaitOnDrop<'_> {
            fn drop(&mut self) {
                for s in self.0 {
                    // Nothing to do about a failure here: the call already has its error.
                    let _ = s.synchronize();
                }
            }
        }
        let _wait = WaitOnDrop(&self.inner.streams[..used]);
        // Finishes the chunk in flight on lane `l`: waits, unpacks outputs, reads errors.
        let finish =
            |lane: &mut Lane, stream: &Arc<CudaStream>| -> Result<Option<(usize, u32)>, GpuError> {
                let Some((start, len, err)) = lane.pending.take() else {
                    return Ok(None);
                };
                stream.synchronize().map_err(driver)?;
                for j in inputs..types.len() {
                    let src = lane.pinned[j].as_slice().map_err(driver)?;
                    let s = sizes[j];
                    if strides[j] == s as isize {
                        // Contiguous: one copy for the chunk.
                        // SAFETY: output `j` elements `start..start + len` are inside the
                        // caller's array, one after the other.
                        unsafe {
                            let dst = ptrs[j].offset(start as isize * strides[j]);
                            std::ptr::copy_nonoverlapping(src.as_ptr(), dst, len * s);
                        }
                        continue;
                    }
                    for i in 0..len {
                        // SAFETY: output `j` element `start + i` is inside the caller's array.
                        unsafe {
                            let dst = ptrs[j].offset((start + i) as isize * strides[j]);
                            std::ptr::copy_nonoverlapping(src.as_ptr().add(i * s), dst, s);
                        }
                    }
                }
                let word = read_back(stream, &err)?[0];
                Ok(decode_error(word).map(|(i, st)| (start + i as usize, st)))
            };
        let mut first_error: Option<(usize, u32)> = None;
        let mut start = 0;
        let mut c = 0;
        while start < n && first_error.is_none() {
            let l = c % used;
            let stream = &self.inner.streams[l];
            if let Some(e) = finish(&mut lanes[l], stream)? {
                first_error = Some(e);
                break;
            }
            let len = chunk.min(n - start);
            let lane = &mut lanes[l];
            for j in 0..types.len() {
                if j >= inputs {
                    continue;
                }
                let s = sizes[j];
                let count = if varying(j) { len } else { 1 };
                let dst = lane.pinned[j].as_mut_slice().map_err(driver)?;
                if count > 1 && strides[j] == s as isize {
                    // Contiguous: one copy for the chunk.
                    // SAFETY: input `j` elements `start..start + count` are inside the
                    // caller's array, one after the other.
                    unsafe {
                        let src = ptrs[j].offset(start as isize * strides[j]);
                        std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), count * s);
                    }
                } else {
                    for i in 0..count {
                        // SAFETY: input `j` element `start + i` is inside the caller's array.
                        unsafe {
                            let src = ptrs[j].offset((start + i) as isize * strides[j]);
                            std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr().add(i * s), s);
                        }
                    }
                }
                let (pin, dev) = (&lane.pinned[j], &mut lane.dev[j]);
                let bytes = count * s;
                let src = pin.as_slice().map_err(driver)?;
                stream
                    .memcpy_htod(&src[..bytes], &mut dev.slice_mut(..bytes))
                    .map_err(driver)?;
            }
            let dptrs: Vec<u64> = lane.dev.iter().map(|d| raw(d, stream)).collect();
            let dstrides: Vec<i64> = (0..types.len()).map(|j| varying(j) as i64).collect();
            let err = self.launch_map(loaded, stream, &dptrs, &dstrides, len)?;
            let outputs = lane
                .dev
                .iter()
                .zip(&mut lane.pinned)
                .zip(&sizes)
                .skip(inputs);
            for ((dev, pin), &size) in outputs {
                let bytes = len * size;
                let dst = pin.as_mut_slice().map_err(driver)?;
                stream
                    .memcpy_dtoh(&dev.slice(..bytes), &mut dst[..bytes])
                    .map_err(driver)?;
            }
            lane.pending = Some((start, len, err));
            start += len;
            c += 1;
        }
        for (l, lane) in lanes.iter_mut().enumerate() {
            if let Some(e) = finish(lane, &self.inner.streams[l])? {
                first_error = Some(first_error.map_or(e, |f: (usize, u32)| f.min(e)));
            }
        }
        Ok(first_error)
    }
}

/// The shape of a device call of kernel `id` with `args` (device arrays of one shape and
/// scalars of the parameters' dtypes).
fn call_shape(m: &Module, id: KernelId, args: &[DeviceArg]) -> Result<Vec<usize>, GpuError> {
    let k = m.kernel(id);
    if args.len() != k.params.len() {
        return Err(GpuError::Usage(format!(
            "`{}` takes {} arguments, got {}",
            k.name,
            k.params.len(),
            args.len()
        )));
    }
    let mut shape: Option<&[usize]> = None;
    for (j, (a, &t)) in args.iter().zip(&k.params).enumerate() {
        let (dt, sh) = match a {
            DeviceArg::Array(d) => (d.dtype, Some(&d.shape[..])),
            DeviceArg::Scalar(s) => (s.ty(), None),
        };
        if dt != t {
            return Err(GpuError::Usage(format!(
                "argument {} of `{}` is {dt}, the kernel wants {t}",
                j + 1,
                k.name
            )));
        }
        match (shape, sh) {
            (Some(s), Some(sh)) if s != sh => {
                return Err(GpuError::Usage(format!(
                    "device arrays of shapes {s:?} and {sh:?}: device calls take arrays of one \
                     shape (and scalars)"
                )))
            }
            (None, Some(sh)) => shape = Some(sh),
            _ => {}
        }
    }
    Ok(shape.map_or_else(Vec::new, <[usize]>::to_vec))
}

/// The operand arguments every map and reduction kernel starts with (see
/// `kiln_nvptx::entries`): pointers, element strides, `n`, the error word.
fn push_operands<'a>(
    b: &mut cudarc::driver::LaunchArgs<'a>,
    ptrs: &'a [u64],
    strides: &'a [i64],
    n: &'a u64,
    err: &'a u64,
) {
    for p in ptrs {
        b.arg(p);
    }
    for s in strides {
        b.arg(s);
    }
    b.arg(n);
    b.arg(err);
}

/// The raw device address of `buf` (Kiln orders its own work: no event tracking).
fn raw<T>(buf: &CudaSlice<T>, stream: &Arc<CudaStream>) -> u64 {
    let (p, _sync) = buf.device_ptr(stream);
    p
}

/// The error word of a launch as a [`GpuError`].
fn check_word(loaded: &Loaded, word: u64, kernel: &str) -> Result<(), GpuError> {
    match decode_error(word) {
        None => Ok(()),
        Some((i, st)) => Err(GpuError::Kernel {
            error: Site::error(&loaded.sites, st, kernel),
            index: i as usize,
        }),
    }
}

/// An argument of a device call.
#[derive(Clone, Copy, Debug)]
pub enum DeviceArg<'a> {
    /// A device array.
    Array(&'a DeviceArray),
    /// A scalar, broadcast.
    Scalar(Scalar),
}

/// An array in device memory: contiguous, row-major.
pub struct DeviceArray {
    gpu: Gpu,
    buf: CudaSlice<u8>,
    dtype: ScalarType,
    shape: Vec<usize>,
}

impl std::fmt::Debug for DeviceArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceArray")
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl DeviceArray {
    /// Element type.
    pub fn dtype(&self) -> ScalarType {
        self.dtype
    }

    /// Shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies it to the host.
    pub fn to_host(&self) -> Result<DynArray, GpuError> {
        let stream = &self.gpu.inner.streams[0];
        let bytes = read_back(stream, &self.buf)?;
        let n = self.len();
        DynArray::from_le_bytes(self.dtype, &self.shape, &bytes[..n * elem_size(self.dtype)])
            .ok_or_else(|| GpuError::Usage("device array of the wrong size".into()))
    }
}

struct GpuMap<'g> {
    gpu: &'g Gpu,
    loaded: Arc<Loaded>,
    types: Vec<ScalarType>,
    inputs: usize,
    uniform: u64,
    kernel: String,
}

impl InnerLoop for GpuMap<'_> {
    unsafe fn run(
        &self,
        n: usize,
        ptrs: &[*mut u8],
        strides: &[isize],
    ) -> Result<(), (usize, RuntimeError)> {
        if n == 0 {
            return Ok(());
        }
        // SAFETY: the caller's contract.
        let r = unsafe {
            self.gpu.map_host(
                &self.loaded,
                &self.types,
                self.inputs,
                self.uniform,
                n,
                ptrs,
                strides,
            )
        };
        match r {
            Ok(None) => Ok(()),
            Ok(Some((i, st))) => Err((i, Site::error(&self.loaded.sites, st, &self.kernel))),
            Err(e) => Err((0, e.runtime(&self.kernel))),
        }
    }
}

struct GpuReduce<'m> {
    gpu: &'m Gpu,
    m: &'m Module,
    combine: KernelId,
    loaded: Arc<Loaded>,
    types: Vec<ScalarType>,
    kernel: String,
}

impl ReduceLoop for GpuReduce<'_> {
    unsafe fn run(
        &self,
        acc: Scalar,
        n: usize,
        ptrs: &[*mut u8],
        strides: &[isize],
    ) -> Result<Scalar, (usize, RuntimeError)> {
        if n == 0 {
            return Ok(acc);
        }
        let run = || -> Result<(Scalar, u64), GpuError> {
            let gpu = self.gpu;
            let _busy = gpu.inner.busy.lock().unwrap_or_else(|p| p.into_inner());
            let stream = &gpu.inner.streams[0];
            // The runtime hands over runs of at most `REDUCE_BLOCK` elements: one copy each.
            let mut bufs = Vec::new();
            for (j, &t) in self.types.iter().enumerate() {
                let s = elem_size(t);
                let mut host = vec![0u8; n * s];
                for i in 0..n {
                    // SAFETY: input `j` element `i` is inside the caller's array.
                    unsafe {
                        let src = ptrs[j].offset(i as isize * strides[j]);
                        std::ptr::copy_nonoverlapping(src, host.as_mut_ptr().add(i * s), s);
                    }
                }
                bufs.push(stream.clone_htod(&host).map_err(driver)?);
            }
            let dptrs: Vec<u64> = bufs.iter().map(|b| raw(b, stream)).collect();
            let ones = vec![1i64; bufs.len()];
            let lanes = exact_lanes(self.m, self.combine, n);
            let out = gpu.launch_reduce(&self.loaded, stream, acc, lanes, 1, &dptrs, &ones, n)?;
            stream.synchronize().map_err(driver)?;
            Ok(out)
        };
        match run() {
            Ok((v, word)) => match decode_error(word) {
                None => Ok(v),
                Some((i, st)) => Err((
                    i as usize,
                    Site::error(&self.loaded.sites, st, &self.kernel),
                )),
            },
            Err(e) => Err((0, e.runtime(&self.kernel))),
        }
    }
}

impl Executor for Gpu {
    fn name(&self) -> &str {
        "gpu"
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn wants_optimized(&self) -> bool {
        true
    }

    fn call(&self, m: &Module, id: KernelId, args: &[Scalar]) -> Result<Vec<Scalar>, RuntimeError> {
        let k = m.kernel(id);
        let run = || -> Result<Vec<u64>, GpuError> {
            let loaded = self.load(m, Entry::Call { kernel: id })?;
            let _busy = self.inner.busy.lock().unwrap_or_else(|p| p.into_inner());
            let stream = &self.inner.streams[0];
            let mut slots: Vec<u64> = args.iter().map(|a| a.to_bits()).collect();
            slots.push(0); // never empty
            let a = stream.clone_htod(&slots).map_err(driver)?;
            let r = stream
                .alloc_zeros::<u64>(k.results.len().max(1))
                .map_err(driver)?;
            let st = stream.alloc_zeros::<i32>(1).map_err(driver)?;
            let (pa, pr, ps) = (raw(&a, stream), raw(&r, stream), raw(&st, stream));
            let mut b = stream.launch_builder(&loaded.functions[0]);
            b.arg(&pa);
            b.arg(&pr);
            b.arg(&ps);
            let one = LaunchConfig {
                grid_dim: (1, 1, 1),
                block_dim: (1, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: `kiln_call`'s arguments: one slot per parameter and per result.
            unsafe { b.launch(one) }.map_err(driver)?;
            let status = read_back(stream, &st)?[0];
            if status != 0 {
                return Err(GpuError::Kernel {
                    error: Site::error(&loaded.sites, status as u32, &k.name),
                    index: 0,
                });
            }
            read_back(stream, &r)
        };
        let out = run().map_err(|e| e.runtime(&k.name))?;
        Ok(k.results
            .iter()
            .zip(&out)
            .map(|(&t, &s)| Scalar::from_bits(t, s))
            .collect())
    }

    fn inner_loop<'m>(
        &'m self,
        m: &'m Module,
        id: KernelId,
        uniform: u64,
    ) -> Result<Arc<dyn InnerLoop + 'm>, RuntimeError> {
        let k = m.kernel(id);
        let loaded = self
            .load(
                m,
                Entry::Map {
                    kernel: id,
                    uniform,
                },
            )
            .map_err(|e| e.runtime(&k.name))?;
        Ok(Arc::new(GpuMap {
            gpu: self,
            loaded,
            types: k.params.iter().chain(&k.results).copied().collect(),
            inputs: k.params.len(),
            uniform,
            kernel: k.name.clone(),
        }))
    }

    fn reduce_loop<'m>(
        &'m self,
        m: &'m Module,
        map: Option<KernelId>,
        combine: KernelId,
    ) -> Result<Box<dyn ReduceLoop + 'm>, RuntimeError> {
        let named = map.unwrap_or(combine);
        let loaded = self
            .load(
                m,
                Entry::Reduce {
                    map,
                    combine,
                    width: 1,
                },
            )
            .map_err(|e| e.runtime(&m.kernel(named).name))?;
        let types = kiln_nvptx::reduce_inputs(m, map, combine);
        Ok(Box::new(GpuReduce {
            gpu: self,
            m,
            combine,
            loaded,
            types,
            kernel: m.kernel(named).name.clone(),
        }))
    }
}

/// PTX on disk, under `$XDG_CACHE_HOME/kiln/ptx` (or `~/.cache/kiln/ptx`), one file per key:
/// the PTX, then the sites and width in a trailer. Failures to read or write only mean a
/// cache miss. `KILN_CACHE_DIR` overrides the directory; `KILN_CACHE_DIR=` (empty) turns the
/// disk cache off.
mod disk_cache {
    use super::*;

    fn dir() -> Option<PathBuf> {
        if let Ok(d) = std::env::var("KILN_CACHE_DIR") {
            return (!d.is_empty()).then(|| PathBuf::from(d).join("ptx"));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("kiln").join("ptx"))
    }

    /// A file name for `key` in the cache directory.
    fn file(key: &[u64]) -> Option<PathBuf> {
        Some(dir()?.join(file_name(key)))
    }

    /// A file name for `key`: two independent 64-bit hashes, and the key's length.
    fn file_name(key: &[u64]) -> String {
        let h = |seed: u64| {
            key.iter().fold(seed, |h, &w| {
                (h ^ w).wrapping_mul(0x100_0000_01b3).rotate_left(29) ^ (h >> 7)
            })
        };
        format!(
            "{:016x}{:016x}-{}.ptx",
            h(0xcbf2_9ce4_8422_2325),
            h(0x9e37_79b9_7f4a_7c15),
            key.len()
        )
    }

    const TRAILER: &str = "\n// kiln:";

    fn encode_site(s: &Site) -> String {
        let kind = match s.kind {
            ErrorKind::DivisionByZero => 0,
            ErrorKind::RemainderByZero => 1,
            ErrorKind::AssertionFailed => 2,
            _ => 3,
        };
        match s.loc {
            Some(l) => format!("{kind}.{}.{}.{}", l.line, l.col, l.len),
            None => format!("{kind}"),
        }
    }

    fn decode_site(t: &str) -> Option<Site> {
        let mut parts = t.split('.');
        let kind = match parts.next()? {
            "0" => ErrorKind::DivisionByZero,
            "1" => ErrorKind::RemainderByZero,
            "2" => ErrorKind::AssertionFailed,
            _ => return None,
        };
        let nums: Vec<u32> = parts.map(|p| p.parse().ok()).collect::<Option<_>>()?;
        let loc = match nums[..] {
            [line, col, len] => Some(kiln_ir::SourceLoc { line, col, len }),
            [] => None,
            _ => return None,
        };
        Some(Site { kind, loc })
    }

    pub fn load(key: &[u64]) -> Option<(String, Vec<Site>, u32)> {
        load_at(&file(key)?)
    }

    fn load_at(path: &std::path::Path) -> Option<(String, Vec<Site>, u32)> {
        let text = std::fs::read_to_string(path).ok()?;
        let at = text.rfind(TRAILER)?;
        let mut fields = text[at + TRAILER.len()..].trim().split(' ');
        let width = fields.next()?.parse().ok()?;
        let sites = fields
            .filter(|f| !f.is_empty())
            .map(decode_site)
            .collect::<Option<Vec<_>>>()?;
        Some((text[..at].to_string(), sites, width))
    }

    pub fn store(key: &[u64], ptx: &str, sites: &[Site], width: u32) {
        if let Some(path) = file(key) {
            store_at(&path, ptx, sites, width);
        }
    }

    fn store_at(path: &std::path::Path, ptx: &str, sites: &[Site], width: u32) {
        if sites.iter().any(|s| encode_site(s) == "3") {
            return;
        }
        let trailer: Vec<String> = sites.iter().map(encode_site).collect();
        let text = format!("{ptx}{TRAILER} {width} {}\n", trailer.join(" "));
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let ok = path
            .parent()
            .is_some_and(|d| std::fs::create_dir_all(d).is_ok())
            && std::fs::write(&tmp, text).is_ok()
            && std::fs::rename(&tmp, path).is_ok();
        if !ok {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn entries_round_trip_and_damage_is_a_miss() {
            let dir =
                std::env::temp_dir().join(format!("kiln-ptx-cache-test-{}", std::process::id()));
            let path = dir.join(file_name(&[1, 2, 3]));
            let sites = [Site {
                kind: ErrorKind::RemainderByZero,
                loc: Some(kiln_ir::SourceLoc {
                    line: 1,
                    col: 2,
                    len: 3,
                }),
            }];
            store_at(&path, ".version 7.8\n// ptx\n", &sites, 4);
            assert_eq!(
                load_at(&path),
                Some((".version 7.8\n// ptx\n".to_string(), sites.to_vec(), 4))
            );
            assert_ne!(file_name(&[1, 2, 3]), file_name(&[1, 2, 4]));
            std::fs::write(&path, "truncated").unwrap();
            assert_eq!(load_at(&path), None);
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn sites_round_trip() {
            for s in [
                Site {
                    kind: ErrorKind::DivisionByZero,
                    loc: Some(kiln_ir::SourceLoc {
                        line: 3,
                        col: 9,
                        len: 5,
                    }),
                },
                Site {
                    kind: ErrorKind::AssertionFailed,
                    loc: None,
                },
            ] {
                assert_eq!(decode_site(&encode_site(&s)), Some(s));
            }
        }
    }
}
