//! The matrix product behind every convolution of the model ([`super::channels_last`]), as a
//! backend operation with its own backward pass.
//!
//! On the CPU backend burn's own product allocates its output as a zero-filled byte vector and
//! then copies it into a second, aligned buffer before the multiplication overwrites it: two
//! extra passes over every output, forward and backward, about a tenth of a training step here.
//! This operation lets `gemm` write into the one buffer the result keeps. Its backward pass is
//! the usual pair of products, `∂L/∂A = G Bᵀ` and `∂L/∂B = Aᵀ G`, with the transposes read in
//! place through strides. GPU backends use burn's product.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::{DType, Shape};

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
}

/// `lhs` `[M, K]` times `rhs` `[K, N]`: `[M, N]`.
pub fn matmul(lhs: Tensor<2>, rhs: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as MatmulBackend>::matmul(
        lhs.into_dispatch(),
        rhs.into_dispatch(),
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

impl MatmulBackend for Flex {
    fn matmul(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
        assert!(
            lhs.dtype() == DType::F32 && rhs.dtype() == DType::F32,
            "the model's products are computed in f32"
        );
        let [m, k] = lhs.layout().shape().dims();
        let [k_rhs, n] = rhs.layout().shape().dims();
        assert_eq!(k, k_rhs, "inner dimensions of a product must agree");
        let mut out = Vec::<f32>::with_capacity(m * n);
        if k == 0 {
            out.resize(m * n, 0.0);
        } else {
            let (lhs_rows, lhs_cols) = strides(&lhs);
            let (rhs_rows, rhs_cols) = strides(&rhs);
            let parallelism = if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_WORK {
                gemm::Parallelism::Rayon(0)
            } else {
                gemm::Parallelism::None
            };
            // SAFETY: both factors are f32 views whose offsets and strides address `m × k` and
            // `k × n` elements inside their storage; `out` has room for `m × n`, and `gemm` with
            // `read_dst = false` writes every one of them (k > 0) without reading any.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    out.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    first_element(&lhs),
                    lhs_cols,
                    lhs_rows,
                    first_element(&rhs),
                    rhs_cols,
                    rhs_rows,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    parallelism,
                );
                out.set_len(m * n);
            }
        }
        flex_tensor(out, Shape::new([m, n]))
    }
}

/// Row and column strides, in elements, of a 2-D tensor.
fn strides(tensor: &FlexTensor) -> (isize, isize) {
    let strides = tensor.layout().strides();
    (strides[0], strides[1])
}

/// The tensor's first element, where its view starts in its storage.
fn first_element(tensor: &FlexTensor) -> *const f32 {
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
