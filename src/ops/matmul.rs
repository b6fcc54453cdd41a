//! The matrix product behind every convolution of the model ([`super::channels_last`]), as a
//! backend operation with its own backward pass.
//!
//! On the CPU backend burn's own product allocates its output as a zero-filled byte vector and
//! then copies it into a second, aligned buffer before the multiplication overwrites it: two
//! extra passes over every output, forward and backward: 8% of a config P training step here.
//! This operation lets `gemm` write into the one buffer the result keeps. Its backward pass is
//! the usual pair of products, `∂L/∂A = G Bᵀ` and `∂L/∂B = Aᵀ G`, with the transposes read in
//! place through strides. With a bias (`A B + b`, every 1×1 and window convolution) the output
//! starts as the bias rows and `gemm` adds the product onto them, instead of a separate pass
//! adding the bias; its gradient is the column sums of `G`, summed in blocks of rows in
//! parallel (burn's own sum over the rows takes 4% of a config S step). A product with a long inner
//! dimension and a small output — a weight gradient, summed over every pixel of the batch — is
//! the sum of a fixed number of partial products, one thread each ([`Product::split_depth`]).
//! GPU backends compose burn's own ops.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::{DType, Shape};

use rayon::prelude::*;

use super::flex_tensor;

/// Products of at least this many multiply-adds run on all threads (as in burn's own product).
const PARALLEL_WORK: usize = 192 * 192 * 192;

/// The matrix product as a backend operation.
#[backend_extension(Flex, Cube: cfg(any(feature = "wgpu", feature = "cuda")), Autodiff)]
pub trait MatmulBackend: Backend {
    /// `[M, K] × [K, N]` → `[M, N]`.
    fn matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(lhs, rhs)
    }

    /// `[M, K] × [K, N] + [N]` (the bias added to every row) → `[M, N]`.
    fn affine(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let outputs = bias.shape()[0];
        let bias = Self::float_reshape(bias, Shape::new([1, outputs]));
        Self::float_add(Self::float_matmul(x, weight), bias)
    }

    /// The sums of the columns of `grad` `[M, N]`: `[N]`, the gradient of the bias.
    fn column_sums(grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let outputs = grad.shape()[1];
        Self::float_reshape(Self::float_sum_dim(grad, 0), Shape::new([outputs]))
    }
}

/// `lhs` `[M, K]` times `rhs` `[K, N]`: `[M, N]`.
pub fn matmul(lhs: Tensor<2>, rhs: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as MatmulBackend>::matmul(
        lhs.into_dispatch(),
        rhs.into_dispatch(),
    ))
}

/// `x` `[M, K]` times `weight` `[K, N]` plus `bias` `[N]` on every row: `[M, N]`.
pub fn affine(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as MatmulBackend>::affine(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl MatmulBackend for burn::backend::Cube {}

impl<B: Backend + MatmulBackend, C: CheckpointStrategy> MatmulBackend for Autodiff<B, C> {
    fn matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        let (lhs_tracked, rhs_tracked) = (lhs.is_tracked(), rhs.is_tracked());
        match MatmulGradient
            .prepare::<C>([lhs.node(), rhs.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (lhs, rhs) = (lhs.into_primitive(), rhs.into_primitive());
                // Each factor is needed only for the other's gradient.
                let state = (
                    rhs_tracked.then(|| lhs.clone()),
                    lhs_tracked.then(|| rhs.clone()),
                );
                prep.finish(state, B::matmul(lhs, rhs))
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::matmul(lhs.into_primitive(), rhs.into_primitive()))
            }
        }
    }

    fn affine(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (x_tracked, weight_tracked) = (x.is_tracked(), weight.is_tracked());
        match AffineGradient
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.into_primitive(), weight.into_primitive());
                let state = (
                    weight_tracked.then(|| x.clone()),
                    x_tracked.then(|| weight.clone()),
                );
                prep.finish(state, B::affine(x, weight, bias.into_primitive()))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::affine(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            )),
        }
    }
}

/// The backward step of [`matmul`]; its state is each factor whose partner needs a gradient.
#[derive(Debug)]
struct MatmulGradient;

impl<B: Backend + MatmulBackend> Backward<B, 2> for MatmulGradient {
    type State = (Option<FloatTensor<B>>, Option<FloatTensor<B>>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (lhs, rhs) = ops.state;
        binary::<B, _, _>(
            ops.parents,
            ops.node,
            grads,
            |grad| B::matmul(grad, B::float_transpose(rhs.expect("rhs kept for ∂L/∂A"))),
            |grad| B::matmul(B::float_transpose(lhs.expect("lhs kept for ∂L/∂B")), grad),
        );
    }
}

/// The backward step of [`affine`]; its state is `x` if the weights need a gradient and the
/// weights if `x` does.
#[derive(Debug)]
struct AffineGradient;

impl<B: Backend + MatmulBackend> Backward<B, 3> for AffineGradient {
    type State = (Option<FloatTensor<B>>, Option<FloatTensor<B>>);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (x, weight) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let [x_node, weight_node, bias_node] = ops.parents;
        if let Some(node) = bias_node {
            grads.register::<B>(node.id, B::column_sums(grad.clone()));
        }
        if let Some(node) = weight_node {
            let x = B::float_transpose(x.expect("x kept for ∂L/∂W"));
            grads.register::<B>(node.id, B::matmul(x, grad.clone()));
        }
        if let Some(node) = x_node {
            let weight = B::float_transpose(weight.expect("weights kept for ∂L/∂x"));
            grads.register::<B>(node.id, B::matmul(grad, weight));
        }
    }
}

impl MatmulBackend for Flex {
    fn matmul(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
        let (m, n) = product_shape(&lhs, &rhs);
        let mut out = Vec::<f32>::with_capacity(m * n);
        // SAFETY: `out` has room for the `m × n` values, which `multiply` writes without reading.
        unsafe {
            multiply(out.as_mut_ptr(), &lhs, &rhs, false);
            out.set_len(m * n);
        }
        flex_tensor(out, Shape::new([m, n]))
    }

    fn affine(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let (m, n) = product_shape(&x, &weight);
        let bias = bias.to_contiguous();
        let bias: &[f32] = bias.storage();
        assert_eq!(bias.len(), n, "one bias per output column");
        let mut out = bias_rows(bias, m);
        // SAFETY: `out` holds the `m × n` values `multiply` adds onto.
        unsafe { multiply(out.as_mut_ptr(), &x, &weight, true) };
        flex_tensor(out, Shape::new([m, n]))
    }

    fn column_sums(grad: FlexTensor) -> FlexTensor {
        assert_eq!(
            grad.dtype(),
            DType::F32,
            "the model's products are computed in f32"
        );
        let grad = grad.to_contiguous();
        let [_, n] = grad.layout().shape().dims();
        flex_tensor(column_sums(grad.storage(), n), Shape::new([n]))
    }
}

/// Rows per parallel task when summing the columns of a gradient.
const SUM_ROWS: usize = 1024;

/// The column sums of `grad` `[M, N]`: partial sums of blocks of [`SUM_ROWS`] rows in parallel,
/// added in block order, so the result does not depend on the number of threads.
fn column_sums(grad: &[f32], n: usize) -> Vec<f32> {
    if n == 0 {
        return Vec::new();
    }
    let add = |mut sums: Vec<f32>, row: &[f32]| {
        sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        sums
    };
    let partials: Vec<Vec<f32>> = grad
        .par_chunks(n * SUM_ROWS)
        .map(|block| block.chunks(n).fold(vec![0.0; n], add))
        .collect();
    partials
        .iter()
        .fold(vec![0.0; n], |sums, part| add(sums, part))
}

/// Rows per parallel task when filling an output with its bias.
const ROWS_PER_TASK: usize = 256;

/// `rows` copies of `bias` one after another, written in parallel.
pub(super) fn bias_rows(bias: &[f32], rows: usize) -> Vec<f32> {
    let len = rows * bias.len();
    let mut out = Vec::with_capacity(len);
    if len == 0 {
        return out;
    }
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(bias.len() * ROWS_PER_TASK)
        .for_each(|chunk| {
            for row in chunk.chunks_mut(bias.len()) {
                row.write_copy_of_slice(bias);
            }
        });
    // SAFETY: the chunks, whole multiples of the bias, cover all `len` values, and every row
    // of each was written.
    unsafe { out.set_len(len) };
    out
}

/// `[M, N]` of the product of f32 matrices `lhs` `[M, K]` and `rhs` `[K, N]`.
fn product_shape(lhs: &FlexTensor, rhs: &FlexTensor) -> (usize, usize) {
    assert!(
        lhs.dtype() == DType::F32 && rhs.dtype() == DType::F32,
        "the model's products are computed in f32"
    );
    let [m, k] = lhs.layout().shape().dims();
    let [k_rhs, n] = rhs.layout().shape().dims();
    assert_eq!(k, k_rhs, "inner dimensions of a product must agree");
    (m, n)
}

/// Writes `lhs · rhs` into the contiguous `[M, N]` matrix at `out`, or adds it to the values
/// there if `accumulate`.
///
/// # Safety
/// `out` must address `M × N` writable f32 values, initialised if `accumulate`.
unsafe fn multiply(out: *mut f32, lhs: &FlexTensor, rhs: &FlexTensor, accumulate: bool) {
    let [m, k] = lhs.layout().shape().dims();
    let n = rhs.layout().shape()[1];
    let product = Product {
        m,
        k,
        n,
        lhs: first_element(lhs),
        lhs_strides: strides(lhs),
        rhs: first_element(rhs),
        rhs_strides: strides(rhs),
    };
    // SAFETY: as for this function; both views lie inside their tensors' storage.
    unsafe { product.run(out, accumulate) };
}

/// Products whose inner dimension is at least this long, and [`SPLIT_RATIO`] times the
/// longer side of their output, are summed from [`DEPTH_PARTS`] partial products (below).
const SPLIT_DEPTH: usize = 8192;
const SPLIT_RATIO: usize = 16;
/// Parts of a split product: a fixed number, so that the sum, and with it every weight
/// gradient, is the same whatever the number of threads.
const DEPTH_PARTS: usize = 8;

/// An f32 product `lhs` `[M, K]` · `rhs` `[K, N]` over strided views: `lhs` element `(i, k)`
/// at `lhs + i · lhs_strides.0 + k · lhs_strides.1`, and so on. Rows may overlap (the
/// shifted views of [`super::window`]): a product only reads its factors.
#[derive(Clone, Copy)]
pub(super) struct Product {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub lhs: *const f32,
    pub lhs_strides: (isize, isize),
    pub rhs: *const f32,
    pub rhs_strides: (isize, isize),
}

// SAFETY: a `Product` only reads through its pointers, into tensors its caller keeps alive.
unsafe impl Send for Product {}
unsafe impl Sync for Product {}

impl Product {
    /// Writes the product into the contiguous `[M, N]` matrix at `out`, or adds it there if
    /// `accumulate`: split along its depth if that is long ([`Product::split_depth`]), on all
    /// threads if it is large.
    ///
    /// # Safety
    /// Both factors' views must lie inside live storage; `out` must address `M × N` writable
    /// f32 values, initialised if `accumulate`.
    pub(super) unsafe fn run(&self, out: *mut f32, accumulate: bool) {
        let Product { m, k, n, .. } = *self;
        if k == 0 {
            if !accumulate {
                // SAFETY: the caller provides room for `m × n` values.
                unsafe { std::ptr::write_bytes(out, 0, m * n) };
            }
        } else if k >= SPLIT_DEPTH && k >= SPLIT_RATIO * m.max(n) {
            // SAFETY: as for this function.
            unsafe { self.split_depth(out, accumulate) };
        } else {
            // SAFETY: as for this function.
            unsafe { self.write(out, accumulate, self.parallel()) };
        }
    }

    /// Whether the product is large enough for all threads.
    pub(super) fn parallel(&self) -> bool {
        self.m.saturating_mul(self.n).saturating_mul(self.k) >= PARALLEL_WORK
    }

    /// Whether the product runs with bf16 operands: `--precision bf16` on a processor with
    /// AVX-512 BF16, and the product large enough to gain ([`super::bf16`]).
    pub(super) fn in_bf16(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return super::bf16_products() && super::bf16::pays(self);
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Writes the product into the contiguous `[M, N]` matrix at `out`, or adds it there if
    /// `accumulate`, with `gemm` on all threads if `parallel`.
    ///
    /// # Safety
    /// As [`multiply`], with `k > 0`.
    unsafe fn write(&self, out: *mut f32, accumulate: bool, parallel: bool) {
        #[cfg(target_arch = "x86_64")]
        if self.in_bf16() {
            // SAFETY: as for this function; the bf16 products are turned on only after
            // `precision::scoped` checked the processor.
            return unsafe { super::bf16::write(self, out, accumulate, parallel) };
        }
        let Product { m, k, n, .. } = *self;
        let (lhs_rows, lhs_cols) = self.lhs_strides;
        let (rhs_rows, rhs_cols) = self.rhs_strides;
        let parallelism = if parallel {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: both factors are f32 views whose offsets and strides address `m × k` and
        // `k × n` elements inside their storage; the caller provides `out`. With
        // `read_dst = false` gemm writes every output (k > 0) without reading any; otherwise
        // it adds onto them.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out,
                1,
                n as isize,
                accumulate,
                self.lhs,
                lhs_cols,
                lhs_rows,
                self.rhs,
                rhs_cols,
                rhs_rows,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                parallelism,
            )
        };
    }

    /// The columns `range` of `lhs` times the same rows of `rhs`.
    fn depth_part(&self, range: std::ops::Range<usize>) -> Product {
        let (_, lhs_cols) = self.lhs_strides;
        let (rhs_rows, _) = self.rhs_strides;
        Product {
            k: range.len(),
            // SAFETY (of the offsets): `range` lies inside `0..k`, so both stay in the views.
            lhs: self.lhs.wrapping_offset(range.start as isize * lhs_cols),
            rhs: self.rhs.wrapping_offset(range.start as isize * rhs_rows),
            ..*self
        }
    }

    /// The product as the sum of [`DEPTH_PARTS`] products over consecutive slices of the inner
    /// dimension, each on one thread, added in a fixed order. A weight gradient `Xᵀ G` sums
    /// over every pixel of the batch (K in the tens of thousands) into a small `[M, N]`:
    /// `gemm` parallelises over the output, which such a product has too little of: on two
    /// cores the weight gradient of config P's vertical convolution took 6.62 ms as one product
    /// and 5.69 ms split (docs/speed.md).
    ///
    /// # Safety
    /// As [`multiply`], with `k ≥ DEPTH_PARTS`.
    unsafe fn split_depth(&self, out: *mut f32, accumulate: bool) {
        let len = self.m * self.n;
        let mut partials = Vec::<f32>::with_capacity(len * (DEPTH_PARTS - 1));
        let target = Output(out);
        let partial = Output(partials.as_mut_ptr());
        (0..DEPTH_PARTS).into_par_iter().for_each(|part| {
            let range = part * self.k / DEPTH_PARTS..(part + 1) * self.k / DEPTH_PARTS;
            let (into, add) = match part {
                0 => (target.at(0), accumulate),
                _ => (partial.at((part - 1) * len), false),
            };
            // SAFETY: each part writes its own `[M, N]` block: the first `out`, the others
            // their slice of `partials`, which has room for them.
            unsafe { self.depth_part(range).write(into, add, false) };
        });
        // SAFETY: every part's block was written above.
        unsafe { partials.set_len(len * (DEPTH_PARTS - 1)) };
        // SAFETY: the caller provides `len` values at `out`, written by part 0.
        let out = unsafe { std::slice::from_raw_parts_mut(out, len) };
        out.par_chunks_mut(SUM_CHUNK)
            .enumerate()
            .for_each(|(chunk, values)| {
                let start = chunk * SUM_CHUNK;
                for block in partials.chunks_exact(len) {
                    let block = &block[start..start + values.len()];
                    values.iter_mut().zip(block).for_each(|(v, p)| *v += p);
                }
            });
    }
}

/// Values per parallel task when adding the partial products.
const SUM_CHUNK: usize = 1 << 14;

/// An output pointer shared by the parallel parts of a split product, each writing its own
/// block.
#[derive(Clone, Copy)]
struct Output(*mut f32);

impl Output {
    /// The value `offset` places after the pointer.
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

// SAFETY: the parts write disjoint blocks through it (see `Product::split_depth`).
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

/// Row and column strides, in elements, of a 2-D tensor.
pub(super) fn strides(tensor: &FlexTensor) -> (isize, isize) {
    let strides = tensor.layout().strides();
    (strides[0], strides[1])
}

/// The tensor's first element, where its view starts in its storage.
pub(super) fn first_element(tensor: &FlexTensor) -> *const f32 {
    tensor.storage::<f32>()[tensor.layout().start_offset()..].as_ptr()
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    #[test]
    fn products_of_strided_views_match_burns_product() {
        let device = Device::flex();
        let a = Tensor::<2>::random([7, 5], Distribution::Normal(0.0, 1.0), &device);
        let b = Tensor::<2>::random([3, 7], Distribution::Normal(0.0, 1.0), &device);
        // Aᵀ and Bᵀ are views with swapped strides, as in the backward pass.
        let ours = matmul(a.clone().transpose(), b.clone().transpose());
        let burns = a.transpose().matmul(b.transpose());
        assert_eq!(ours.dims(), [5, 3]);
        ours.into_data()
            .assert_approx_eq::<f32>(&burns.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn the_bias_gradient_is_the_column_sums_whatever_the_threads() {
        let device = Device::flex();
        // 2,500 rows: two whole blocks of rows and part of a third.
        let grad = Tensor::<2>::random([2500, 7], Distribution::Normal(0.0, 1.0), &device);
        let sums = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let grad = grad.clone().into_dispatch();
            pool.install(|| {
                Tensor::<1>::from_dispatch(<Dispatch as MatmulBackend>::column_sums(grad))
            })
        };
        let ours = sums(3);
        let burns = grad.clone().sum_dim(0).reshape([7]);
        ours.clone()
            .into_data()
            .assert_approx_eq::<f32>(&burns.into_data(), Tolerance::absolute(1e-3));
        assert_eq!(ours.into_data(), sums(1).into_data());
        let empty = Tensor::<2>::zeros([0, 3], &device).into_dispatch();
        let none = Tensor::<1>::from_dispatch(<Dispatch as MatmulBackend>::column_sums(empty));
        assert_eq!(none.into_data().try_to_vec::<f32>().unwrap(), [0.0; 3]);
    }

    #[test]
    fn the_affine_map_adds_the_bias_to_every_row_of_the_product() {
        let device = Device::flex();
        let x = Tensor::<2>::random([6, 9], Distribution::Normal(0.0, 1.0), &device);
        let weight = Tensor::<2>::random([4, 9], Distribution::Normal(0.0, 1.0), &device);
        let bias = Tensor::<1>::random([4], Distribution::Normal(0.0, 1.0), &device);
        let ours = affine(x.clone(), weight.clone().transpose(), bias.clone());
        let burns = x.matmul(weight.transpose()) + bias.unsqueeze();
        ours.into_data()
            .assert_approx_eq::<f32>(&burns.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn a_long_inner_dimension_is_summed_in_parts_to_the_same_product() {
        let device = Device::flex();
        let depth = SPLIT_DEPTH + 37;
        let x = Tensor::<2>::random([depth, 6], Distribution::Normal(0.0, 1.0), &device);
        let g = Tensor::<2>::random([depth, 5], Distribution::Normal(0.0, 1.0), &device);
        let bias = Tensor::<1>::random([5], Distribution::Normal(0.0, 1.0), &device);
        // A weight gradient `Xᵀ G`, `Xᵀ` a view with swapped strides; and the same with a bias,
        // whose rows the first part adds onto.
        let ours = matmul(x.clone().transpose(), g.clone());
        let with_bias = affine(x.clone().transpose(), g.clone(), bias.clone());
        let reference = x.transpose().matmul(g);
        let tolerance = Tolerance::absolute(1e-3);
        ours.into_data()
            .assert_approx_eq::<f32>(&reference.clone().into_data(), tolerance);
        with_bias
            .into_data()
            .assert_approx_eq::<f32>(&(reference + bias.unsqueeze()).into_data(), tolerance);
    }

    #[test]
    fn a_split_product_does_not_depend_on_the_number_of_threads() {
        let device = Device::flex();
        let x = Tensor::<2>::random(
            [SPLIT_DEPTH * 2, 3],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let g = Tensor::<2>::random(
            [SPLIT_DEPTH * 2, 4],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let product = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| matmul(x.clone().transpose(), g.clone()))
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        assert_eq!(product(1), product(3));
    }

    #[test]
    fn an_empty_inner_dimension_gives_zeros() {
        let device = Device::flex();
        let product = matmul(
            Tensor::zeros([2, 0], &device),
            Tensor::zeros([0, 3], &device),
        );
        assert_eq!(
            product.into_data().try_to_vec::<f32>().unwrap(),
            vec![0.0; 6]
        );
    }
}
