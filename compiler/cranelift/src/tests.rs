//! Back-end tests on hand-written IR; the corpus (`tests/corpus.rs`) compares every case
//! with the interpreter.

use super::*;
use kiln_interp::ErrorKind;

fn module(text: &str) -> Module {
    let m = kiln_ir::parse_module(text).expect("IR text parses");
    kiln_ir::verify(&m).expect("IR verifies");
    m
}

const DIV: &str = "
fn div(i32, i32) -> i32 {
block0(v0: i32, v1: i32):
    v2: i32 = div v0, v1  ; @3:7
    return v2
}
fn rem(i64, i64) -> i64 {
block0(v0: i64, v1: i64):
    v2: i64 = rem v0, v1  ; @4:9
    return v2
}
fn udiv(u64, u64) -> u64 {
block0(v0: u64, v1: u64):
    v2: u64 = div v0, v1
    return v2
}
";

#[test]
fn integer_division_edges_never_trap_the_host() {
    let m = module(DIV);
    let cpu = Cpu::new().unwrap();
    let div = cpu
        .compile(&m, m.find("div").unwrap(), Shape::Scalar)
        .unwrap();
    let call = |a, b| div.call(&[Scalar::I32(a), Scalar::I32(b)]);
    assert_eq!(call(-7, 2), Ok(vec![Scalar::I32(-3)]));
    assert_eq!(call(i32::MIN, -1), Ok(vec![Scalar::I32(i32::MIN)]));
    let e = call(1, 0).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DivisionByZero);
    assert_eq!(e.kernel, "div");
    assert_eq!(e.loc.map(|l| (l.line, l.col)), Some((3, 7)));

    let rem = cpu
        .compile(&m, m.find("rem").unwrap(), Shape::Scalar)
        .unwrap();
    assert_eq!(
        rem.call(&[Scalar::I64(i64::MIN), Scalar::I64(-1)]),
        Ok(vec![Scalar::I64(0)])
    );
    assert_eq!(
        rem.call(&[Scalar::I64(-7), Scalar::I64(2)]),
        Ok(vec![Scalar::I64(-1)])
    );
    let e = rem.call(&[Scalar::I64(5), Scalar::I64(0)]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::RemainderByZero);

    let udiv = cpu
        .compile(&m, m.find("udiv").unwrap(), Shape::Scalar)
        .unwrap();
    assert_eq!(
        udiv.call(&[Scalar::U64(u64::MAX), Scalar::U64(2)]),
        Ok(vec![Scalar::U64(u64::MAX / 2)])
    );
}

const AXPY: &str = "
ufunc axpy(f64, f64, f64) -> f64 {
block0(v0: f64, v1: f64, v2: f64):
    v3: f64 = mul v0, v1
    v4: f64 = add v3, v2
    return v4
}
ufunc halve(i64) -> i64 {
block0(v0: i64):
    v1: i64 = const 2
    v2: i64 = div v1, v0  ; @7:1
    return v2
}
reduce add(f64, f64) -> f64 {
block0(v0: f64, v1: f64):
    v2: f64 = add v0, v1
    return v2
}
ufunc sq(f64) -> f64 {
block0(v0: f64):
    v1: f64 = mul v0, v0
    return v1
}
";

#[test]
fn loops_run_contiguous_and_strided_operands() {
    let m = module(AXPY);
    let cpu = Cpu::new().unwrap();
    let f = cpu
        .compile(&m, m.find("axpy").unwrap(), Shape::Loop { uniform: 0 })
        .unwrap();
    let a = [2.0f64];
    let x: Vec<f64> = (0..10).map(|i| i as f64).collect();
    let y = [1.0f64; 10];
    let mut out = [0.0f64; 10];
    let ptrs = [
        a.as_ptr() as *mut u8,
        x.as_ptr() as *mut u8,
        y.as_ptr() as *mut u8,
        out.as_mut_ptr() as *mut u8,
    ];
    // SAFETY: 10 elements of each operand (the scalar has stride 0).
    unsafe { f.run_loop(10, &ptrs, &[0, 8, 8, 8]) }.unwrap();
    let want: Vec<f64> = x.iter().map(|v| 2.0 * v + 1.0).collect();
    assert_eq!(out.to_vec(), want);
    // Every other element: the strided variant.
    let mut out2 = vec![0.0f64; 10];
    let ptrs = [
        x.as_ptr() as *mut u8,
        x.as_ptr() as *mut u8,
        y.as_ptr() as *mut u8,
        out2.as_mut_ptr() as *mut u8,
    ];
    // SAFETY: 5 elements at stride 16 fit in 10.
    unsafe { f.run_loop(5, &ptrs, &[16, 16, 16, 16]) }.unwrap();
    for i in 0..5 {
        assert_eq!(out2[2 * i], x[2 * i] * x[2 * i] + 1.0);
        assert_eq!(out2[2 * i + 1], 0.0, "untouched between strides");
    }
}

#[test]
fn loop_errors_report_the_element() {
    let m = module(AXPY);
    let cpu = Cpu::new().unwrap();
    let f = cpu
        .compile(&m, m.find("halve").unwrap(), Shape::Loop { uniform: 0 })
        .unwrap();
    let x = [1i64, 2, 0, 4];
    let mut out = [0i64; 4];
    let ptrs = [x.as_ptr() as *mut u8, out.as_mut_ptr() as *mut u8];
    // SAFETY: four elements each.
    let (i, e) = unsafe { f.run_loop(4, &ptrs, &[8, 8]) }.unwrap_err();
    assert_eq!(i, 2);
    assert_eq!(e.kind, ErrorKind::DivisionByZero);
    assert_eq!(e.kernel, "halve");
    assert_eq!(&out[..2], &[2, 1]);
}

#[test]
fn reductions_fold_with_and_without_a_map() {
    let m = module(AXPY);
    let cpu = Cpu::new().unwrap();
    let add = m.find("add").unwrap();
    let x: Vec<f64> = (1..=4).map(|i| i as f64).collect();
    let ptrs = [x.as_ptr() as *mut u8];
    let plain = cpu
        .compile(&m, add, Shape::Reduce { combine: add })
        .unwrap();
    // SAFETY: four elements.
    let s = unsafe { plain.run_reduce(Scalar::F64(0.5), 4, &ptrs, &[8]) }.unwrap();
    assert_eq!(s, Scalar::F64(10.5));
    let sq = m.find("sq").unwrap();
    let fused = cpu.compile(&m, sq, Shape::Reduce { combine: add }).unwrap();
    // SAFETY: four elements.
    let s = unsafe { fused.run_reduce(Scalar::F64(0.0), 4, &ptrs, &[8]) }.unwrap();
    assert_eq!(s, Scalar::F64(30.0));
}

#[test]
fn cache_reuses_identical_kernels_and_separates_different_ones() {
    let cpu = Cpu::new().unwrap();
    let m1 = module(AXPY);
    let id = m1.find("sq").unwrap();
    let a = cpu.compile(&m1, id, Shape::Loop { uniform: 0 }).unwrap();
    let b = cpu
        .compile(&m1.clone(), id, Shape::Loop { uniform: 0 })
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b), "same IR, same code");
    let m2 = module(&AXPY.replace("v1: f64 = mul v0, v0", "v1: f64 = add v0, v0"));
    let c = cpu
        .compile(&m2, m2.find("sq").unwrap(), Shape::Loop { uniform: 0 })
        .unwrap();
    assert!(!Arc::ptr_eq(&a, &c), "a changed body is a different entry");
    let d = cpu.compile(&m1, id, Shape::Scalar).unwrap();
    assert!(
        !Arc::ptr_eq(&a, &d),
        "a different shape is a different entry"
    );
    assert_eq!(cpu.cached(), 3);
}

#[test]
fn calls_left_by_the_optimiser_run_out_of_line() {
    let m = module(
        "
fn inner(i32) -> i32 {
block0(v0: i32):
    v1: i32 = const 10
    v2: i32 = div v1, v0  ; @2:3
    return v2
}
fn outer(i32) -> (i32, i32) {
block0(v0: i32):
    v1: i32 = call inner(v0)
    v2: i32 = add v1, v0
    return v1, v2
}
",
    );
    let cpu = Cpu::new().unwrap();
    let f = cpu
        .compile(&m, m.find("outer").unwrap(), Shape::Scalar)
        .unwrap();
    assert_eq!(
        f.call(&[Scalar::I32(5)]),
        Ok(vec![Scalar::I32(2), Scalar::I32(7)])
    );
    let e = f.call(&[Scalar::I32(0)]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DivisionByZero);
    assert_eq!(e.kernel, "outer", "errors name the called kernel");
    assert_eq!(e.loc.map(|l| l.line), Some(2));
    let listing = cpu
        .listing(&m, m.find("outer").unwrap(), Shape::Scalar)
        .unwrap();
    assert!(listing.clif.contains("call fn"), "{}", listing.clif);
    assert!(!listing.asm.is_empty());
}

#[test]
fn uniform_inputs_are_read_once_and_invariant_work_hoisted() {
    let m = module(
        "
ufunc scaled(f64, f64) -> f64 {
block0(v0: f64, v1: f64):
    v2: f64 = exp v1
    v3: f64 = mul v0, v2
    return v3
}
",
    );
    let cpu = Cpu::new().unwrap();
    let id = m.find("scaled").unwrap();
    let f = cpu.compile(&m, id, Shape::Loop { uniform: 0b10 }).unwrap();
    let x: Vec<f64> = (0..6).map(|i| i as f64).collect();
    let s = [1.5f64];
    let mut out = vec![0.0f64; 6];
    let ptrs = [
        x.as_ptr() as *mut u8,
        s.as_ptr() as *mut u8,
        out.as_mut_ptr() as *mut u8,
    ];
    // SAFETY: six elements of x and out; the uniform input is read once.
    unsafe { f.run_loop(6, &ptrs, &[8, 0, 8]) }.unwrap();
    let want: Vec<f64> = x.iter().map(|v| v * libm::exp(1.5)).collect();
    assert_eq!(out, want);
    // The call of `exp` sits before the loop: the listing's loop blocks do not call it.
    let listing = cpu.listing(&m, id, Shape::Loop { uniform: 0b10 }).unwrap();
    assert_eq!(
        listing.clif.matches("call fn").count(),
        1,
        "{}",
        listing.clif
    );
    // Empty calls never read a uniform operand (its pointer may dangle).
    // SAFETY: n = 0 reads nothing.
    unsafe { f.run_loop(0, &[std::ptr::null_mut(); 3], &[8, 0, 8]) }.unwrap();
}

#[test]
fn cache_keys_compare_constants_by_bits() {
    let cpu = Cpu::new().unwrap();
    let text = "
fn nan() -> f64 {
block0:
    v0: f64 = const NaN
    return v0
}
fn zero(f64) -> f64 {
block0(v0: f64):
    v1: f64 = const 0.0
    v2: f64 = add v0, v1
    return v2
}
";
    let m = module(text);
    let a = cpu
        .compile(&m, m.find("nan").unwrap(), Shape::Scalar)
        .unwrap();
    let b = cpu
        .compile(&m, m.find("nan").unwrap(), Shape::Scalar)
        .unwrap();
    assert!(
        Arc::ptr_eq(&a, &b),
        "NaN == NaN for the cache, unlike for f64"
    );
    let m2 = module(&text.replace("const 0.0", "const -0.0"));
    let c = cpu
        .compile(&m, m.find("zero").unwrap(), Shape::Scalar)
        .unwrap();
    let d = cpu
        .compile(&m2, m2.find("zero").unwrap(), Shape::Scalar)
        .unwrap();
    assert!(!Arc::ptr_eq(&c, &d), "0.0 and -0.0 differ");
    assert_eq!(
        d.call(&[Scalar::F64(-0.0)]).unwrap()[0].to_bits(),
        (-0.0f64).to_bits()
    );
    assert_eq!(
        c.call(&[Scalar::F64(-0.0)]).unwrap()[0].to_bits(),
        0.0f64.to_bits()
    );
}
