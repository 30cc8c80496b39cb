//! The benchmark's kernels, their input data and plain-Rust f64 references.
//!
//! Everything here follows `bench/peers/README.md` (the contract shared with the Python
//! peers): the kernel names, dtypes, `linspace` inputs, constants and bytes per element.

use kiln::{Element, ScalarType};
use ndarray::Array1;

/// `a` of saxpy.
pub const SAXPY_A: f64 = 2.0;
/// Horner coefficients of poly4, c0 first.
pub const POLY: [f64; 5] = [1.0, 0.5, -0.25, 0.125, -0.0625];
/// Black-Scholes strike, time, rate and volatility (broadcast scalars).
pub const BS_K: f64 = 100.0;
/// Time to expiry in years.
pub const BS_T: f64 = 1.0;
/// Risk-free rate.
pub const BS_R: f64 = 0.02;
/// Volatility.
pub const BS_V: f64 = 0.3;

/// One of the benchmark's kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Saxpy,
    Poly4,
    BlackScholes,
    Transcend,
    SumSq,
}

/// Whether the output is preallocated (`out`) or allocated by each call (`alloc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Out,
    Alloc,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Out => "out",
            Mode::Alloc => "alloc",
        }
    }
}

/// The kernels in the order they run (and the peers run them).
pub const KERNELS: [Kernel; 5] = [
    Kernel::Saxpy,
    Kernel::Poly4,
    Kernel::BlackScholes,
    Kernel::Transcend,
    Kernel::SumSq,
];

impl Kernel {
    /// The name shared with the peers (`peers.py --kernels`).
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Saxpy => "saxpy",
            Kernel::Poly4 => "poly4",
            Kernel::BlackScholes => "blackscholes",
            Kernel::Transcend => "transcend",
            Kernel::SumSq => "sumsq",
        }
    }

    /// The ufunc of `kernels.kl` that computes it (for sumsq: the map before the sum).
    pub fn ufunc(self) -> &'static str {
        match self {
            Kernel::SumSq => "sq",
            other => other.name(),
        }
    }

    /// The dtypes it runs in.
    pub fn dtypes(self) -> &'static [ScalarType] {
        match self {
            Kernel::Saxpy => &[ScalarType::F32, ScalarType::F64],
            _ => &[ScalarType::F64],
        }
    }

    /// The modes it runs in: a reduction has no output array, so only `out`.
    pub fn modes(self) -> &'static [Mode] {
        match self {
            Kernel::SumSq => &[Mode::Out],
            _ => &[Mode::Out, Mode::Alloc],
        }
    }

    /// Arrays read and written per element, each of the dtype's size.
    pub fn words(self) -> usize {
        match self {
            Kernel::Saxpy => 3,
            Kernel::SumSq => 1,
            _ => 2,
        }
    }

    /// The `linspace(a, b, n)` ranges of its array inputs.
    pub fn ranges(self) -> &'static [(f64, f64)] {
        match self {
            Kernel::Saxpy => &[(0.0, 1.0), (1.0, 2.0)],
            Kernel::Poly4 | Kernel::SumSq => &[(-1.0, 1.0)],
            Kernel::BlackScholes => &[(50.0, 150.0)],
            Kernel::Transcend => &[(-3.0, 3.0)],
        }
    }

    /// The dtypes of the ufunc's parameters when the arrays are `dtype`.
    pub fn param_dtypes(self, dtype: ScalarType) -> Vec<ScalarType> {
        match self {
            Kernel::Saxpy => vec![dtype; 3],
            Kernel::BlackScholes => vec![ScalarType::F64; 5],
            _ => vec![dtype],
        }
    }

    /// The ufunc's arguments: the arrays `inputs` with the kernel's scalars.
    pub fn args<'a, T: Real>(self, inputs: &'a [Array1<T>]) -> Vec<kiln::Arg<'a>> {
        let arrays = inputs
            .iter()
            .map(|a| kiln::Arg::Array(T::wrap_view(a.view().into_dyn())));
        match self {
            Kernel::Saxpy => std::iter::once(kiln::Arg::Scalar(T::from_f64(SAXPY_A).to_scalar()))
                .chain(arrays)
                .collect(),
            Kernel::BlackScholes => arrays
                .chain([BS_K, BS_T, BS_R, BS_V].map(kiln::Arg::from))
                .collect(),
            _ => arrays.collect(),
        }
    }

    /// The result computed in plain Rust f64 from `inputs` (converted to f64): an array,
    /// or for sumsq one value. Transcendentals come from the platform's libm (`f64::exp`,
    /// ...) and `erfc` from the `libm` crate.
    pub fn reference(self, inputs: &[Vec<f64>]) -> Vec<f64> {
        let x = &inputs[0];
        match self {
            Kernel::Saxpy => x
                .iter()
                .zip(&inputs[1])
                .map(|(x, y)| SAXPY_A * x + y)
                .collect(),
            Kernel::Poly4 => x
                .iter()
                .map(|&x| (((POLY[4] * x + POLY[3]) * x + POLY[2]) * x + POLY[1]) * x + POLY[0])
                .collect(),
            Kernel::BlackScholes => x.iter().map(|&s| black_scholes(s)).collect(),
            Kernel::Transcend => x
                .iter()
                .map(|&x| (-x * x).exp() * x.sin() + x.abs().ln_1p())
                .collect(),
            Kernel::SumSq => vec![x.iter().map(|x| x * x).sum()],
        }
    }
}

/// The call price of `kernels.kl`'s blackscholes with the benchmark's k, t, r, v.
fn black_scholes(s: f64) -> f64 {
    let ncdf = |x: f64| 0.5 * libm::erfc(-x * std::f64::consts::FRAC_1_SQRT_2);
    let sqrt_t = BS_T.sqrt();
    let d1 = ((s / BS_K).ln() + (BS_R + 0.5 * BS_V * BS_V) * BS_T) / (BS_V * sqrt_t);
    let d2 = d1 - BS_V * sqrt_t;
    s * ncdf(d1) - BS_K * (-BS_R * BS_T).exp() * ncdf(d2)
}

/// The float dtypes the benchmark runs in.
pub trait Real: Element {
    /// Rounds an f64 to this type (round to nearest even).
    fn from_f64(v: f64) -> Self;
    /// Widens to f64 (exact).
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Real for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// `numpy.linspace(a, b, n, dtype=T)`, endpoint included: point `i` is computed in f64
/// as NumPy does (`i * step + a` with `step = (b - a) / (n - 1)`, the last point exactly
/// `b`) and then rounded to `T`.
pub fn linspace<T: Real>(a: f64, b: f64, n: usize) -> Array1<T> {
    let step = if n > 1 { (b - a) / (n - 1) as f64 } else { 0.0 };
    // Huge pages, as NumPy gives its arrays (and Kiln its outputs): the peers read their
    // inputs without a TLB miss every 4 KiB, and so must Kiln.
    let mut v = kiln::vec_with_huge_pages(n);
    v.extend((0..n).map(|i| {
        let v = if n > 1 && i == n - 1 {
            b
        } else {
            i as f64 * step + a
        };
        T::from_f64(v)
    }));
    Array1::from_vec(v)
}

/// `n` zeros in memory backed by huge pages (see [`linspace`]).
pub fn zeros(n: usize) -> Array1<f64> {
    let mut v = kiln::vec_with_huge_pages(n);
    v.resize(n, 0.0);
    Array1::from_vec(v)
}

/// The normwise relative error `max|res - ref| / max|ref|` (NaN anywhere gives NaN).
pub fn relative_error(result: impl Iterator<Item = f64>, reference: &[f64]) -> f64 {
    let mut err = 0.0f64;
    let mut count = 0;
    for (r, e) in result.zip(reference) {
        let d = (r - e).abs();
        if d.is_nan() {
            return f64::NAN;
        }
        err = err.max(d);
        count += 1;
    }
    if count != reference.len() {
        return f64::NAN;
    }
    let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if scale > 0.0 {
        err / scale
    } else {
        err
    }
}

/// The largest normwise relative error accepted against the f64 reference: Kiln and the
/// reference evaluate the same formula in the same order, so f64 results agree to a few
/// ulps (the sum differs only in its summation order); f32 results carry f32 rounding.
pub fn tolerance(dtype: ScalarType) -> f64 {
    if dtype == ScalarType::F32 {
        1e-6
    } else {
        1e-12
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy() {
        // numpy.linspace(0, 1, 5) and numpy.linspace(-3, 3, 7, dtype=np.float32).
        assert_eq!(
            linspace::<f64>(0.0, 1.0, 5).to_vec(),
            [0.0, 0.25, 0.5, 0.75, 1.0]
        );
        assert_eq!(
            linspace::<f32>(-3.0, 3.0, 7).to_vec(),
            [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
        );
        // numpy.linspace(0, 1, 3, dtype=np.float32)[1] is float32(0.5); 0.1 rounds once.
        assert_eq!(linspace::<f32>(0.0, 0.3, 4)[1], 0.1f32);
        assert_eq!(linspace::<f64>(2.0, 5.0, 1).to_vec(), [2.0]);
    }

    #[test]
    fn references_match_known_values() {
        // Spec §3's Black-Scholes value for s = k = 100, t = 1, r = 0.02, v = 0.3.
        let bs = Kernel::BlackScholes.reference(&[vec![100.0]]);
        assert!((bs[0] - 12.82158139269142).abs() < 1e-12);
        assert_eq!(Kernel::Poly4.reference(&[vec![0.0]]), [1.0]);
        assert_eq!(Kernel::SumSq.reference(&[vec![1.0, 2.0, 3.0]]), [14.0]);
    }

    #[test]
    fn relative_error_is_normwise_and_catches_nan() {
        assert_eq!(relative_error([1.0, 2.0].into_iter(), &[1.0, 4.0]), 0.5);
        assert!(relative_error([f64::NAN].into_iter(), &[1.0]).is_nan());
        assert!(relative_error([1.0].into_iter(), &[1.0, 2.0]).is_nan());
    }
}
