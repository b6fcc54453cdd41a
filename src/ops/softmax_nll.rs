//! The negative log-likelihood of a K-way softmax (arXiv 1601.06759, Section 2.2) for rows of
//! logits, as one backend operation with its own backward pass.
//!
//! For a row `x` and target `t`: `−log softmax(x)_t = log Σ_j e^(x_j − m) + m − x_t` with `m` the
//! row's largest logit, and its gradient `∂/∂x_j = softmax(x)_j − [j = t]`. Composed from burn's
//! ops (max, subtract, exponential, sum, logarithm, gather, and as many steps back) this takes a
//! dozen passes over the logits, `[B·H·W, 256]` for 8-bit images, mostly on one thread; the CPU
//! backend makes one parallel pass each way. GPU backends use the composed form.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::{DType, IndexingUpdateOp, Shape};
use rayon::prelude::*;

use super::flex_tensor;
use super::vector_exp::exp;

/// The softmax likelihood as a backend operation.
#[backend_extension(Flex, Cube: cfg(any(feature = "wgpu", feature = "cuda")), Autodiff)]
pub trait SoftmaxNllBackend: Backend {
    /// `−log softmax(x)_t` for every row `x` of `logits` `[N, K]` and its target `t` in
    /// `targets` `[N]`: `[N]`.
    fn softmax_nll(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        let rows = logits.shape()[0];
        let (shifted, log_sum) = shifted_and_log_sum::<Self>(logits);
        let targets = Self::int_reshape(targets, Shape::new([rows, 1]));
        let picked = Self::float_gather(1, shifted, targets);
        Self::float_reshape(Self::float_sub(log_sum, picked), Shape::new([rows]))
    }

    /// The gradient with respect to the logits, given the gradient `grad` `[N]` of the
    /// likelihoods: `g (softmax(x) − onehot(t))` per row.
    fn softmax_nll_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let rows = logits.shape()[0];
        let (shifted, log_sum) = shifted_and_log_sum::<Self>(logits);
        let probabilities = Self::float_exp(Self::float_sub(shifted, log_sum));
        let grad = Self::float_reshape(grad, Shape::new([rows, 1]));
        let targets = Self::int_reshape(targets, Shape::new([rows, 1]));
        Self::float_scatter(
            1,
            Self::float_mul(probabilities, grad.clone()),
            targets,
            Self::float_neg(grad),
            IndexingUpdateOp::Add,
        )
    }
}

/// The logits less each row's largest, `[N, K]`, and the log of each row's sum of their
/// exponentials, `[N, 1]`.
fn shifted_and_log_sum<B: Backend>(logits: FloatTensor<B>) -> (FloatTensor<B>, FloatTensor<B>) {
    let largest = B::float_max_dim(logits.clone(), 1);
    let shifted = B::float_sub(logits, largest);
    let log_sum = B::float_log(B::float_sum_dim(B::float_exp(shifted.clone()), 1));
    (shifted, log_sum)
}

/// `−log softmax(x)_t` for each row `x` of `logits` `[N, K]` and target `t` of `targets`
/// `[N]` (values in `0..K`): `[N]`.
pub fn softmax_nll(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as SoftmaxNllBackend>::softmax_nll(
        logits.into_dispatch(),
        targets.into_dispatch(),
    ))
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl SoftmaxNllBackend for burn::backend::Cube {}

impl<B: Backend + SoftmaxNllBackend, C: CheckpointStrategy> SoftmaxNllBackend for Autodiff<B, C> {
    fn softmax_nll(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        match SoftmaxNllGradient
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let logits = logits.into_primitive();
                let output = B::softmax_nll(logits.clone(), targets.clone());
                prep.finish((logits, targets), output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::softmax_nll(logits.into_primitive(), targets))
            }
        }
    }
}

/// The backward step of [`softmax_nll`]; its state is the logits and the targets.
#[derive(Debug)]
struct SoftmaxNllGradient;

impl<B: Backend + SoftmaxNllBackend> Backward<B, 1> for SoftmaxNllGradient {
    type State = (FloatTensor<B>, IntTensor<B>);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (logits, targets) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::softmax_nll_backward(logits, targets, grad)
        });
    }
}

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 64;

impl SoftmaxNllBackend for Flex {
    fn softmax_nll(logits: FlexTensor, targets: FlexTensor) -> FlexTensor {
        let (logits, levels) = f32_rows(logits);
        let targets = target_levels(targets, levels);
        let mut nll = vec![0.0f32; targets.len()];
        nll.par_chunks_mut(ROWS_PER_TASK)
            .zip(logits.storage::<f32>().par_chunks(levels * ROWS_PER_TASK))
            .zip(targets.par_chunks(ROWS_PER_TASK))
            .for_each(|((nll, rows), targets)| {
                let mut exps = vec![0.0f32; levels];
                for ((nll, row), &target) in nll.iter_mut().zip(rows.chunks(levels)).zip(targets) {
                    let (largest, sum) = exponentials(row, &mut exps);
                    *nll = sum.ln() + largest - row[target];
                }
            });
        flex_tensor(nll, Shape::new([targets.len()]))
    }

    fn softmax_nll_backward(
        logits: FlexTensor,
        targets: FlexTensor,
        grad: FlexTensor,
    ) -> FlexTensor {
        let (logits, levels) = f32_rows(logits);
        let targets = target_levels(targets, levels);
        let grad = grad.to_contiguous();
        let grad: &[f32] = grad.storage();
        let mut out = vec![0.0f32; logits.storage::<f32>().len()];
        out.par_chunks_mut(levels * ROWS_PER_TASK)
            .zip(logits.storage::<f32>().par_chunks(levels * ROWS_PER_TASK))
            .zip(
                targets
                    .par_chunks(ROWS_PER_TASK)
                    .zip(grad.par_chunks(ROWS_PER_TASK)),
            )
            .for_each(|((out, rows), (targets, grad))| {
                for (((out, row), &target), &g) in out
                    .chunks_mut(levels)
                    .zip(rows.chunks(levels))
                    .zip(targets)
                    .zip(grad)
                {
                    let (_, sum) = exponentials(row, out);
                    let scale = g / sum;
                    for value in out.iter_mut() {
                        *value *= scale;
                    }
                    out[target] -= g;
                }
            });
        flex_tensor(out, logits.layout().shape().clone())
    }
}

/// The logits as a contiguous f32 `[N, K]` tensor, and K.
fn f32_rows(logits: FlexTensor) -> (FlexTensor, usize) {
    assert_eq!(
        logits.dtype(),
        DType::F32,
        "the likelihood is computed in f32"
    );
    let logits = logits.to_contiguous();
    let levels = logits.layout().shape()[1];
    (logits, levels)
}

/// The targets as indices, each checked to be one of the `levels`.
fn target_levels(targets: FlexTensor, levels: usize) -> Vec<usize> {
    let targets = targets.to_contiguous();
    let values: Vec<i64> = match targets.dtype() {
        DType::I64 => targets.storage::<i64>().to_vec(),
        DType::I32 => targets.storage::<i32>().iter().map(|&t| t.into()).collect(),
        other => panic!("targets must be integer levels, not {other:?}"),
    };
    values
        .into_iter()
        .map(|t| {
            assert!(
                (0..levels as i64).contains(&t),
                "target level {t} outside 0..{levels}"
            );
            t as usize
        })
        .collect()
}

/// Writes `e^(x − m)` for the row `x` into `exps` and returns `m`, the row's largest value,
/// and the sum of the exponentials.
#[inline]
fn exponentials(row: &[f32], exps: &mut [f32]) -> (f32, f32) {
    let largest = lanes(row, f32::NEG_INFINITY, f32::max);
    for (e, &x) in exps.iter_mut().zip(row) {
        *e = exp(x - largest);
    }
    (largest, lanes(exps, 0.0, |a, b| a + b))
}

/// `values` folded by `combine` over eight independent lanes, which the compiler vectorises
/// (one running value would be a chain of dependent scalar steps).
#[inline]
fn lanes(values: &[f32], start: f32, combine: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [start; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder().iter().fold(start, |a, &b| combine(a, b));
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane = combine(*lane, value);
        }
    }
    lanes.into_iter().fold(rest, &combine)
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    #[test]
    fn likelihoods_and_gradients_match_burns_log_softmax() {
        let device = Device::flex().autodiff();
        let (rows, levels) = (70, 256);
        // Spread wide enough that most probabilities underflow next to the largest.
        let logits = Tensor::<2>::random([rows, levels], Distribution::Normal(0.0, 30.0), &device);
        let targets = Tensor::<1, Int>::from_data(
            TensorData::new((0..rows as i64).map(|r| r * 37 % 256).collect(), [rows]),
            &device,
        );
        let weights = Tensor::<1>::random([rows], Distribution::Uniform(0.5, 1.5), &device);
        let fused = logits.clone().require_grad();
        let plain = logits.require_grad();

        let ours = softmax_nll(fused.clone(), targets.clone());
        let reference = log_softmax(plain.clone(), 1)
            .gather(1, targets.unsqueeze_dim(1))
            .squeeze_dim::<1>(1)
            .neg();
        ours.clone()
            .into_data()
            .assert_approx_eq::<f32>(&reference.clone().into_data(), Tolerance::absolute(1e-3));

        let ours_grads = (ours * weights.clone()).sum().backward();
        let reference_grads = (reference * weights).sum().backward();
        fused
            .grad(&ours_grads)
            .unwrap()
            .into_data()
            .assert_approx_eq::<f32>(
                &plain.grad(&reference_grads).unwrap().into_data(),
                Tolerance::absolute(1e-5),
            );
    }

    #[test]
    #[should_panic(expected = "target level 4 outside 0..4")]
    fn a_target_outside_the_levels_is_refused() {
        let device = Device::flex();
        let logits = Tensor::<2>::zeros([2, 4], &device);
        let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 4], [2]), &device);
        softmax_nll(logits, targets);
    }
}
