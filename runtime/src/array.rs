//! Arrays whose dtype is known at run time, over `ndarray`.
//!
//! [`DynArray`] owns an `ArrayD<T>` of one of Kiln's seven dtypes; [`DynView`] and
//! [`DynViewMut`] borrow one. The typed side is [`Element`], implemented for `bool i32 i64
//! u32 u64 f32 f64`, which converts between `ArrayViewD<T>` and the dynamic forms.

use kiln_ir::{Scalar, ScalarType};
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn};

/// A Rust type that is one of Kiln's dtypes.
pub trait Element: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// Its dtype.
    const DTYPE: ScalarType;
    /// As a Kiln scalar.
    fn to_scalar(self) -> Scalar;
    /// From a Kiln scalar of this dtype.
    fn from_scalar(s: Scalar) -> Option<Self>;
    /// Wraps an owned array.
    fn wrap(a: ArrayD<Self>) -> DynArray;
    /// Wraps a view.
    fn wrap_view(a: ArrayViewD<'_, Self>) -> DynView<'_>;
    /// Wraps a mutable view.
    fn wrap_view_mut(a: ArrayViewMutD<'_, Self>) -> DynViewMut<'_>;
    /// Unwraps an owned array of this dtype.
    fn unwrap(a: DynArray) -> Result<ArrayD<Self>, DynArray>;
    /// Borrows an array of this dtype.
    fn view(a: &DynArray) -> Option<ArrayViewD<'_, Self>>;
}

macro_rules! dtypes {
    ($($variant:ident $t:ty),*) => {
        /// An owned n-dimensional array of any Kiln dtype.
        #[derive(Clone, Debug, PartialEq)]
        #[allow(missing_docs)]
        pub enum DynArray { $($variant(ArrayD<$t>)),* }

        /// A borrowed n-dimensional array of any Kiln dtype.
        #[derive(Clone, Debug)]
        #[allow(missing_docs)]
        pub enum DynView<'a> { $($variant(ArrayViewD<'a, $t>)),* }

        /// A mutably borrowed n-dimensional array of any Kiln dtype (an output).
        #[derive(Debug)]
        #[allow(missing_docs)]
        pub enum DynViewMut<'a> { $($variant(ArrayViewMutD<'a, $t>)),* }

        $(
        impl Element for $t {
            const DTYPE: ScalarType = ScalarType::$variant;
            fn to_scalar(self) -> Scalar { Scalar::$variant(self) }
            fn from_scalar(s: Scalar) -> Option<Self> {
                match s { Scalar::$variant(v) => Some(v), _ => None }
            }
            fn wrap(a: ArrayD<Self>) -> DynArray { DynArray::$variant(a) }
            fn wrap_view(a: ArrayViewD<'_, Self>) -> DynView<'_> { DynView::$variant(a) }
            fn wrap_view_mut(a: ArrayViewMutD<'_, Self>) -> DynViewMut<'_> { DynViewMut::$variant(a) }
            fn unwrap(a: DynArray) -> Result<ArrayD<Self>, DynArray> {
                match a { DynArray::$variant(a) => Ok(a), other => Err(other) }
            }
            fn view(a: &DynArray) -> Option<ArrayViewD<'_, Self>> {
                match a { DynArray::$variant(a) => Some(a.view()), _ => None }
            }
        }

        impl<D: ndarray::Dimension> From<ndarray::Array<$t, D>> for DynArray {
            fn from(a: ndarray::Array<$t, D>) -> Self { DynArray::$variant(a.into_dyn()) }
        }
        impl<'a, D: ndarray::Dimension> From<ndarray::ArrayView<'a, $t, D>> for DynView<'a> {
            fn from(a: ndarray::ArrayView<'a, $t, D>) -> Self { DynView::$variant(a.into_dyn()) }
        }
        impl<'a, D: ndarray::Dimension> From<&'a ndarray::Array<$t, D>> for DynView<'a> {
            fn from(a: &'a ndarray::Array<$t, D>) -> Self { DynView::$variant(a.view().into_dyn()) }
        }
        impl<'a, D: ndarray::Dimension> From<ndarray::ArrayViewMut<'a, $t, D>> for DynViewMut<'a> {
            fn from(a: ndarray::ArrayViewMut<'a, $t, D>) -> Self { DynViewMut::$variant(a.into_dyn()) }
        }
        impl<'a, D: ndarray::Dimension> From<&'a mut ndarray::Array<$t, D>> for DynViewMut<'a> {
            fn from(a: &'a mut ndarray::Array<$t, D>) -> Self { DynViewMut::$variant(a.view_mut().into_dyn()) }
        }
        )*

        impl<'a> From<&'a DynArray> for DynView<'a> {
            fn from(a: &'a DynArray) -> Self { a.view() }
        }

        impl DynArray {
            /// The typed array, if its dtype is `T`'s.
            pub fn into_typed<T: Element>(self) -> Option<ArrayD<T>> {
                T::unwrap(self).ok()
            }
            /// A typed view, if its dtype is `T`'s.
            pub fn typed_view<T: Element>(&self) -> Option<ArrayViewD<'_, T>> {
                T::view(self)
            }
            /// Its dtype.
            pub fn dtype(&self) -> ScalarType {
                match self { $(DynArray::$variant(_) => ScalarType::$variant),* }
            }
            /// Its shape.
            pub fn shape(&self) -> &[usize] {
                match self { $(DynArray::$variant(a) => a.shape()),* }
            }
            /// A view of it.
            pub fn view(&self) -> DynView<'_> {
                match self { $(DynArray::$variant(a) => DynView::$variant(a.view())),* }
            }
            /// A mutable view of it.
            pub fn view_mut(&mut self) -> DynViewMut<'_> {
                match self { $(DynArray::$variant(a) => DynViewMut::$variant(a.view_mut())),* }
            }
            /// The element at flat (row-major) position `i`.
            pub fn get_flat(&self, i: usize) -> Option<Scalar> {
                match self { $(DynArray::$variant(a) => a.iter().nth(i).map(|v| v.to_scalar())),* }
            }
            /// The element at `index` (one entry per dimension), if it is in bounds.
            pub fn get(&self, index: &[usize]) -> Option<Scalar> {
                match self { $(DynArray::$variant(a) => a.get(IxDyn(index)).map(|v| v.to_scalar())),* }
            }
            /// Every element in row-major order.
            pub fn to_scalars(&self) -> Vec<Scalar> {
                match self { $(DynArray::$variant(a) => a.iter().map(|v| v.to_scalar()).collect()),* }
            }
            /// An array of `shape` filled with `value`.
            pub fn full(shape: &[usize], value: Scalar) -> DynArray {
                match value { $(Scalar::$variant(v) => DynArray::$variant(ArrayD::from_elem(IxDyn(shape), v))),* }
            }
            /// A 1-d array of the scalars, which must all have type `dtype`.
            pub fn from_scalars(dtype: ScalarType, values: &[Scalar]) -> Option<DynArray> {
                DynArray::from_scalars_shaped(dtype, &[values.len()], values)
            }
            /// An array of `shape` of the scalars (row-major), which must all have type
            /// `dtype` and be as many as the shape holds.
            pub fn from_scalars_shaped(
                dtype: ScalarType,
                shape: &[usize],
                values: &[Scalar],
            ) -> Option<DynArray> {
                Some(match dtype {
                    $(ScalarType::$variant => DynArray::$variant(ArrayD::from_shape_vec(
                        IxDyn(shape),
                        values.iter().map(|&s| <$t>::from_scalar(s)).collect::<Option<Vec<_>>>()?,
                    ).ok()?)),*
                })
            }
            /// The elements' bytes in row-major order, little-endian, each element at its
            /// own size (`bool` one byte): the layout of a contiguous array in memory.
            pub fn to_le_bytes(&self) -> Vec<u8> {
                let size = element_bytes(self.dtype());
                let mut out = Vec::with_capacity(self.shape().iter().product::<usize>() * size);
                match self {
                    $(DynArray::$variant(a) => {
                        for v in a.iter() {
                            out.extend_from_slice(&v.to_scalar().to_bits().to_le_bytes()[..size]);
                        }
                    }),*
                }
                out
            }
            /// The array of `dtype` and `shape` whose [`DynArray::to_le_bytes`] are `bytes`;
            /// `None` if the length does not match.
            pub fn from_le_bytes(dtype: ScalarType, shape: &[usize], bytes: &[u8]) -> Option<DynArray> {
                let size = element_bytes(dtype);
                if bytes.len() != shape.iter().product::<usize>() * size {
                    return None;
                }
                let values: Vec<Scalar> = bytes
                    .chunks_exact(size)
                    .map(|c| {
                        let mut w = [0u8; 8];
                        w[..size].copy_from_slice(c);
                        Scalar::from_bits(dtype, u64::from_le_bytes(w))
                    })
                    .collect();
                DynArray::from_scalars_shaped(dtype, shape, &values)
            }
        }

        impl DynView<'_> {
            /// Its dtype.
            pub fn dtype(&self) -> ScalarType {
                match self { $(DynView::$variant(_) => ScalarType::$variant),* }
            }
            /// Its shape.
            pub fn shape(&self) -> &[usize] {
                match self { $(DynView::$variant(a) => a.shape()),* }
            }
            /// Pointer to the element at index 0 and strides in bytes.
            pub(crate) fn raw(&self) -> (*mut u8, crate::par::Small<isize>) {
                match self { $(DynView::$variant(a) => (
                    a.as_ptr() as *mut u8,
                    a.strides().iter().map(|s| s * std::mem::size_of::<$t>() as isize).collect(),
                )),* }
            }
            /// An owned copy.
            pub fn to_owned(&self) -> DynArray {
                match self { $(DynView::$variant(a) => DynArray::$variant(a.to_owned())),* }
            }
        }

        impl DynViewMut<'_> {
            /// Its dtype.
            pub fn dtype(&self) -> ScalarType {
                match self { $(DynViewMut::$variant(_) => ScalarType::$variant),* }
            }
            /// Its shape.
            pub fn shape(&self) -> &[usize] {
                match self { $(DynViewMut::$variant(a) => a.shape()),* }
            }
            /// Pointer to the element at index 0 and strides in bytes.
            pub(crate) fn raw(&mut self) -> (*mut u8, crate::par::Small<isize>) {
                match self { $(DynViewMut::$variant(a) => (
                    a.as_mut_ptr() as *mut u8,
                    a.strides().iter().map(|s| s * std::mem::size_of::<$t>() as isize).collect(),
                )),* }
            }
        }

        /// A fresh array of `dtype` and `shape` whose elements the caller must all write
        /// before [`Uninit::assume_init`].
        pub(crate) enum Uninit { $($variant(ndarray::ArrayD<std::mem::MaybeUninit<$t>>)),* }

        impl Uninit {
            /// `None` if the memory cannot be allocated (instead of aborting the process).
            pub(crate) fn new(dtype: ScalarType, shape: &[usize]) -> Option<Uninit> {
                let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
                Some(match dtype { $(ScalarType::$variant => {
                    let mut v: Vec<std::mem::MaybeUninit<$t>> = Vec::new();
                    v.try_reserve_exact(n).ok()?;
                    advise_huge_pages(v.as_mut_ptr().cast(), n * std::mem::size_of::<$t>());
                    // SAFETY: the capacity is reserved and `MaybeUninit` needs no initialisation.
                    unsafe { v.set_len(n) };
                    Uninit::$variant(ArrayD::from_shape_vec(IxDyn(shape), v).ok()?)
                }),* })
            }
            /// Pointer to element 0 and byte strides (row-major).
            pub(crate) fn raw(&mut self) -> (*mut u8, crate::par::Small<isize>) {
                match self { $(Uninit::$variant(a) => (
                    a.as_mut_ptr() as *mut u8,
                    a.strides().iter().map(|s| s * std::mem::size_of::<$t>() as isize).collect(),
                )),* }
            }
            /// # Safety
            /// Every element has been written.
            pub(crate) unsafe fn assume_init(self) -> DynArray {
                // SAFETY: the caller wrote every element.
                match self { $(Uninit::$variant(a) => DynArray::$variant(unsafe { a.assume_init() })),* }
            }
        }
    };
}

dtypes!(Bool bool, I32 i32, I64 i64, U32 u32, U64 u64, F32 f32, F64 f64);

/// Bytes of one element of `dtype` in an array (`bool` is one byte).
pub fn element_bytes(dtype: ScalarType) -> usize {
    match dtype {
        ScalarType::Bool => 1,
        other => other.bits() as usize / 8,
    }
}

/// An empty `Vec` with room for `n` elements whose memory Linux is asked to back with
/// transparent huge pages (for `n` of 4 MiB and more), as Kiln's own outputs and NumPy's
/// arrays are: fill it (`extend`) and wrap it in an `ndarray` for inputs that are read at
/// memory speed without a TLB miss every 4 KiB.
pub fn vec_with_huge_pages<T>(n: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge_pages(v.as_mut_ptr().cast(), n * std::mem::size_of::<T>());
    v
}

/// Asks Linux to back a large fresh output with transparent huge pages (as NumPy does for
/// arrays of 4 MiB and more): writing a new 800 MB output otherwise takes 200,000 page
/// faults, which cost more than the kernel itself. Advice only: errors are ignored.
fn advise_huge_pages(ptr: *mut u8, bytes: usize) {
    const HUGE: usize = 2 << 20;
    if bytes < 2 * HUGE {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + bytes) / HUGE * HUGE;
        if end > start {
            // SAFETY: [start, end) lies inside the allocation just reserved; MADV_HUGEPAGE
            // changes no contents and only affects how the kernel backs the pages.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = ptr;
}

/// One argument of a ufunc or reduction call.
#[derive(Clone, Debug)]
pub enum Arg<'a> {
    /// An array (any shape; broadcast against the others).
    Array(DynView<'a>),
    /// A scalar, broadcast to every element.
    Scalar(Scalar),
    /// The current contents of output `k`: computes in place (`x = f(x, ..)`), which is
    /// allowed because an element is read before it is written.
    Out(usize),
}

impl Arg<'_> {
    /// The argument's dtype, if it has one of its own.
    pub fn dtype(&self) -> Option<ScalarType> {
        match self {
            Arg::Array(a) => Some(a.dtype()),
            Arg::Scalar(s) => Some(s.ty()),
            Arg::Out(_) => None,
        }
    }
}

impl<'a> From<DynView<'a>> for Arg<'a> {
    fn from(v: DynView<'a>) -> Self {
        Arg::Array(v)
    }
}

impl<'a> From<&'a DynArray> for Arg<'a> {
    fn from(v: &'a DynArray) -> Self {
        Arg::Array(v.view())
    }
}

impl From<Scalar> for Arg<'_> {
    fn from(v: Scalar) -> Self {
        Arg::Scalar(v)
    }
}

macro_rules! arg_from {
    ($($t:ty),*) => {$(
        impl<'a, D: ndarray::Dimension> From<&'a ndarray::Array<$t, D>> for Arg<'a> {
            fn from(a: &'a ndarray::Array<$t, D>) -> Self { Arg::Array(a.into()) }
        }
        impl<'a, D: ndarray::Dimension> From<ndarray::ArrayView<'a, $t, D>> for Arg<'a> {
            fn from(a: ndarray::ArrayView<'a, $t, D>) -> Self { Arg::Array(a.into()) }
        }
        impl From<$t> for Arg<'_> {
            fn from(v: $t) -> Self { Arg::Scalar(v.to_scalar()) }
        }
    )*};
}

arg_from!(bool, i32, i64, u32, u64, f32, f64);
