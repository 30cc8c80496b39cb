//! The GPU back end (feature `gpu`). Three layers:
//! 1. **PTX code generation**, everywhere: every corpus-style kernel compiles to PTX that has
//!    the expected shape (kernel entries, 16-byte vector accesses, barriers, no contracted
//!    `fma` unless fast math asked for it); where `ptxas` is available (`KILN_PTXAS`, or on
//!    the `PATH`) it must also accept the PTX for sm_90. CI installs it (`.ci/run`) and sets
//!    `KILN_REQUIRE_PTXAS=1`, so this cannot silently skip there.
//! 2. **No driver**: on a machine without the NVIDIA driver, asking for the GPU fails with
//!    a plain error (no panic).
//! 3. **On a GPU** (skipped, visibly, without one): ufuncs and reductions through `Jit::gpu`
//!    equal the CPU's results bit for bit; device arrays; element errors; the fast
//!    device reduction within rounding of the CPU's.
#![cfg(feature = "gpu")]
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::process::Command;

use kiln::ndarray::{Array1, ArrayD};
use kiln::{Jit, Scalar, ScalarType};
use kiln_nvptx::{Arch, Entry};

const SRC: &str = "
ufunc axpy<T: float>(a: T, x: T, y: T) -> T { a * x + y }
ufunc bs(s: f64, k: f64, t: f64, r: f64, v: f64) -> f64 {
    let sqrt_t = sqrt(t);
    let d1 = (log(s / k) + (r + 0.5 * v * v) * t) / (v * sqrt_t);
    let d2 = d1 - v * sqrt_t;
    s * 0.5 * erfc(-d1 * FRAC_1_SQRT_2) - k * exp(-r * t) * 0.5 * erfc(-d2 * FRAC_1_SQRT_2)
}
ufunc safe_div(a: i64, b: i64) -> i64 { a / b }
ufunc classify(x: f64) -> (bool, i32) { (x > 0.0, x as i32) }
ufunc collatz(n0: u64) -> u64 {
    var n = n0;
    var steps = 0u64;
    while n != 1 {
        n = select(n % 2 == 0, n / 2, 3 * n + 1);
        steps += 1;
    }
    steps
}
ufunc fmod_it(x: f32, y: f32) -> f32 { x % y }
reduce add<T: num>(a: T, b: T) -> T identity 0 { a + b }
reduce maxval(a: f64, b: f64) -> f64 identity -INF { max(a, b) }
reduce last(a: i64, b: i64) -> i64 identity 0 { b + 0 * a }
fn sq(x: f64) -> f64 { x * x }
";

fn compiled() -> kiln::Compiled {
    kiln::compile("gpu_test.kl", SRC).expect("the test source compiles")
}

fn ptx(c: &kiln::Compiled, entry: Entry) -> String {
    kiln_nvptx::compile(&c.optimized, entry, Arch::NEWEST)
        .expect("PTX")
        .text
}

fn ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KILN_PTXAS") {
        return Some(PathBuf::from(p));
    }
    Command::new("ptxas")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("ptxas"))
}

/// Every entry of every kernel of the test source, as PTX.
fn all_ptx() -> Vec<(String, String)> {
    let c = compiled();
    let m = &c.optimized;
    let mut out = Vec::new();
    for (i, k) in m.kernels.iter().enumerate() {
        let id = kiln::KernelId::new(i);
        let entries: Vec<Entry> = match k.kind {
            kiln::ir::KernelKind::Ufunc => vec![
                Entry::Map {
                    kernel: id,
                    uniform: 0,
                },
                Entry::Map {
                    kernel: id,
                    uniform: 1,
                },
                Entry::Call { kernel: id },
            ],
            kiln::ir::KernelKind::Reduce => vec![
                Entry::Reduce {
                    map: None,
                    combine: id,
                    width: 1,
                },
                Entry::Reduce {
                    map: None,
                    combine: id,
                    width: kiln_nvptx::vector_width(&k.params),
                },
            ],
            kiln::ir::KernelKind::Fn => vec![Entry::Call { kernel: id }],
            _ => vec![],
        };
        for e in entries {
            out.push((format!("{} {e:?}", k.name), ptx(&c, e)));
        }
    }
    out
}

#[test]
fn ptx_has_the_expected_shape() {
    let c = compiled();
    let axpy32 = c.kernel("axpy", &[ScalarType::F32]).unwrap();
    let p = ptx(
        &c,
        Entry::Map {
            kernel: axpy32,
            uniform: 0,
        },
    );
    assert!(p.contains(".target sm_90"), "{p}");
    assert!(p.contains(".visible .entry kiln_map("), "{p}");
    // 16-byte accesses for f32 (4 lanes), and IEEE operations that ptxas may not fuse.
    assert!(p.contains("ld.global.v4.f32"), "{p}");
    assert!(p.contains("st.global.v4.f32"), "{p}");
    assert!(p.contains("mul.rn.f32") && p.contains("add.rn.f32"), "{p}");
    assert!(!p.contains("fma"), "no contraction by default: {p}");

    let axpy64 = c.kernel("axpy", &[ScalarType::F64]).unwrap();
    let p = ptx(
        &c,
        Entry::Map {
            kernel: axpy64,
            uniform: 1,
        },
    );
    assert!(p.contains("ld.global.v2.f64"), "{p}");

    // Fast math contracts in Kiln's IR, and the GPU gets the fma.
    let fast = kiln::Jit::new()
        .unwrap()
        .with_fast_math(true)
        .compile("f.kl", SRC)
        .unwrap();
    let fc = fast.compiled();
    let id = fc.kernel("axpy", &[ScalarType::F64]).unwrap();
    let p = kiln_nvptx::compile(
        &fc.optimized,
        Entry::Map {
            kernel: id,
            uniform: 0,
        },
        Arch::NEWEST,
    )
    .unwrap()
    .text;
    assert!(p.contains("fma.rn.f64"), "{p}");

    let add = c.kernel("add", &[ScalarType::F64]).unwrap();
    let p = ptx(
        &c,
        Entry::Reduce {
            map: None,
            combine: add,
            width: 2,
        },
    );
    assert!(p.contains(".entry kiln_reduce(") && p.contains(".entry kiln_reduce_final("));
    assert!(p.contains("bar.sync"), "the block tree synchronises: {p}");
    assert!(
        p.contains(".shared"),
        "the block tree lives in shared memory: {p}"
    );
    // Errors are reported with an atomic minimum on the error word.
    let div = c.kernel("safe_div", &[]).unwrap();
    let p = ptx(
        &c,
        Entry::Map {
            kernel: div,
            uniform: 0,
        },
    );
    assert!(p.contains("atom.global.min.u64"), "{p}");
    // 64-bit scalar and strided accesses are single 64-bit loads and stores. (With LLVM's
    // default data layout at parse time, i64 was aligned to 4 and every access split in two
    // 32-bit halves.)
    assert!(
        p.contains("ld.global.u64") && p.contains("st.global.u64"),
        "{p}"
    );
    assert!(
        !p.contains("ld.global.u32") && !p.contains("st.global.u32"),
        "{p}"
    );
    let sq = c.kernel("sq", &[]).unwrap();
    let p = ptx(&c, Entry::Call { kernel: sq });
    assert!(
        p.contains("ld.global.f64") && p.contains("st.global.f64"),
        "result slots: {p}"
    );
    let p = ptx(
        &c,
        Entry::Map {
            kernel: axpy64,
            uniform: 0,
        },
    );
    assert!(
        p.contains("ld.global.f64") && p.contains("st.global.f64"),
        "{p}"
    );
    assert!(
        !p.contains("ld.global.u32") && !p.contains("st.global.u32"),
        "{p}"
    );
}

#[test]
#[allow(clippy::print_stderr)]
fn ptxas_accepts_every_entry() {
    let Some(ptxas) = ptxas() else {
        assert!(
            std::env::var_os("KILN_REQUIRE_PTXAS").is_none(),
            "KILN_REQUIRE_PTXAS is set but no ptxas was found (set KILN_PTXAS)"
        );
        eprintln!("SKIPPED ptxas_accepts_every_entry: no ptxas (set KILN_PTXAS=/path/to/ptxas)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("kiln-ptx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let entries = all_ptx();
    assert!(entries.len() > 20, "{} entries", entries.len());
    for (i, (what, text)) in entries.iter().enumerate() {
        let f = dir.join(format!("{i}.ptx"));
        std::fs::write(&f, text).unwrap();
        let out = Command::new(&ptxas)
            .args(["-arch=sm_90", "-o"])
            .arg(dir.join(format!("{i}.cubin")))
            .arg(&f)
            .output()
            .expect("ptxas runs");
        assert!(
            out.status.success(),
            "ptxas rejected {what}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A GPU, or `None` after saying why the test is skipped.
#[allow(clippy::print_stderr)]
fn gpu(test: &str) -> Option<Jit> {
    match Jit::gpu() {
        Ok(j) => Some(j),
        Err(e) => {
            eprintln!("SKIPPED {test}: {e}");
            None
        }
    }
}

#[test]
fn without_a_driver_the_gpu_is_a_plain_error() {
    if kiln_runtime::gpu::driver_present() {
        return; // covered by the tests that run on the GPU
    }
    let e = Jit::gpu().unwrap_err().to_string();
    assert!(e.contains("no NVIDIA driver"), "{e}");
    let e = kiln_runtime::gpu::Gpu::new().unwrap_err();
    assert_eq!(e, kiln_runtime::gpu::GpuError::NoDriver);
}

fn same(a: &[Scalar], b: &[Scalar]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(*y))
}

#[test]
fn gpu_ufuncs_and_reductions_equal_the_cpu() {
    let Some(jit) = gpu("gpu_ufuncs_and_reductions_equal_the_cpu") else {
        return;
    };
    let cpu = Jit::new().unwrap().compile("t.kl", SRC).unwrap();
    let gm = jit.compile("t.kl", SRC).unwrap();
    let n = 100_003;
    let x = Array1::from_iter((0..n).map(|i| (i as f64 - 5e4) * 1e-3));
    let y = Array1::from_iter((0..n).map(|i| (i as f64).sin()));
    let args = [2.5.into(), (&x).into(), (&y).into()];
    let a = cpu.ufunc("axpy").unwrap().call(&args).unwrap();
    let b = gm.ufunc("axpy").unwrap().call(&args).unwrap();
    assert!(same(&a[0].to_scalars(), &b[0].to_scalars()), "axpy");
    let s = x.mapv(|v| 80.0 + v.abs());
    let bs_args = [
        (&s).into(),
        100.0.into(),
        1.5.into(),
        0.03.into(),
        0.25.into(),
    ];
    let a = cpu.ufunc("bs").unwrap().call(&bs_args).unwrap();
    let b = gm.ufunc("bs").unwrap().call(&bs_args).unwrap();
    assert!(
        same(&a[0].to_scalars(), &b[0].to_scalars()),
        "Black-Scholes"
    );
    // Host-array reductions run in the CPU's order: equal bits.
    for r in ["add", "maxval"] {
        let a = cpu.reduction(r).unwrap().reduce(&x).unwrap();
        let b = gm.reduction(r).unwrap().reduce(&x).unwrap();
        assert!(a.same(b), "{r}: cpu {a}, gpu {b}");
    }
    // An element error names the same element.
    let num = Array1::from_elem(1000, 7i64);
    let mut den = Array1::from_elem(1000, 1i64);
    den[637] = 0;
    den[901] = 0;
    let e = gm
        .ufunc("safe_div")
        .unwrap()
        .call(&[(&num).into(), (&den).into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("division by zero") && e.contains("[637]"), "{e}");
}

#[test]
fn gpu_device_arrays() {
    let Some(jit) = gpu("gpu_device_arrays") else {
        return;
    };
    let dev = jit.gpu_device().expect("a GPU jit has a device");
    let m = jit.compile("t.kl", SRC).unwrap();
    let c = m.compiled();
    let n = 1 << 20;
    let x = ArrayD::from_shape_vec(vec![n], (0..n).map(|i| i as f64 * 0.5).collect()).unwrap();
    let dx = dev.to_device(&x).unwrap();
    let axpy = c.kernel("axpy", &[ScalarType::F64]).unwrap();
    use kiln_runtime::gpu::DeviceArg;
    let out = dev
        .map(
            &c.optimized,
            axpy,
            &[
                DeviceArg::Scalar(Scalar::F64(2.0)),
                DeviceArg::Array(&dx),
                DeviceArg::Array(&dx),
            ],
        )
        .unwrap();
    let host = out[0].to_host().unwrap().into_typed::<f64>().unwrap();
    assert_eq!(host, x.mapv(|v| 2.0 * v + v));
    // The same through the module's handles (the specialisation from the dtypes).
    let out2 = m
        .ufunc("axpy")
        .unwrap()
        .call_device(&[
            DeviceArg::Scalar(Scalar::F64(2.0)),
            DeviceArg::Array(&dx),
            DeviceArg::Array(&dx),
        ])
        .unwrap();
    assert_eq!(
        out2[0].to_host().unwrap().into_typed::<f64>().unwrap(),
        host
    );
    let via_handle = m.reduction("add").unwrap().reduce_device(&dx).unwrap();
    let add = c.kernel("add", &[ScalarType::F64]).unwrap();
    let total = dev
        .reduce(&c.optimized, None, add, Scalar::F64(0.0), &[&dx])
        .unwrap();
    let exact = x.iter().sum::<f64>();
    assert!(via_handle.same(total), "{via_handle} vs {total}");
    let Scalar::F64(t) = total else {
        panic!("{total:?}")
    };
    assert!((t - exact).abs() <= 1e-12 * exact, "{t} vs {exact}");
    // Integer sums are exact in any order.
    let k = ArrayD::from_shape_vec(vec![n], (0..n as i64).collect()).unwrap();
    let dk = dev.to_device(&k).unwrap();
    let addi = c.kernel("add", &[ScalarType::I64]).unwrap();
    let s = dev
        .reduce(&c.optimized, None, addi, Scalar::I64(0), &[&dk])
        .unwrap();
    assert_eq!(s, Scalar::I64((n as i64 - 1) * n as i64 / 2));
}

// ---- The host flavour on hand-written IR (edge cases the corpus may not reach).

use kiln_interp::ErrorKind;
use kiln_nvptx::host::{decode_error, HostCode};

fn module(text: &str) -> kiln::Module {
    let m = kiln::ir::parse_module(text).expect("IR text parses");
    kiln::ir::verify(&m).expect("IR verifies");
    m
}

const DIV: &str = "
ufunc div(i32, i32) -> i32 {
block0(v0: i32, v1: i32):
    v2: i32 = div v0, v1  ; @3:7
    return v2
}
";

fn slot(s: Scalar) -> u64 {
    s.to_bits()
}

#[test]
fn integer_division_edges_on_the_host_flavour() {
    let m = module(DIV);
    let id = m.find("div").unwrap();
    let code = HostCode::compile(&m, kiln_nvptx::Entry::Call { kernel: id }).unwrap();
    let call = |a: i32, b: i32| {
        let mut out = [0u64];
        let st = code.call(&[slot(Scalar::I32(a)), slot(Scalar::I32(b))], &mut out);
        (st, Scalar::from_bits(ScalarType::I32, out[0]))
    };
    assert_eq!(call(-7, 2), (0, Scalar::I32(-3)));
    assert_eq!(call(i32::MIN, -1), (0, Scalar::I32(i32::MIN)));
    let (st, _) = call(1, 0);
    assert_eq!(st, 1);
    assert_eq!(code.sites[0].kind, ErrorKind::DivisionByZero);
    assert_eq!(code.sites[0].loc.map(|l| (l.line, l.col)), Some((3, 7)));
}

#[test]
fn map_reports_the_first_failing_element() {
    let m = module(DIV);
    let id = m.find("div").unwrap();
    let code = HostCode::compile(
        &m,
        kiln_nvptx::Entry::Map {
            kernel: id,
            uniform: 0,
        },
    )
    .unwrap();
    let a: Vec<i32> = (0..37).collect();
    let mut b: Vec<i32> = vec![2; 37];
    let mut out = vec![0i32; 37];
    let ptrs = [
        a.as_ptr() as *mut u8,
        b.as_mut_ptr() as *mut u8,
        out.as_mut_ptr() as *mut u8,
    ];
    let e = unsafe { code.map(3, &ptrs, &[1, 1, 1], 37) };
    assert_eq!(decode_error(e), None);
    assert_eq!(out, a.iter().map(|x| x / 2).collect::<Vec<_>>());
    b[30] = 0;
    b[11] = 0;
    let e = unsafe { code.map(5, &ptrs, &[1, 1, 1], 37) };
    assert_eq!(decode_error(e), Some((11, 1)));
}

#[test]
fn host_flavour_reductions_over_several_blocks() {
    let c = compiled();
    let add = c.kernel("add", &[ScalarType::I64]).unwrap();
    // `last` is associative but not commutative: each thread takes a contiguous range and
    // the tree keeps index order, so the result is the last element.
    let last = c.kernel("last", &[]).unwrap();
    for (combine, width) in [(add, 2), (add, 1), (last, 2)] {
        let code = HostCode::compile(
            &c.optimized,
            Entry::Reduce {
                map: None,
                combine,
                width,
            },
        )
        .unwrap();
        for n in [0u64, 1, 7, 8, 1000, 5000, 70001] {
            let xs: Vec<i64> = (0..n as i64).map(|i| i * 3 - 7).collect();
            for (lanes, grid) in [(0, 3), (8, 1), (1, 1)] {
                let mut acc = Scalar::I64(5).to_bits();
                let ptrs = [xs.as_ptr() as *mut u8];
                // SAFETY: one input of `n` i64s, stride 1.
                let e = unsafe { code.reduce(&mut acc, lanes, grid, &ptrs, &[1], n) };
                assert_eq!(decode_error(e), None);
                let want = if combine == add {
                    5 + xs.iter().sum::<i64>()
                } else {
                    xs.last().copied().unwrap_or(5)
                };
                assert_eq!(
                    Scalar::from_bits(ScalarType::I64, acc),
                    Scalar::I64(want),
                    "n = {n}, lanes = {lanes}, grid = {grid}, width = {width}"
                );
            }
        }
    }
}
