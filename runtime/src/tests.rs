//! Runtime tests on both executors: broadcasting, strides, in-place, errors, reductions.

use super::*;
use ndarray::{arr1, arr2, Array1, Array2, ArrayD, Axis, IxDyn};

const SRC: &str = "
ufunc axpy(f64, f64, f64) -> f64 {
block0(v0: f64, v1: f64, v2: f64):
    v3: f64 = mul v0, v1
    v4: f64 = add v3, v2
    return v4
}
ufunc inv(i64) -> i64 {
block0(v0: i64):
    v1: i64 = const 100
    v2: i64 = div v1, v0  ; @2:5
    return v2
}
ufunc divmod(i32, i32) -> (i32, i32) {
block0(v0: i32, v1: i32):
    v2: i32 = div v0, v1
    v3: i32 = rem v0, v1
    return v2, v3
}
reduce add(f64, f64) -> f64 {
block0(v0: f64, v1: f64):
    v2: f64 = add v0, v1
    return v2
}
identity add_id() -> f64 {
block0:
    v0: f64 = const 0.0
    return v0
}
ufunc sq(f64) -> f64 {
block0(v0: f64):
    v1: f64 = mul v0, v0
    return v1
}
";

fn setup() -> (Module, Vec<Box<dyn Executor>>) {
    let m = kiln_ir::parse_module(SRC).expect("parses");
    kiln_ir::verify(&m).expect("verifies");
    let execs: Vec<Box<dyn Executor>> = vec![
        Box::new(Interpreter::new(1000)),
        Box::new(Cpu::new().expect("host supported")),
    ];
    (m, execs)
}

fn f64s(a: &DynArray) -> ArrayD<f64> {
    f64::unwrap(a.clone()).expect("f64 array")
}

#[test]
fn broadcasting_scalars_rows_and_columns() {
    let (m, execs) = setup();
    let id = m.find("axpy").unwrap();
    let threads = Threads::new(2).unwrap();
    let col = arr2(&[[1.0], [2.0], [3.0]]);
    let row = arr1(&[10.0, 20.0]);
    for ex in &execs {
        let out = map(
            ex.as_ref(),
            &m,
            id,
            &[Arg::from(2.0f64), (&col).into(), (&row).into()],
            None,
            &threads,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        let want = arr2(&[[12.0, 22.0], [14.0, 24.0], [16.0, 26.0]]).into_dyn();
        assert_eq!(f64s(&out[0]), want, "{}", ex.name());
    }
}

#[test]
fn large_strided_and_in_place_calls_agree_with_scalar_code() {
    let (m, execs) = setup();
    let id = m.find("axpy").unwrap();
    let threads = Threads::new(3).unwrap();
    let n = 700_001; // several chunks, odd length
    let x = Array1::from_shape_fn(n, |i| i as f64 * 0.5);
    let y2 = Array2::from_shape_fn((n, 2), |(i, j)| (i * 2 + j) as f64);
    let y = y2.column(1); // stride 2
    let want: Array1<f64> = x.iter().zip(y.iter()).map(|(a, b)| 3.0 * a + b).collect();
    for ex in &execs[1..] {
        let out = map(
            ex.as_ref(),
            &m,
            id,
            &[Arg::from(3.0f64), (&x).into(), y.into()],
            None,
            &threads,
        )
        .unwrap();
        assert_eq!(f64s(&out[0]), want.clone().into_dyn());
        // In place: z = 3 * x + z.
        let mut z = y.to_owned();
        map(
            ex.as_ref(),
            &m,
            id,
            &[Arg::from(3.0f64), (&x).into(), Arg::Out(0)],
            Some(&mut [(&mut z).into()]),
            &threads,
        )
        .unwrap();
        assert_eq!(z, want);
    }
    // A transposed (Fortran-order) operand.
    let a = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f64);
    let t = a.t();
    for ex in &execs {
        let out = map(
            ex.as_ref(),
            &m,
            id,
            &[Arg::from(1.0f64), t.into(), 0.0f64.into()],
            None,
            &threads,
        )
        .unwrap();
        assert_eq!(f64s(&out[0]), t.to_owned().into_dyn());
    }
}

#[test]
fn errors_name_the_first_failing_element_and_leave_inputs_alone() {
    let (m, execs) = setup();
    let id = m.find("inv").unwrap();
    let threads = Threads::new(2).unwrap();
    let mut x = Array1::from_elem(600_000, 5i64);
    x[550_000] = 0;
    x[400_001] = 0;
    let before = x.clone();
    for ex in &execs {
        let e = map(ex.as_ref(), &m, id, &[(&x).into()], None, &threads).unwrap_err();
        match e {
            Error::Kernel { error, index } => {
                assert_eq!(index, vec![400_001], "{}", ex.name());
                assert_eq!(error.kind, kiln_interp::ErrorKind::DivisionByZero);
                assert_eq!(error.loc.map(|l| l.line), Some(2));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(x, before);
}

#[test]
fn usage_errors_for_shapes_dtypes_and_outputs() {
    let (m, execs) = setup();
    let id = m.find("axpy").unwrap();
    let threads = Threads::new(1).unwrap();
    let a = Array1::<f64>::zeros(3);
    let b = Array1::<f64>::zeros(4);
    let i = Array1::<i64>::zeros(3);
    let ex = execs[1].as_ref();
    let err = |args: &[Arg]| {
        map(ex, &m, id, args, None, &threads)
            .unwrap_err()
            .to_string()
    };
    assert!(err(&[(&a).into(), (&a).into(), (&b).into()]).contains("cannot be broadcast"));
    assert!(err(&[(&a).into(), (&i).into(), (&a).into()]).contains("must be f64, not i64"));
    assert!(err(&[(&a).into(), (&a).into()]).contains("takes 3 arguments"));
    let mut small = Array1::<f64>::zeros(2);
    let e = map(
        ex,
        &m,
        id,
        &[(&a).into(), (&a).into(), (&a).into()],
        Some(&mut [(&mut small).into()]),
        &threads,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("has shape [2]"), "{e}");
}

#[test]
fn tuple_outputs_and_empty_arrays() {
    let (m, execs) = setup();
    let id = m.find("divmod").unwrap();
    let threads = Threads::new(2).unwrap();
    let a = arr1(&[7i32, -7, i32::MIN]);
    for ex in &execs {
        let out = map(
            ex.as_ref(),
            &m,
            id,
            &[(&a).into(), (-2i32).into()],
            None,
            &threads,
        )
        .unwrap();
        assert_eq!(
            i32::unwrap(out[0].clone()).unwrap(),
            arr1(&[-3, 3, 1 << 30]).into_dyn()
        );
        assert_eq!(
            i32::unwrap(out[1].clone()).unwrap(),
            arr1(&[1, -1, 0]).into_dyn()
        );
        let empty = Array2::<i32>::zeros((0, 3));
        let out = map(
            ex.as_ref(),
            &m,
            id,
            &[(&empty).into(), 1i32.into()],
            None,
            &threads,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[0, 3]);
    }
}

#[test]
fn reductions_are_identical_for_any_thread_count() {
    let (m, execs) = setup();
    let add = m.find("add").unwrap();
    let id = m.find("add_id").unwrap();
    let sq = m.find("sq").unwrap();
    let n = 1_000_003;
    let x = Array1::from_shape_fn(n, |i| ((i * 7919) % 1000) as f64 * 1e-3 + 1e-9 * i as f64);
    let cpu = execs[1].as_ref();
    let one = reduce_all(
        cpu,
        &m,
        add,
        id,
        None,
        &[(&x).into()],
        &Threads::new(1).unwrap(),
    )
    .unwrap();
    for t in [2, 3, 4] {
        let many = reduce_all(
            cpu,
            &m,
            add,
            id,
            None,
            &[(&x).into()],
            &Threads::new(t).unwrap(),
        )
        .unwrap();
        assert_eq!(one.to_bits(), many.to_bits(), "{t} threads");
    }
    let Scalar::F64(s) = one else { panic!() };
    let serial: f64 = x.iter().sum();
    assert!((s - serial).abs() <= 1e-9 * serial.abs());
    // The interpreter folds the same blocks in the same tree.
    let small = x.slice(ndarray::s![..200_000]);
    let a = reduce_all(
        execs[0].as_ref(),
        &m,
        add,
        id,
        None,
        &[small.into()],
        &Threads::new(2).unwrap(),
    )
    .unwrap();
    let b = reduce_all(
        cpu,
        &m,
        add,
        id,
        None,
        &[small.into()],
        &Threads::new(2).unwrap(),
    )
    .unwrap();
    assert_eq!(a.to_bits(), b.to_bits());
    // Fused map-reduce: a sum of squares.
    let v = arr1(&[1.0, 2.0, 3.0]);
    for ex in &execs {
        let s = reduce_all(
            ex.as_ref(),
            &m,
            add,
            id,
            Some(sq),
            &[(&v).into()],
            &Threads::new(2).unwrap(),
        )
        .unwrap();
        assert_eq!(s, Scalar::F64(14.0));
        let empty = Array1::<f64>::zeros(0);
        let s = reduce_all(
            ex.as_ref(),
            &m,
            add,
            id,
            None,
            &[(&empty).into()],
            &Threads::new(2).unwrap(),
        )
        .unwrap();
        assert_eq!(s, Scalar::F64(0.0), "empty: the identity");
    }
}

#[test]
fn reductions_along_an_axis() {
    let (m, execs) = setup();
    let add = m.find("add").unwrap();
    let id = m.find("add_id").unwrap();
    let a = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f64);
    for ex in &execs {
        for axis in 0..2 {
            let r = reduce_axis(
                ex.as_ref(),
                &m,
                add,
                id,
                &a.view().into_dyn().into(),
                axis,
                &Threads::new(2).unwrap(),
            )
            .unwrap();
            assert_eq!(f64s(&r), a.sum_axis(Axis(axis)).into_dyn(), "axis {axis}");
        }
        let e = reduce_axis(
            ex.as_ref(),
            &m,
            add,
            id,
            &a.view().into_dyn().into(),
            2,
            &Threads::new(2).unwrap(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("out of range"));
    }
    // Zero-stride (broadcast) input.
    let b = arr1(&[1.5]).broadcast(IxDyn(&[4, 5])).unwrap().to_owned();
    let r = reduce_axis(
        execs[1].as_ref(),
        &m,
        add,
        id,
        &b.view().into(),
        1,
        &Threads::new(2).unwrap(),
    )
    .unwrap();
    assert_eq!(f64s(&r), ArrayD::from_elem(IxDyn(&[4]), 7.5));
}

#[test]
fn arguments_broadcast_up_to_a_given_output() {
    let (m, execs) = setup();
    let id = m.find("axpy").unwrap();
    let threads = Threads::new(2).unwrap();
    let row = arr1(&[1.0, 2.0]);
    for ex in &execs {
        let mut out = Array2::<f64>::zeros((3, 2));
        map(
            ex.as_ref(),
            &m,
            id,
            &[2.0f64.into(), (&row).into(), 0.5f64.into()],
            Some(&mut [(&mut out).into()]),
            &threads,
        )
        .unwrap();
        assert_eq!(out, arr2(&[[2.5, 4.5], [2.5, 4.5], [2.5, 4.5]]));
        // An output smaller than the arguments' shape is still an error.
        let mut small = Array1::<f64>::zeros(1);
        let e = map(
            ex.as_ref(),
            &m,
            id,
            &[2.0f64.into(), (&row).into(), 0.5f64.into()],
            Some(&mut [(&mut small).into()]),
            &threads,
        )
        .unwrap_err();
        assert!(e.to_string().contains("broadcast to [2]"), "{e}");
    }
}

/// Issue 12 item 3: an empty array can have a huge other dimension; its reduction along
/// the empty axis is a huge array of identities. That must be a clear error (it aborted
/// the process with a 560 GB allocation, or panicked with "capacity overflow"), and a
/// reduction of many short lanes must not hold a partial result per lane at once.
#[test]
fn axis_reductions_of_empty_arrays_allocate_what_they_return() {
    let (m, execs) = setup();
    let add = m.find("add").unwrap();
    let id = m.find("add_id").unwrap();
    let threads = Threads::new(2).unwrap();
    let none: [f64; 0] = [];
    for ex in &execs {
        for (shape, axis) in [
            (vec![10_000_000_000usize, 0], 1),
            (vec![0, isize::MAX as usize], 0),
            (vec![0, 1 << 40, 1 << 20], 0),
        ] {
            let v = ndarray::ArrayViewD::from_shape(IxDyn(&shape), &none).expect("empty view");
            let e = reduce_axis(ex.as_ref(), &m, add, id, &v.into(), axis, &threads).unwrap_err();
            assert!(
                matches!(&e, Error::Usage(msg) if msg.contains("cannot allocate the result")),
                "{shape:?} axis {axis}: {e}"
            );
        }
        // Small ones give the identity per lane, or nothing.
        let v = ndarray::ArrayViewD::from_shape(IxDyn(&[3, 0]), &none).expect("empty view");
        let r = reduce_axis(ex.as_ref(), &m, add, id, &v.view().into(), 1, &threads).unwrap();
        assert_eq!(f64s(&r), ArrayD::from_elem(IxDyn(&[3]), 0.0));
        let r = reduce_axis(ex.as_ref(), &m, add, id, &v.into(), 0, &threads).unwrap();
        assert_eq!(f64s(&r).shape(), &[0]);
    }
    // Many lanes, each one element: batched, and still the right sums.
    let a = Array2::from_shape_fn((200_000, 1), |(i, _)| i as f64);
    let r = reduce_axis(
        execs[1].as_ref(),
        &m,
        add,
        id,
        &a.view().into_dyn().into(),
        1,
        &threads,
    )
    .unwrap();
    assert_eq!(f64s(&r), a.column(0).to_owned().into_dyn());
}

/// A reduction whose identity fails reports the identity, not an element.
#[test]
fn a_failing_identity_is_not_an_element_error() {
    let src = "reduce add(i64, i64) -> i64 {\nblock0(v0: i64, v1: i64):\n    v2: i64 = add v0, v1\n    return v2\n}\nidentity bad() -> i64 {\nblock0:\n    v0: i64 = const 1\n    v1: i64 = const 0\n    v2: i64 = div v0, v1  ; @3:7\n    return v2\n}\n";
    let m = kiln_ir::parse_module(src).expect("parses");
    kiln_ir::verify(&m).expect("verifies");
    let x = arr1(&[1i64, 2, 3]);
    for ex in [
        &Interpreter::new(1000) as &dyn Executor,
        &Cpu::new().unwrap(),
    ] {
        let (add, bad) = (m.find("add").unwrap(), m.find("bad").unwrap());
        let threads = Threads::new(1).unwrap();
        let e = reduce_all(ex, &m, add, bad, None, &[(&x).into()], &threads).unwrap_err();
        assert!(
            matches!(&e, Error::Call(r) if r.kind == ErrorKind::DivisionByZero),
            "{e:?}"
        );
        let e = reduce_axis(ex, &m, add, bad, &x.view().into_dyn().into(), 0, &threads);
        let e = e.unwrap_err();
        assert!(matches!(&e, Error::Call(_)), "{e:?}");
    }
}
