//! The embedding API (`kiln::Jit`): compiling, calling ufuncs over arrays, outputs, typed
//! handles, element errors, reductions, executors and sharing a module between threads.

use std::sync::Arc;

use kiln::ndarray::{arr1, arr2, s, Array1, Array2, ArrayD, Axis, IxDyn};
use kiln::{Arg, DynArray, Element, Error, Jit, JitModule, Scalar, ScalarType, Threads};

const SRC: &str = "\
ufunc axpy<T: float>(a: T, x: T, y: T) -> T { a * x + y }
ufunc sincos<T: float>(x: T) -> (T, T) { (sin(x), cos(x)) }
ufunc scale(x: f64) -> f64 { 2.0 * x }
ufunc safe_div(a: i64, b: i64) -> i64 { a / b }
ufunc bs(s: f64, k: f64, t: f64, r: f64, v: f64) -> f64 {
    let sqrt_t = sqrt(t);
    let d1 = (log(s / k) + (r + 0.5 * v * v) * t) / (v * sqrt_t);
    let d2 = d1 - v * sqrt_t;
    s * 0.5 * erfc(-d1 * FRAC_1_SQRT_2) - k * exp(-r * t) * 0.5 * erfc(-d2 * FRAC_1_SQRT_2)
}
ufunc collatz(n0: u64) -> u64 {
    var n = n0;
    var steps = 0u64;
    while n != 1 {
        n = select(n % 2 == 0, n / 2, 3 * n + 1);
        steps += 1;
    }
    steps
}
reduce add<T: num>(a: T, b: T) -> T identity 0 { a + b }
reduce maxval(a: f64, b: f64) -> f64 identity -INF { max(a, b) }
ufunc square<T: float>(x: T) -> T { x * x }
";

fn module() -> JitModule {
    Jit::with_threads(2)
        .expect("a JIT")
        .compile("api.kl", SRC)
        .expect("compiles")
}

fn usage(e: Error) -> String {
    match e {
        Error::Usage(msg) => msg,
        other => panic!("expected a usage error, got {other:?}"),
    }
}

fn f64s(a: &DynArray) -> ArrayD<f64> {
    f64::view(a).expect("an f64 array").to_owned()
}

/// A deterministic array of `n` values in [lo, hi).
fn pseudo_random(n: usize, seed: u64, lo: f64, hi: f64) -> Array1<f64> {
    let mut s = seed;
    Array1::from_shape_fn(n, |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
    })
}

#[test]
fn compile_errors_render_with_file_line_and_column() {
    let jit = Jit::with_threads(1).unwrap();
    let err = jit
        .compile(
            "bad.kl",
            "ufunc ok(x: f64) -> f64 { x }\nufunc f(x: f32) -> f64 {\n    x\n}\n",
        )
        .unwrap_err();
    let Error::Compile(diags) = &err else {
        panic!("expected a compile error, got {err:?}")
    };
    assert_eq!(diags.items().len(), 1);
    let text = err.to_string();
    assert!(text.contains("bad.kl:3:5"), "{text}");
    assert!(text.contains("expected `f64`, found `f32`"), "{text}");
    // Every independent error is reported, each with its own place.
    let err = jit
        .compile("two.kl", "fn f(x: f32) -> f64 { x }\nfn g() -> i64 { y }\n")
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("two.kl:1:23"), "{text}");
    assert!(text.contains("two.kl:2:17"), "{text}");
    // Syntax errors too.
    let text = jit
        .compile("syn.kl", "ufunc f(x: f64) -> f64 { x + }")
        .unwrap_err()
        .to_string();
    assert!(text.contains("syn.kl:1:"), "{text}");
}

#[test]
fn unknown_names_and_wrong_kinds_are_usage_errors() {
    let m = module();
    let msg = usage(m.ufunc("nope").unwrap_err());
    assert!(
        msg.contains("api.kl") && msg.contains("no ufunc named `nope`"),
        "{msg}"
    );
    let msg = usage(m.ufunc("add").unwrap_err());
    assert!(msg.contains("`add` is a reduce, not a ufunc"), "{msg}");
    let msg = usage(m.reduction("axpy").unwrap_err());
    assert!(msg.contains("`axpy` is a ufunc, not a reduce"), "{msg}");
    let msg = usage(m.reduction("nope").unwrap_err());
    assert!(msg.contains("no reduce named `nope`"), "{msg}");
}

#[test]
fn wrong_dtypes_name_the_signature() {
    let m = module();
    let x = arr1(&[1.0f64, 2.0]);
    let n = arr1(&[1i64, 2]);
    let err = m
        .ufunc("axpy")
        .unwrap()
        .call(&[2.0.into(), (&x).into(), (&n).into()])
        .unwrap_err();
    let text = err.to_string();
    let msg = usage(err);
    assert!(
        msg.contains("`axpy` cannot be called with (f64, f64, i64)"),
        "{msg}"
    );
    assert!(msg.contains("(a: T, x: T, y: T)"), "{msg}");
    assert!(text.starts_with("error: "), "{text}");
    // A non-generic ufunc: f32 where f64 is declared, and a wrong argument count.
    let x32 = arr1(&[1.0f32]);
    let msg = usage(
        m.ufunc("scale")
            .unwrap()
            .call(&[(&x32).into()])
            .unwrap_err(),
    );
    assert!(msg.contains("(f32)") && msg.contains("x: f64"), "{msg}");
    let msg = usage(
        m.ufunc("scale")
            .unwrap()
            .call(&[(&x).into(), (&x).into()])
            .unwrap_err(),
    );
    assert!(
        msg.contains("`scale` cannot be called with (f64, f64)"),
        "{msg}"
    );
}

#[test]
fn broadcasting_2d_against_1d() {
    let m = module();
    let x = arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let y = arr1(&[10.0, 20.0, 30.0]);
    let out = m
        .ufunc("axpy")
        .unwrap()
        .call(&[2.0.into(), (&x).into(), (&y).into()])
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].shape(), [2, 3]);
    let want = arr2(&[[12.0, 24.0, 36.0], [18.0, 30.0, 42.0]]).into_dyn();
    assert_eq!(f64s(&out[0]), want);
    // A column against a row gives the outer shape.
    let col = arr2(&[[1.0], [2.0]]);
    let out = m
        .ufunc("axpy")
        .unwrap()
        .call(&[1.0.into(), (&col).into(), (&y).into()])
        .unwrap();
    assert_eq!(
        f64s(&out[0]),
        arr2(&[[11.0, 21.0, 31.0], [12.0, 22.0, 32.0]]).into_dyn()
    );
    // Shapes that do not broadcast are a usage error naming them.
    let bad = arr1(&[1.0, 2.0]);
    let msg = usage(
        m.ufunc("axpy")
            .unwrap()
            .call(&[1.0.into(), (&x).into(), (&bad).into()])
            .unwrap_err(),
    );
    assert!(
        msg.contains("cannot be broadcast") && msg.contains("[2, 3]") && msg.contains("[2]"),
        "{msg}"
    );
}

#[test]
fn several_outputs_come_back_in_order() {
    let m = module();
    let x = arr1(&[0.0f32, 1.0]);
    let out = m.ufunc("sincos").unwrap().call(&[(&x).into()]).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0].to_scalars(),
        [Scalar::F32(0.0), Scalar::F32(1.0f32.sin())]
    );
    assert_eq!(
        out[1].to_scalars(),
        [Scalar::F32(1.0), Scalar::F32(1.0f32.cos())]
    );
}

#[test]
fn call_into_preallocated_and_in_place() {
    let m = module();
    let axpy = m.ufunc("axpy").unwrap();
    let x = arr1(&[1.0, 2.0, 3.0]);
    let y = arr1(&[0.5, 0.5, 0.5]);
    let mut out = Array1::<f64>::zeros(3);
    axpy.call_into(
        &[3.0.into(), (&x).into(), (&y).into()],
        &mut [(&mut out).into()],
    )
    .unwrap();
    assert_eq!(out, arr1(&[3.5, 6.5, 9.5]));

    // In place: z = 2 * z + y, reading output 0 as an argument.
    let mut z = arr1(&[1.0, 2.0, 3.0]);
    axpy.call_into(
        &[2.0.into(), Arg::Out(0), (&y).into()],
        &mut [(&mut z).into()],
    )
    .unwrap();
    assert_eq!(z, arr1(&[2.5, 4.5, 6.5]));
    // In place over a strided view (every other element of a bigger array).
    let mut big = Array1::from_shape_fn(10, |i| i as f64);
    {
        let every_other = big.slice_mut(kiln::ndarray::s![..;2]);
        axpy.call_into(
            &[10.0.into(), Arg::Out(0), 1.0.into()],
            &mut [every_other.into()],
        )
        .unwrap();
    }
    assert_eq!(
        big,
        arr1(&[1.0, 1.0, 21.0, 3.0, 41.0, 5.0, 61.0, 7.0, 81.0, 9.0])
    );

    // Outputs of the wrong dtype, shape or number are usage errors.
    let mut wrong = Array1::<f32>::zeros(3);
    let msg = usage(
        m.ufunc("scale")
            .unwrap()
            .call_into(&[(&x).into()], &mut [(&mut wrong).into()])
            .unwrap_err(),
    );
    assert!(msg.contains("dtype"), "{msg}");
    let mut short = Array1::<f64>::zeros(2);
    let msg = usage(
        axpy.call_into(
            &[3.0.into(), (&x).into(), (&y).into()],
            &mut [(&mut short).into()],
        )
        .unwrap_err(),
    );
    assert!(msg.contains("shape [2]") && msg.contains("[3]"), "{msg}");
    let msg = usage(
        axpy.call_into(
            &[3.0.into(), (&x).into(), Arg::Out(1)],
            &mut [(&mut out).into()],
        )
        .unwrap_err(),
    );
    assert!(msg.contains("output 1"), "{msg}");
}

#[test]
fn typed_handles() {
    let m = module();
    let axpy = m.ufunc("axpy").unwrap();
    let t64 = axpy.typed::<f64>(&[ScalarType::F64; 3]).unwrap();
    let x = arr1(&[1.0, 2.0]);
    let out: ArrayD<f64> = t64.call(&[2.0.into(), (&x).into(), 1.0.into()]).unwrap();
    assert_eq!(out, arr1(&[3.0, 5.0]).into_dyn());
    let mut into = Array1::<f64>::zeros(2);
    t64.call_into(
        &[(&x).into(), (&x).into(), (&x).into()],
        into.view_mut().into_dyn(),
    )
    .unwrap();
    assert_eq!(into, arr1(&[2.0, 6.0]));

    let t32 = axpy.typed::<f32>(&[ScalarType::F32; 3]).unwrap();
    let x32 = arr1(&[1.5f32]);
    assert_eq!(
        t32.call(&[2.0f32.into(), (&x32).into(), 0.25f32.into()])
            .unwrap(),
        arr1(&[3.25f32]).into_dyn()
    );
    // A handle checks its dtypes when made, and the arguments when called.
    let msg = usage(axpy.typed::<f32>(&[ScalarType::F64; 3]).err().unwrap());
    assert!(msg.contains("not f32"), "{msg}");
    let msg = usage(axpy.typed::<f64>(&[ScalarType::I64; 3]).err().unwrap());
    assert!(
        msg.contains("cannot be called with (i64, i64, i64)"),
        "{msg}"
    );
    assert!(m
        .ufunc("sincos")
        .unwrap()
        .typed::<f64>(&[ScalarType::F64])
        .is_err());
    let msg = usage(
        t64.call(&[2.0.into(), (&x32).into(), 1.0.into()])
            .unwrap_err(),
    );
    assert!(msg.contains("argument 1") && msg.contains("f32"), "{msg}");
}

#[test]
fn division_by_zero_names_the_element_and_leaves_inputs_alone() {
    let m = module();
    let a = arr2(&[[10i64, 20, 30, 40], [50, 60, 70, 80], [90, 100, 110, 120]]);
    let b = arr2(&[[1i64, 2, 3, 4], [5, 6, 0, 8], [9, 0, 11, 12]]);
    let (a0, b0) = (a.clone(), b.clone());
    let err = m
        .ufunc("safe_div")
        .unwrap()
        .call(&[(&a).into(), (&b).into()])
        .unwrap_err();
    let text = err.to_string();
    let Error::Element { error, file, index } = err else {
        panic!("expected an element error, got {text}")
    };
    assert_eq!(
        index,
        [1, 2],
        "the first failing element in row-major order"
    );
    assert_eq!(error.kind, kiln_interp::ErrorKind::DivisionByZero);
    assert_eq!(error.kernel, "safe_div");
    assert_eq!(file.as_deref(), Some("api.kl"));
    let loc = error.loc.expect("a source location");
    assert_eq!((loc.line, loc.col), (4, 41));
    assert!(
        text.contains("division by zero in `safe_div` at api.kl:4:41, at element [1, 2]"),
        "{text}"
    );
    assert_eq!((a, b), (a0, b0));
}

#[test]
fn the_first_failing_element_wins_on_any_thread_count() {
    let n = 1_000_000;
    let a = Array1::from_shape_fn(n, |i| i as i64);
    let mut b = Array1::from_elem(n, 3i64);
    b[987_654] = 0;
    b[777_777] = 0;
    b[5] = 1;
    let b0 = b.clone();
    for threads in [1, 2, 4] {
        let m = Jit::with_threads(threads)
            .unwrap()
            .compile("api.kl", SRC)
            .unwrap();
        let mut out = Array1::from_elem(n, -1i64);
        let err = m
            .ufunc("safe_div")
            .unwrap()
            .call_into(&[(&a).into(), (&b).into()], &mut [(&mut out).into()])
            .unwrap_err();
        let Error::Element { index, .. } = err else {
            panic!("{err}")
        };
        assert_eq!(index, [777_777], "{threads} threads");
        assert_eq!(b, b0);
    }
}

#[test]
fn reductions_whole_axis_and_fused() {
    let m = module();
    let add = m.reduction("add").unwrap();
    let g = Array2::from_shape_fn((3, 4), |(i, j)| (10 * i + j) as i64);
    assert_eq!(add.reduce(&g).unwrap(), Scalar::I64(g.sum()));
    let rows = add.reduce_axis(&g, 1).unwrap();
    assert_eq!(rows.shape(), [3]);
    assert_eq!(rows, DynArray::from(g.sum_axis(Axis(1))));
    let cols = add.reduce_axis(&g, 0).unwrap();
    assert_eq!(cols, DynArray::from(g.sum_axis(Axis(0))));
    let msg = usage(add.reduce_axis(&g, 2).unwrap_err());
    assert!(msg.contains("axis 2"), "{msg}");
    // The identity for an empty array.
    let empty = Array1::<f64>::zeros(0);
    assert_eq!(
        m.reduction("maxval").unwrap().reduce(&empty).unwrap(),
        Scalar::F64(f64::NEG_INFINITY)
    );
    // A non-generic reduction rejects another dtype.
    assert!(matches!(
        m.reduction("maxval").unwrap().reduce(&g),
        Err(Error::Usage(_))
    ));
    // Fused: sum of squares, with a broadcast scalar too.
    let x = arr1(&[1.0f32, 2.0, 3.0]);
    let sq = m.ufunc("square").unwrap();
    assert_eq!(
        add.map_reduce(&sq, &[(&x).into()]).unwrap(),
        Scalar::F32(14.0)
    );
    let axpy = m.ufunc("axpy").unwrap();
    assert_eq!(
        add.map_reduce(&axpy, &[2.0f32.into(), (&x).into(), 1.0f32.into()])
            .unwrap(),
        Scalar::F32(15.0)
    );
    // A map with two outputs cannot be reduced.
    let msg = usage(
        add.map_reduce(&m.ufunc("sincos").unwrap(), &[(&x).into()])
            .unwrap_err(),
    );
    assert!(msg.contains("exactly one output"), "{msg}");
}

#[test]
fn reductions_do_not_depend_on_the_thread_count() {
    // Several reduction blocks (65,536 elements each) and chunks, an odd length.
    let x = pseudo_random(1_000_003, 7, -1.0, 1.0);
    let g = Array2::from_shape_fn((300_001, 3), |(i, j)| x[i] * (j + 1) as f64);
    let mut results = Vec::new();
    for threads in [1, 2, 3, 4] {
        let m = Jit::with_threads(threads)
            .unwrap()
            .compile("api.kl", SRC)
            .unwrap();
        let add = m.reduction("add").unwrap();
        let sq = m.ufunc("square").unwrap();
        let whole = add.reduce(&x).unwrap();
        let axis = add.reduce_axis(&g, 0).unwrap().to_scalars();
        let fused = add.map_reduce(&sq, &[(&x).into()]).unwrap();
        let bits: Vec<u64> = [whole, fused]
            .iter()
            .chain(&axis)
            .map(|s| s.to_bits())
            .collect();
        results.push((threads, bits));
    }
    for (threads, bits) in &results[1..] {
        assert_eq!(bits, &results[0].1, "{threads} threads against 1");
    }
    // And close to a serial sum.
    let Scalar::F64(whole) = Scalar::from_bits(ScalarType::F64, results[0].1[0]) else {
        unreachable!()
    };
    assert!((whole - x.sum()).abs() < 1e-9, "{whole} vs {}", x.sum());
}

#[test]
fn interpreter_and_cpu_jit_agree() {
    let cpu = Jit::with_threads(2).unwrap();
    let interp = Jit::with_executor(
        Arc::new(kiln::Interpreter::new(u64::MAX)),
        Threads::new(2).unwrap(),
    )
    .unwrap();
    assert_eq!(cpu.backend(), "cpu");
    assert_eq!(interp.backend(), "interp");
    let n = 20_000;
    let s = pseudo_random(n, 1, 20.0, 150.0);
    let k = pseudo_random(n, 2, 20.0, 150.0);
    let t = pseudo_random(n, 3, 0.1, 3.0);
    let v = pseudo_random(n, 4, 0.05, 0.9);
    let x32 = pseudo_random(n, 5, -10.0, 10.0).mapv(|v| v as f32);
    let starts = Array1::from_shape_fn(n / 10, |i| i as u64 + 1);
    let den = Array1::from_shape_fn(n, |i| (i as i64 % 13) - 6);
    let run = |jit: &Jit| {
        let m = jit.compile("api.kl", SRC).unwrap();
        let price = m
            .ufunc("bs")
            .unwrap()
            .call(&[
                (&s).into(),
                (&k).into(),
                (&t).into(),
                0.03.into(),
                (&v).into(),
            ])
            .unwrap();
        let trig = m.ufunc("sincos").unwrap().call(&[(&x32).into()]).unwrap();
        let steps = m
            .ufunc("collatz")
            .unwrap()
            .call(&[(&starts).into()])
            .unwrap();
        let sum = m.reduction("add").unwrap().reduce(price[0].view()).unwrap();
        let top = m
            .reduction("maxval")
            .unwrap()
            .reduce(price[0].view())
            .unwrap();
        let norm = m
            .reduction("add")
            .unwrap()
            .map_reduce(&m.ufunc("square").unwrap(), &[(&x32).into()])
            .unwrap();
        let idx = m
            .ufunc("safe_div")
            .unwrap()
            .call(&[(&den).into(), (&den).into()])
            .unwrap_err();
        let Error::Element { index, error, .. } = idx else {
            panic!("{idx}")
        };
        (
            price,
            trig,
            steps,
            [sum, top, norm].map(|s| s.to_bits()),
            index,
            error,
        )
    };
    let (a, b) = (run(&cpu), run(&interp));
    // DynArray's == compares floats by value; compare the bits.
    let bits = |arrays: &[DynArray]| -> Vec<u64> {
        arrays
            .iter()
            .flat_map(|a| a.to_scalars())
            .map(|s| s.to_bits())
            .collect()
    };
    assert_eq!(bits(&a.0), bits(&b.0), "bs");
    assert_eq!(bits(&a.1), bits(&b.1), "sincos");
    assert_eq!(a.2, b.2, "collatz");
    assert_eq!(a.3, b.3, "reductions");
    assert_eq!(a.4, [6]);
    assert_eq!((a.4, a.5), (b.4, b.5), "the same element error");
}

#[test]
fn a_generic_ufunc_on_f32_and_f64() {
    let m = module();
    let axpy = m.ufunc("axpy").unwrap();
    let x32 = arr1(&[0.1f32, 0.2, 0.3]);
    let x64 = arr1(&[0.1f64, 0.2, 0.3]);
    let o32 = axpy
        .call(&[3.0f32.into(), (&x32).into(), 0.1f32.into()])
        .unwrap();
    let o64 = axpy
        .call(&[3.0f64.into(), (&x64).into(), 0.1f64.into()])
        .unwrap();
    assert_eq!(o32[0].dtype(), ScalarType::F32);
    assert_eq!(o64[0].dtype(), ScalarType::F64);
    let want32: Vec<Scalar> = x32.iter().map(|&v| Scalar::F32(3.0 * v + 0.1)).collect();
    let want64: Vec<Scalar> = x64.iter().map(|&v| Scalar::F64(3.0 * v + 0.1)).collect();
    assert_eq!(o32[0].to_scalars(), want32);
    assert_eq!(o64[0].to_scalars(), want64);
    // No silent conversion between the two.
    let msg = usage(
        axpy.call(&[3.0f64.into(), (&x32).into(), 0.1f32.into()])
            .unwrap_err(),
    );
    assert!(msg.contains("(f64, f32, f32)"), "{msg}");
    // Scalars only: a 0-d result.
    let out = axpy.call(&[2.0.into(), 3.0.into(), 1.0.into()]).unwrap();
    assert_eq!(out[0], DynArray::from(ArrayD::from_elem(IxDyn(&[]), 7.0)));
}

#[test]
fn one_module_shared_between_threads() {
    let m = module();
    let x = pseudo_random(300_000, 9, -1.0, 1.0);
    let want: Vec<Array1<f64>> = (0..4).map(|i| x.mapv(|v| i as f64 * v + 1.0)).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (m, x) = (&m, &x);
                scope.spawn(move || {
                    let axpy = m.ufunc("axpy").unwrap();
                    let mut last = None;
                    for _ in 0..5 {
                        let out = axpy
                            .call(&[(i as f64).into(), x.into(), 1.0.into()])
                            .unwrap();
                        last = Some(f64s(&out[0]));
                    }
                    last.unwrap()
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), want[i].clone().into_dyn(), "thread {i}");
        }
    });
    // A cloned module (an Arc inside) moved into a thread works too.
    let m2 = m.clone();
    let y = std::thread::spawn(move || {
        m2.ufunc("scale").unwrap().call(&[Arg::from(4.0)]).unwrap()[0].to_scalars()
    })
    .join()
    .unwrap();
    assert_eq!(y, [Scalar::F64(8.0)]);
}

#[test]
fn strided_and_broadcast_operands_on_several_threads() {
    for threads in [1, 3] {
        let m = Jit::with_threads(threads)
            .unwrap()
            .compile("api.kl", SRC)
            .unwrap();
        let axpy = m.ufunc("axpy").unwrap();
        // x: a transposed view; y: a row broadcast down it; out: every other column of a
        // bigger array, rows reversed. 513,513 elements: several chunks.
        let base = Array2::from_shape_fn((513, 1001), |(i, j)| (i * 1001 + j) as f64);
        let x = base.t();
        let y = Array1::from_shape_fn(513, |j| j as f64 * 0.5);
        let mut big = Array2::<f64>::zeros((1001, 1026));
        axpy.call_into(
            &[2.0.into(), x.into(), (&y).into()],
            &mut [big.slice_mut(s![..;-1, ..;2]).into()],
        )
        .unwrap();
        assert_eq!(
            big.slice(s![..;-1, ..;2]),
            x.mapv(|v| v * 2.0) + &y,
            "{threads} threads"
        );
        assert!(
            big.slice(s![.., 1..;2]).iter().all(|&v| v == 0.0),
            "wrote outside the view"
        );

        // Reductions over strided views, exact (integers).
        let g = Array2::from_shape_fn((700, 1100), |(i, j)| ((i * 7 + j * 13) % 101) as i64);
        let v = g.slice(s![..;-1, ..;3]);
        let add = m.reduction("add").unwrap();
        assert_eq!(add.reduce(v).unwrap(), Scalar::I64(v.sum()));
        assert_eq!(
            add.reduce_axis(v, 0).unwrap(),
            DynArray::from(v.sum_axis(Axis(0)))
        );
        assert_eq!(
            add.reduce_axis(v.t(), 1).unwrap(),
            DynArray::from(v.sum_axis(Axis(0)))
        );
    }
}

#[test]
fn errors_inside_reductions_name_the_element() {
    let m = Jit::with_threads(2)
        .unwrap()
        .compile(
            "red.kl",
            "ufunc recip(x: i64) -> i64 { 100 / x }\n\
             reduce add(a: i64, b: i64) -> i64 identity 0 { a + b }\n\
             reduce ratio(a: i64, b: i64) -> i64 identity 1 { b / a }\n",
        )
        .unwrap();
    let add = m.reduction("add").unwrap();
    let recip = m.ufunc("recip").unwrap();
    let element = |r: Result<Scalar, Error>| match r {
        Err(Error::Element { index, error, .. }) => (index, error.kernel),
        other => panic!("expected an element error, got {other:?}"),
    };
    // In the fused map, on a big array (the failing element is in the last block).
    let mut x = Array1::from_elem(1_000_000, 1i64);
    x[999_999] = 0;
    assert_eq!(
        element(add.map_reduce(&recip, &[(&x).into()])),
        (vec![999_999], "recip".into())
    );
    // In the combine: acc = 1, 1/1, 2/1, 0/2, then 4/0 fails at [1, 1].
    let g = arr2(&[[1i64, 2], [0, 4], [5, 6]]);
    let ratio = m.reduction("ratio").unwrap();
    assert_eq!(element(ratio.reduce(&g)), (vec![1, 1], "ratio".into()));
    // Along axis 0, column 0 folds 1, 0, 5: 5/0 fails at [2, 0].
    assert_eq!(
        element(ratio.reduce_axis(&g, 0).map(|a| a.to_scalars()[0])),
        (vec![2, 0], "ratio".into())
    );
}

#[test]
fn fast_math_contracts_multiply_adds_and_the_default_does_not() {
    let src = "ufunc f(a: f64, b: f64, c: f64) -> f64 { a * b + c }\n\
               ufunc g(a: f64, b: f64, c: f64) -> f64 { c + a * b }";
    let args = [Scalar::F64(0.1), Scalar::F64(10.0), Scalar::F64(-1.0)];
    let exact = Jit::new().unwrap().compile("f.kl", src).unwrap();
    let fast = Jit::new()
        .unwrap()
        .with_fast_math(true)
        .compile("f.kl", src)
        .unwrap();
    let fused = Scalar::F64(0.1f64.mul_add(10.0, -1.0));
    assert_ne!(
        fused,
        Scalar::F64(0.0),
        "the inputs must tell the two apart"
    );
    for name in ["f", "g"] {
        assert_eq!(exact.call(name, &args).unwrap(), [Scalar::F64(0.0)]);
        assert_eq!(fast.call(name, &args).unwrap(), [fused]);
    }
    // The array path (SIMD loops) computes the same.
    let x = DynArray::from(Array1::from(vec![0.1f64; 9]));
    let out = fast
        .ufunc("f")
        .unwrap()
        .call(&[
            Arg::Array(x.view()),
            Arg::Scalar(Scalar::F64(10.0)),
            Arg::Scalar(Scalar::F64(-1.0)),
        ])
        .unwrap();
    let out = f64::unwrap(out.into_iter().next().unwrap()).unwrap();
    assert!(out.iter().all(|&v| Scalar::F64(v) == fused));
}

/// Issue 12 item 10: NaN bits used to depend on the executor and the layout (the SIMD `min`
/// gave a negative NaN, the interpreter a positive one; f32 `exp` and friends likewise).
/// Every NaN a kernel returns is now the canonical one, on every path: interpreter, SIMD
/// loop, scalar remainder, strided, broadcast scalar, reductions.
#[test]
fn nan_bits_are_canonical_on_every_executor_and_layout() {
    let src = "\
ufunc ops64(x: f64) -> (f64, f64, f64, f64, f64) { (min(x, 0.0), clamp(x, 0.0, 1.0), erfc(x), -x, x) }
ufunc ops32(x: f32) -> (f32, f32, f32, f32, f32, f32, f32) {
    (exp(x), exp2(x), expm1(x), cosh(x), min(x, 0.0), clamp(x, 0.0, 1.0), erfc(x))
}
reduce lo(a: f64, b: f64) -> f64 identity INF { min(a, b) }
reduce sum32(a: f32, b: f32) -> f32 identity 0.0 { a + b }
";
    let nans64 = [
        0x7ff8_0000_0000_0000u64,
        0xfff8_0000_0000_0000,
        0x7ff0_0000_0000_0001,
        0xfff4_5678_9abc_def0,
    ];
    let nans32 = [0x7fc0_0000u32, 0xffc0_0000, 0x7f80_0001, 0xffa1_2345];
    let x64 = Array1::from_shape_fn(67, |i| f64::from_bits(nans64[i % 4]));
    let x32 = Array1::from_shape_fn(67, |i| f32::from_bits(nans32[i % 4]));
    let canon64 = f64::NAN.to_bits();
    let canon32 = f32::NAN.to_bits();
    assert_eq!((canon64, canon32), (0x7ff8_0000_0000_0000, 0x7fc0_0000));
    let cpu = Jit::with_threads(2).unwrap();
    let interp = Jit::with_executor(
        Arc::new(kiln::Interpreter::new(u64::MAX)),
        Threads::new(2).unwrap(),
    )
    .unwrap();
    for jit in [&cpu, &interp] {
        let m = jit.compile("nan.kl", src).unwrap();
        let (ops64, ops32) = (m.ufunc("ops64").unwrap(), m.ufunc("ops32").unwrap());
        let layouts64 = [x64.view(), x64.slice(s![..;3]), x64.slice(s![..;-1])];
        for (l, x) in layouts64.iter().enumerate() {
            for (j, out) in ops64
                .call(&[Arg::from(x.view())])
                .unwrap()
                .iter()
                .enumerate()
            {
                for v in f64::view(out).unwrap() {
                    assert_eq!(
                        v.to_bits(),
                        canon64,
                        "{}: output {j}, layout {l}",
                        jit.backend()
                    );
                }
            }
        }
        let layouts32 = [x32.view(), x32.slice(s![1..;2])];
        for (l, x) in layouts32.iter().enumerate() {
            for (j, out) in ops32
                .call(&[Arg::from(x.view())])
                .unwrap()
                .iter()
                .enumerate()
            {
                for v in f32::view(out).unwrap() {
                    assert_eq!(
                        v.to_bits(),
                        canon32,
                        "{}: output {j}, layout {l}",
                        jit.backend()
                    );
                }
            }
        }
        // A broadcast scalar NaN.
        let scalar = ops64
            .call(&[Arg::Scalar(Scalar::F64(f64::from_bits(nans64[3])))])
            .unwrap();
        assert!(scalar
            .iter()
            .all(|a| f64::view(a).unwrap().iter().all(|v| v.to_bits() == canon64)));
        // Reductions: folded by lanes with the bare `min`/`+`, then made canonical.
        let big = Array1::from_shape_fn(100_003, |i| {
            if i == 77_777 {
                f64::from_bits(nans64[3])
            } else {
                i as f64
            }
        });
        let r = m.reduction("lo").unwrap().reduce(&big).unwrap();
        assert_eq!(r.to_bits(), canon64, "{}", jit.backend());
        let r = m.reduction("sum32").unwrap().reduce(&x32).unwrap();
        assert_eq!(r.to_bits() as u32, canon32, "{}", jit.backend());
        let cols = m
            .reduction("lo")
            .unwrap()
            .reduce_axis(&Array2::from_elem((3, 20), f64::from_bits(nans64[1])), 1)
            .unwrap();
        assert!(f64::view(&cols)
            .unwrap()
            .iter()
            .all(|v| v.to_bits() == canon64));
    }
}

/// Counts the kernels an executor is asked to run (for the script runner's shortcut).
struct Counting {
    inner: kiln::Interpreter,
    calls: std::sync::atomic::AtomicUsize,
}

impl kiln::Executor for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn wants_optimized(&self) -> bool {
        true
    }
    fn call(
        &self,
        m: &kiln::Module,
        id: kiln::KernelId,
        args: &[Scalar],
    ) -> Result<Vec<Scalar>, kiln::RuntimeError> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.call(m, id, args)
    }
    fn inner_loop<'m>(
        &'m self,
        m: &'m kiln::Module,
        id: kiln::KernelId,
        uniform: u64,
    ) -> Result<Arc<dyn kiln_runtime::InnerLoop + 'm>, kiln::RuntimeError> {
        self.inner.inner_loop(m, id, uniform)
    }
    fn reduce_loop<'m>(
        &'m self,
        m: &'m kiln::Module,
        map: Option<kiln::KernelId>,
        combine: kiln::KernelId,
    ) -> Result<Box<dyn kiln_runtime::ReduceLoop + 'm>, kiln::RuntimeError> {
        self.inner.reduce_loop(m, map, combine)
    }
}

/// Issue 12 item 16: a script of 100k `let x = <literal>;` took 16 s and 1.7 GB, compiling a
/// native function per statement. A statement whose value is a constant now runs no
/// kernel at all; one that reads a variable still does.
#[test]
fn constant_script_statements_run_no_kernel() {
    let src: String = (0..2000)
        .map(|i| format!("let x{i} = {i} * 2 + 1;\n"))
        .collect::<String>()
        + "let y = 2.0 * PI;\nlet z = x1999 + 1;\nprint(x1999, z, y);\n";
    let c = kiln::compile("lets.kl", &src).unwrap();
    let exec = Counting {
        inner: kiln::Interpreter::new(u64::MAX),
        calls: Default::default(),
    };
    let mut out = Vec::new();
    kiln::script::Evaluator::new(&c, &exec)
        .run(&mut out)
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("3999 4000 {:?}\n", 2.0 * std::f64::consts::PI)
    );
    // `z = x1999 + 1` and the print's three reads: four kernels, not 2004.
    assert_eq!(exec.calls.load(std::sync::atomic::Ordering::Relaxed), 4);
}
