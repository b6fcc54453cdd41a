//! The gated activation unit of arXiv 1606.05328, Section 2.2, equation (2):
//! `y = tanh(a) ⊙ σ(b)`, where `a` and `b` are the two halves of the last (channel) axis of a
//! channels-last map of pre-activations `[.., 2C]`.
//!
//! It is one fused operation with its own backward pass, added to burn through a backend
//! extension. Composed from burn's primitives it takes about ten passes over memory forward and
//! backward, each single-threaded on the CPU backend with a scalar `tanh`; here the CPU backend
//! makes one parallel pass each way, with an exponential the compiler can vectorise. GPU backends
//! use the composed form.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::{DType, Shape, Slice};

use super::vector_exp::exp;
use super::{flex_tensor, par_filled};

/// The gate as a backend operation.
#[backend_extension(Flex, Cube: cfg(any(feature = "wgpu", feature = "cuda")), Autodiff)]
pub trait GateBackend: Backend {
    /// `tanh(a) ⊙ σ(b)` for `x = [a, b]` split along the last axis: `[.., 2C]` → `[.., C]`.
    fn gate(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let (filter, gate) = halves::<Self>(x);
        Self::float_mul(Self::float_tanh(filter), Self::sigmoid(gate))
    }

    /// The gradient with respect to `x` `[.., 2C]` of the gate, given the gradient `grad`
    /// `[.., C]` of its output: `g σ(b) (1 − tanh²a)` and `g tanh(a) σ(b) (1 − σ(b))`.
    fn gate_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let last = x.shape().num_dims() - 1;
        let (filter, gate) = halves::<Self>(x);
        let t = Self::float_tanh(filter);
        let s = Self::sigmoid(gate);
        let one_minus =
            |v: FloatTensor<Self>| Self::float_add_scalar(Self::float_neg(v), 1.0.into());
        let t_squared = Self::float_mul(t.clone(), t.clone());
        let d_filter = Self::float_mul(
            Self::float_mul(grad.clone(), s.clone()),
            one_minus(t_squared),
        );
        let d_gate = Self::float_mul(
            Self::float_mul(Self::float_mul(grad, t), s.clone()),
            one_minus(s),
        );
        Self::float_cat(vec![d_filter, d_gate], last)
    }
}

/// The two halves of the last axis.
fn halves<B: Backend>(x: FloatTensor<B>) -> (FloatTensor<B>, FloatTensor<B>) {
    let dims = x.shape().num_dims();
    let half = (x.shape()[dims - 1] / 2) as isize;
    let slices = |start: isize, end: isize| {
        let mut slices = vec![Slice::full(); dims];
        slices[dims - 1] = Slice::new(start, Some(end), 1);
        slices
    };
    (
        B::float_slice(x.clone(), &slices(0, half)),
        B::float_slice(x, &slices(half, 2 * half)),
    )
}

/// The gate of a channels-last map `[.., 2C]`: `[.., C]`.
pub fn gate(x: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as GateBackend>::gate(x.into_dispatch()))
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl GateBackend for burn::backend::Cube {}

impl<B: Backend + GateBackend, C: CheckpointStrategy> GateBackend for Autodiff<B, C> {
    fn gate(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match GateGradient
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = x.into_primitive();
                let output = B::gate(input.clone());
                prep.finish(input, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gate(x.into_primitive())),
        }
    }
}

/// The backward step of the gate; its state is the gate's input.
#[derive(Debug)]
struct GateGradient;

impl<B: Backend + GateBackend> Backward<B, 1> for GateGradient {
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let input = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::gate_backward(input, grad)
        });
    }
}

impl GateBackend for Flex {
    fn gate(x: FlexTensor) -> FlexTensor {
        assert_eq!(x.dtype(), DType::F32, "the fused gate computes in f32");
        let shape = x.layout().shape().clone();
        let channels = shape[shape.num_dims() - 1] / 2;
        let rows = RowBlocks::of(x, 2 * channels);
        let input: &[f32] = rows.x.storage();
        let task_rows = rows.task_rows();
        let output = par_filled(
            rows.count() * channels,
            channels * task_rows,
            |task, out| {
                let pre = &input[rows.start(task * task_rows)..][..2 * out.len()];
                gate_rows_widest(out, pre, channels)
            },
        );
        flex_tensor(output, half_last(&shape))
    }

    fn gate_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        assert_eq!(x.dtype(), DType::F32, "the fused gate computes in f32");
        let shape = x.layout().shape().clone();
        let channels = shape[shape.num_dims() - 1] / 2;
        let rows = RowBlocks::of(x, 2 * channels);
        let grad = grad.to_contiguous();
        let (input, grad): (&[f32], &[f32]) = (rows.x.storage(), grad.storage());
        let task_rows = rows.task_rows();
        let output = par_filled(
            rows.count() * 2 * channels,
            2 * channels * task_rows,
            |task, out| {
                let pre = &input[rows.start(task * task_rows)..][..out.len()];
                let grad = &grad[task * task_rows * channels..][..out.len() / 2];
                gate_rows_backward_widest(out, pre, grad, channels)
            },
        );
        flex_tensor(output, shape)
    }
}

/// The fewest rows in a block read in place; shorter blocks make tasks too small to pay.
const MIN_BLOCK_ROWS: usize = 16;

/// The rows (pixels) of a map `[.., 2C]` where they lie in its storage: blocks of consecutive
/// rows, in order. The vertical stack's pre-activations are rows 1..=H of each image of a
/// larger map (`crate::model::gated`); read in place they need no copy. A map whose rows are
/// not whole in its storage (channels strided, reversed or broadcast) is copied first.
struct RowBlocks {
    x: FlexTensor,
    /// Rows per block.
    block_rows: usize,
    /// The storage index of each block's first value.
    starts: Vec<usize>,
    /// Values per row.
    row: usize,
}

impl RowBlocks {
    fn of(x: FlexTensor, row: usize) -> Self {
        let layout = x.layout();
        let blocks = layout.strided_blocks();
        let whole_rows = layout.has_positive_strides() && blocks.block_len().is_multiple_of(row);
        if row == 0 || !whole_rows || blocks.block_len() < MIN_BLOCK_ROWS * row {
            return Self::copied(x.to_contiguous(), row);
        }
        let block_rows = blocks.block_len() / row;
        let starts = blocks.block_starts().collect();
        Self {
            x,
            block_rows,
            starts,
            row,
        }
    }

    fn copied(x: FlexTensor, row: usize) -> Self {
        let block_rows = x.layout().num_elements() / row.max(1);
        Self {
            x,
            block_rows,
            starts: vec![0],
            row,
        }
    }

    fn count(&self) -> usize {
        self.block_rows * self.starts.len()
    }

    /// Rows per parallel task: [`ROWS_PER_TASK`] in one block, else a block each.
    fn task_rows(&self) -> usize {
        match self.starts.len() {
            1 => ROWS_PER_TASK,
            _ => self.block_rows,
        }
    }

    /// The storage index of row `row`, the first of a run of rows in one block.
    fn start(&self, row: usize) -> usize {
        let (block, within) = (row / self.block_rows, row % self.block_rows);
        self.starts[block] + within * self.row
    }
}

/// Rows (pixels) per parallel task: large enough to amortise scheduling.
const ROWS_PER_TASK: usize = 256;

/// The gate of rows `[a, b]` of `2 · channels` pre-activations into rows of `channels`.
#[inline(always)]
fn gate_rows(out: &mut [f32], pre: &[f32], channels: usize) {
    for (out, pre) in out.chunks_mut(channels).zip(pre.chunks(2 * channels)) {
        let (filter, gate) = pre.split_at(channels);
        for ((y, &a), &b) in out.iter_mut().zip(filter).zip(gate) {
            *y = tanh(a) * sigmoid(b);
        }
    }
}

/// The gradient rows `[d_a, d_b]` for pre-activation rows `[a, b]` and output gradient rows.
#[inline(always)]
fn gate_rows_backward(out: &mut [f32], pre: &[f32], grad: &[f32], channels: usize) {
    let (mut t, mut s) = (vec![0.0f32; channels], vec![0.0f32; channels]);
    for ((out, pre), grad) in out
        .chunks_mut(2 * channels)
        .zip(pre.chunks(2 * channels))
        .zip(grad.chunks(channels))
    {
        let (d_filter, d_gate) = out.split_at_mut(channels);
        let (filter, gate) = pre.split_at(channels);
        // Loops of one output each: the compiler vectorises these, not one loop of several.
        for (t, &a) in t.iter_mut().zip(filter) {
            *t = tanh(a);
        }
        for (s, &b) in s.iter_mut().zip(gate) {
            *s = sigmoid(b);
        }
        let factors = || t.iter().zip(&s).zip(grad);
        for (d_a, ((&t, &s), &g)) in d_filter.iter_mut().zip(factors()) {
            *d_a = g * s * (1.0 - t * t);
        }
        for (d_b, ((&t, &s), &g)) in d_gate.iter_mut().zip(factors()) {
            *d_b = g * t * s * (1.0 - s);
        }
    }
}

/// The gate rows on the widest vectors the processor has.
fn gate_rows_widest(out: &mut [f32], pre: &[f32], channels: usize) {
    #[cfg(target_arch = "x86_64")]
    match wide::available() {
        // SAFETY: the processor has the features each function is compiled for.
        Some(wide::Width::Avx512) => return unsafe { wide::gate_rows_512(out, pre, channels) },
        Some(wide::Width::Avx2) => return unsafe { wide::gate_rows_256(out, pre, channels) },
        None => {}
    }
    gate_rows(out, pre, channels)
}

/// The gradient rows on the widest vectors the processor has.
fn gate_rows_backward_widest(out: &mut [f32], pre: &[f32], grad: &[f32], channels: usize) {
    #[cfg(target_arch = "x86_64")]
    match wide::available() {
        // SAFETY: the processor has the features each function is compiled for.
        Some(wide::Width::Avx512) => {
            return unsafe { wide::gate_rows_backward_512(out, pre, grad, channels) };
        }
        Some(wide::Width::Avx2) => {
            return unsafe { wide::gate_rows_backward_256(out, pre, grad, channels) };
        }
        None => {}
    }
    gate_rows_backward(out, pre, grad, channels)
}

/// The row kernels compiled for wider vectors than the default build's plain x86-64 (SSE2,
/// 4 lanes): AVX-512 (16 lanes, 32 registers) or AVX2 with FMA (8 lanes).
#[cfg(target_arch = "x86_64")]
mod wide {
    pub enum Width {
        Avx512,
        Avx2,
    }

    /// The widest of these the processor has, if any.
    pub fn available() -> Option<Width> {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma");
        match (avx2 && has!("avx512f"), avx2) {
            (true, _) => Some(Width::Avx512),
            (false, true) => Some(Width::Avx2),
            (false, false) => None,
        }
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub fn gate_rows_512(out: &mut [f32], pre: &[f32], channels: usize) {
        super::gate_rows(out, pre, channels)
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn gate_rows_256(out: &mut [f32], pre: &[f32], channels: usize) {
        super::gate_rows(out, pre, channels)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub fn gate_rows_backward_512(out: &mut [f32], pre: &[f32], grad: &[f32], channels: usize) {
        super::gate_rows_backward(out, pre, grad, channels)
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn gate_rows_backward_256(out: &mut [f32], pre: &[f32], grad: &[f32], channels: usize) {
        super::gate_rows_backward(out, pre, grad, channels)
    }
}

fn half_last(shape: &Shape) -> Shape {
    let mut dims = shape.to_vec();
    let last = dims.len() - 1;
    dims[last] /= 2;
    Shape::from(dims)
}

/// `σ(x) = 1 / (1 + e^-x)`.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh(x) = 1 − 2 / (e^2x + 1)`.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_vector_width_computes_the_plain_kernels_rows() {
        let channels = 24;
        let pre: Vec<f32> = (0..6 * channels)
            .map(|i| (i as f32 * 0.37).sin() * 6.0)
            .collect();
        let grad: Vec<f32> = (0..3 * channels).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut plain = (vec![0.0; 3 * channels], vec![0.0; 6 * channels]);
        gate_rows(&mut plain.0, &pre, channels);
        gate_rows_backward(&mut plain.1, &pre, &grad, channels);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        let mut wide = (vec![0.0; 3 * channels], vec![0.0; 6 * channels]);
        use std::arch::is_x86_feature_detected as has;
        if has!("avx2") && has!("fma") {
            // SAFETY: the processor has AVX2 and FMA.
            unsafe { wide::gate_rows_256(&mut wide.0, &pre, channels) };
            unsafe { wide::gate_rows_backward_256(&mut wide.1, &pre, &grad, channels) };
            assert!(close(&wide.0, &plain.0) && close(&wide.1, &plain.1), "AVX2");
        }
        if has!("avx512f") && has!("avx2") && has!("fma") {
            // SAFETY: the processor has AVX-512, AVX2 and FMA.
            unsafe { wide::gate_rows_512(&mut wide.0, &pre, channels) };
            unsafe { wide::gate_rows_backward_512(&mut wide.1, &pre, &grad, channels) };
            assert!(
                close(&wide.0, &plain.0) && close(&wide.1, &plain.1),
                "AVX-512"
            );
        }
    }

    #[test]
    fn tanh_and_sigmoid_match_the_library_functions() {
        for i in -2000..=2000 {
            let x = i as f32 / 100.0;
            assert!((tanh(x) - x.tanh()).abs() < 1e-6, "tanh({x})");
            let exact = 1.0 / (1.0 + (-x as f64).exp());
            assert!((sigmoid(x) as f64 - exact).abs() < 1e-6, "sigmoid({x})");
        }
        // Far out the quotients stay finite and saturate.
        assert_eq!(tanh(1e4), 1.0);
        assert_eq!(tanh(-1e4), -1.0);
        assert!(sigmoid(-1e4) > 0.0 && sigmoid(-1e4) < 1e-37);
        assert_eq!(sigmoid(1e4), 1.0);
    }

    #[test]
    fn maps_read_in_place_or_copied_give_the_composed_gate_and_its_gradient() {
        use burn::tensor::Distribution;
        let device = Device::flex().autodiff();
        let reference = |x: Tensor<4>| {
            let [a, b] = x.chunk(2, 3).try_into().expect("two halves");
            burn::tensor::activation::tanh(a) * burn::tensor::activation::sigmoid(b)
        };
        type View = fn(Tensor<4>) -> Tensor<4>;
        let views: [(&str, View); 4] = [
            ("whole", |x| x),
            ("rows 1..=4 of each image, in place", |x| x.narrow(1, 1, 4)),
            ("rows and columns swapped, copied", |x| x.swap_dims(1, 2)),
            ("channels strided, copied", |x| x.swap_dims(2, 3)),
        ];
        for (name, view) in views {
            let base = Tensor::<4>::random([3, 6, 20, 20], Distribution::Normal(0.0, 2.0), &device);
            let mut dims = view(base.clone()).dims();
            dims[3] /= 2;
            let weights = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let run = |gate_of: &dyn Fn(Tensor<4>) -> Tensor<4>| {
                let x = base.clone().require_grad();
                let y = gate_of(view(x.clone()));
                let grads = (y.clone() * weights.clone()).sum().backward();
                let grad = x.grad(&grads).expect("x is tracked");
                (y.inner().into_data(), grad.into_data())
            };
            let (fused, fused_grad) = run(&gate);
            let (composed, composed_grad) = run(&reference);
            fused.assert_approx_eq::<f32>(&composed, burn::tensor::Tolerance::absolute(1e-5));
            fused_grad
                .assert_approx_eq::<f32>(&composed_grad, burn::tensor::Tolerance::absolute(1e-5));
            eprintln!("{name}: same");
        }
    }
}
