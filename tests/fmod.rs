//! `%` on floats is the math library's `fmod`, written in Kiln (kernels/math/fmod.kl): it must
//! be exact, so it must equal Rust's `%` (C's `fmod`) bit for bit (any NaN for a NaN) on every
//! input — random bit patterns (all exponents, subnormals, infinities, NaNs) and
//! random pairs of nearby magnitudes, through the SIMD loop and the scalar path.

use kiln::Jit;
use ndarray::ArrayD;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const N: usize = 1 << 16;

#[test]
fn float_remainder_is_exact_f64() {
    let mut s = 7;
    let mut xs = Vec::with_capacity(2 * N);
    let mut ys = Vec::with_capacity(2 * N);
    for i in 0..N {
        xs.push(f64::from_bits(splitmix(&mut s)));
        ys.push(f64::from_bits(splitmix(&mut s)));
        // Nearby magnitudes, where the shift-and-subtract loop runs longest or not at all.
        let x = f64::from_bits(splitmix(&mut s) >> 2);
        let shift = (i % 70) as u64;
        xs.push(x);
        ys.push(f64::from_bits(
            x.to_bits().saturating_sub(shift << 52) ^ (i as u64 & 0xfff),
        ));
    }
    let specials = [
        0.0,
        -0.0,
        1.0,
        -1.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        5e-324,
        f64::MAX,
    ];
    for &a in &specials {
        for &b in &specials {
            xs.push(a);
            ys.push(b);
        }
    }
    let m = Jit::new()
        .unwrap()
        .compile("rem", "ufunc r(x: f64, y: f64) -> f64 { x % y }")
        .unwrap();
    let r = m
        .ufunc("r")
        .unwrap()
        .typed::<f64>(&[kiln::ScalarType::F64; 2])
        .unwrap();
    let x = ArrayD::from_shape_vec(vec![xs.len()], xs.clone()).unwrap();
    let y = ArrayD::from_shape_vec(vec![ys.len()], ys.clone()).unwrap();
    let got = r.call(&[(&x).into(), (&y).into()]).unwrap();
    for ((&a, &b), &g) in xs.iter().zip(&ys).zip(got.iter()) {
        // Rust's `%` on floats is C's `fmod`.
        let want = a % b;
        assert!(
            (want.is_nan() && g.is_nan()) || want.to_bits() == g.to_bits(),
            "{a:e} % {b:e}: Kiln {g:e}, C {want:e}"
        );
    }
}

#[test]
fn float_remainder_is_exact_f32() {
    let mut s = 11;
    let mut xs = Vec::with_capacity(N);
    let mut ys = Vec::with_capacity(N);
    for _ in 0..N {
        xs.push(f32::from_bits(splitmix(&mut s) as u32));
        ys.push(f32::from_bits((splitmix(&mut s) >> 32) as u32 >> (s % 3)));
    }
    let m = Jit::new()
        .unwrap()
        .compile("rem", "ufunc r(x: f32, y: f32) -> f32 { x % y }")
        .unwrap();
    let r = m
        .ufunc("r")
        .unwrap()
        .typed::<f32>(&[kiln::ScalarType::F32; 2])
        .unwrap();
    let x = ArrayD::from_shape_vec(vec![xs.len()], xs.clone()).unwrap();
    let y = ArrayD::from_shape_vec(vec![ys.len()], ys.clone()).unwrap();
    let got = r.call(&[(&x).into(), (&y).into()]).unwrap();
    for ((&a, &b), &g) in xs.iter().zip(&ys).zip(got.iter()) {
        let want = a % b;
        assert!(
            (want.is_nan() && g.is_nan()) || want.to_bits() == g.to_bits(),
            "{a:e} % {b:e}: Kiln {g:e}, C {want:e}"
        );
    }
}
