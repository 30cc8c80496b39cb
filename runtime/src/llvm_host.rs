//! The GPU back end's code run on the host CPU (`kiln_nvptx::host`), as an executor: the
//! corpus runs every case on it, so the translation to LLVM IR, the grid-stride loops with
//! their vector groups, the error words and the reduction tree are all checked against the
//! interpreter on machines without a GPU.
//!
//! Scalar calls run the `kiln_call` entry *and* the `kiln_map` entry over
//! [`LlvmHost::COPIES`] copies of the arguments on 3 emulated threads (vector groups, a
//! grid-stride step and a partial group); all must give the same bits. Reductions run with
//! the launch parameters the GPU executor uses ([`crate::gpu::exact_lanes`]), so they
//! agree with the CPU bit for bit.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kiln_interp::RuntimeError;
use kiln_ir::{KernelId, Module, Scalar, ScalarType};
use kiln_nvptx::host::{decode_error, HostCode};
use kiln_nvptx::Entry;

use crate::array::element_bytes as elem_size;
use crate::gpu::{entry_key, exact_lanes, internal};
use crate::{Executor, InnerLoop, ReduceLoop};

/// The GPU code generator's output, run on the host (see the module documentation).
#[derive(Default)]
pub struct LlvmHost {
    cache: Mutex<HashMap<Vec<u64>, Arc<HostCode>>>,
}

impl std::fmt::Debug for LlvmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlvmHost").finish_non_exhaustive()
    }
}

/// Byte strides to element strides (every array stride is a multiple of its element size).
pub(crate) fn element_strides(strides: &[isize], types: &[ScalarType]) -> Vec<i64> {
    strides
        .iter()
        .zip(types)
        .map(|(&s, &t)| (s / elem_size(t) as isize) as i64)
        .collect()
}

impl LlvmHost {
    /// Elements each scalar call is also run on through the map entry.
    pub const COPIES: usize = 9;

    /// A new executor with an empty cache.
    pub fn new() -> LlvmHost {
        LlvmHost::default()
    }

    fn compile(
        &self,
        m: &Module,
        entry: Entry,
        kernel: KernelId,
    ) -> Result<Arc<HostCode>, RuntimeError> {
        let key = entry_key(m, entry);
        if let Some(c) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let code = HostCode::compile(m, entry).map_err(|_| internal(&m.kernel(kernel).name))?;
        let code = Arc::new(code);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, code.clone());
        Ok(code)
    }
}

struct HostMap {
    code: Arc<HostCode>,
    types: Vec<ScalarType>,
    kernel: String,
}

impl InnerLoop for HostMap {
    unsafe fn run(
        &self,
        n: usize,
        ptrs: &[*mut u8],
        strides: &[isize],
    ) -> Result<(), (usize, RuntimeError)> {
        let strides = element_strides(strides, &self.types);
        // SAFETY: the caller's contract is the entry's.
        let word = unsafe { self.code.map(3, ptrs, &strides, n as u64) };
        match decode_error(word) {
            None => Ok(()),
            Some((i, status)) => Err((
                i as usize,
                kiln_nvptx::Site::error(&self.code.sites, status, &self.kernel),
            )),
        }
    }
}

struct HostReduce<'m> {
    code: Arc<HostCode>,
    m: &'m Module,
    combine: KernelId,
    types: Vec<ScalarType>,
    kernel: String,
}

impl ReduceLoop for HostReduce<'_> {
    unsafe fn run(
        &self,
        acc: Scalar,
        n: usize,
        ptrs: &[*mut u8],
        strides: &[isize],
    ) -> Result<Scalar, (usize, RuntimeError)> {
        let strides = element_strides(strides, &self.types);
        let mut slot = acc.to_bits();
        let lanes = exact_lanes(self.m, self.combine, n);
        // SAFETY: the caller's contract is the entry's.
        let word = unsafe {
            self.code
                .reduce(&mut slot, lanes, 1, ptrs, &strides, n as u64)
        };
        match decode_error(word) {
            None => Ok(Scalar::from_bits(acc.ty(), slot)),
            Some((i, status)) => Err((
                i as usize,
                kiln_nvptx::Site::error(&self.code.sites, status, &self.kernel),
            )),
        }
    }
}

impl Executor for LlvmHost {
    fn name(&self) -> &str {
        "llvm-host"
    }

    fn wants_optimized(&self) -> bool {
        true
    }

    fn call(&self, m: &Module, id: KernelId, args: &[Scalar]) -> Result<Vec<Scalar>, RuntimeError> {
        let k = m.kernel(id);
        let code = self.compile(m, Entry::Call { kernel: id }, id)?;
        let slots: Vec<u64> = args.iter().map(|a| a.to_bits()).collect();
        let mut out = vec![0u64; k.results.len().max(1)];
        let status = code.call(&slots, &mut out);
        if status != 0 {
            return Err(kiln_nvptx::Site::error(&code.sites, status as u32, &k.name));
        }
        let results: Vec<Scalar> = k
            .results
            .iter()
            .zip(&out)
            .map(|(&t, &s)| Scalar::from_bits(t, s))
            .collect();
        if k.kind == kiln_ir::KernelKind::Thunk || k.params.is_empty() && k.results.is_empty() {
            return Ok(results);
        }
        // The same call through the map entry, on every element of a small array: one
        // element per 8-byte word, a strided layout for every type narrower than 8 bytes,
        // so the element-by-element path runs too.
        let map = self.inner_loop(m, id, 0)?;
        let outs = crate::run_copies(map.as_ref(), k, args, Self::COPIES, |_| 8)?;
        for (lanes, r) in outs.iter().zip(&results) {
            if lanes.iter().any(|v| !v.same(*r)) {
                return Err(internal(&k.name));
            }
        }
        Ok(results)
    }

    fn inner_loop<'m>(
        &'m self,
        m: &'m Module,
        id: KernelId,
        uniform: u64,
    ) -> Result<Arc<dyn InnerLoop + 'm>, RuntimeError> {
        let k = m.kernel(id);
        let code = self.compile(
            m,
            Entry::Map {
                kernel: id,
                uniform,
            },
            id,
        )?;
        Ok(Arc::new(HostMap {
            code,
            types: k.params.iter().chain(&k.results).copied().collect(),
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
        let code = self.compile(
            m,
            Entry::Reduce {
                map,
                combine,
                width: 1,
            },
            named,
        )?;
        let types = kiln_nvptx::reduce_inputs(m, map, combine);
        Ok(Box::new(HostReduce {
            code,
            m,
            combine,
            types,
            kernel: m.kernel(named).name.clone(),
        }))
    }
}
