//! The convolutions of the Gated PixelCNN (arXiv 1606.05328, Section 2.2 and Figure 2) as matrix
//! products on channels-last feature maps `[B, H, W, C]`.
//!
//! Every convolution of the two stacks is either 1×1 or a window on one side of the pixel (the
//! rows above and the current one, a half row to the left). With channels last, each is
//! one matrix product: the window's few shifted views of the input, zero outside the map, are
//! laid side by side along the channel axis ([`super::columns`]) and multiplied by the weights
//! reshaped to `[kh·kw·C_in, C_out]` — or, on the CPU, the same sum computed as shifted
//! products over a padded copy of the input ([`super::window`]).
//! Forward and backward are then matrix products, which the backends run much faster than their
//! general convolution kernels on these shapes. The weights stay in burn's `Conv2d` modules
//! (`[C_out, C_in, kh, kw]`), so a model's record, and every checkpoint, is the same as with
//! `Conv2d::forward` on `[B, C, H, W]`.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::columns::{Taps, columns};
use super::matmul::{affine, matmul};
use super::window::window_affine;

/// The weights of `conv` as the matrix `[kh·kw·C_in, C_out]` of its product with the columns.
pub fn window_matrix(conv: &Conv2d) -> Tensor<2> {
    let [outputs, inputs, kernel_rows, kernel_cols] = conv.weight.dims();
    conv.weight
        .val()
        .permute([2, 3, 1, 0])
        .reshape([kernel_rows * kernel_cols * inputs, outputs])
}

/// `conv` (weights `[C_out, C_in, kh, kw]`, given as `matrix`, its [`window_matrix`]) over `x`
/// `[B, H, W, C_in]`, output pixel `(r, c)` reading input pixels from `offset` on (zero outside
/// the map): `[B, rows, cols, C_out]`. A caller that applies the convolution many times (the
/// cached sampler) makes the matrix once.
pub fn window_product(
    conv: &Conv2d,
    matrix: Tensor<2>,
    x: Tensor<4>,
    offset: (isize, isize),
    output: (usize, usize),
) -> Tensor<4> {
    let [_, _, kernel_rows, kernel_cols] = conv.weight.dims();
    let taps = Taps {
        kernel: (kernel_rows, kernel_cols),
        offset,
        output,
    };
    match &conv.bias {
        Some(bias) => window_affine(x, matrix, bias.val(), taps),
        None => product(columns(x, taps), matrix, None),
    }
}

/// The 1×1 convolution `conv` on `x` `[B, H, W, C_in]`, its weights multiplied elementwise by
/// `mask` `[C_out, C_in]` if one is given.
pub fn pointwise(conv: &Conv2d, x: Tensor<4>, mask: Option<Tensor<2>>) -> Tensor<4> {
    pointwise_product(conv, pointwise_matrix(conv, mask), x)
}

/// The weights of the 1×1 convolution `conv`, multiplied by `mask` if one is given, as the
/// matrix `[C_in, C_out]` of its product.
pub fn pointwise_matrix(conv: &Conv2d, mask: Option<Tensor<2>>) -> Tensor<2> {
    let weight = conv.weight.val();
    let [outputs, inputs, _, _] = weight.dims();
    let mut matrix = weight.reshape([outputs, inputs]);
    if let Some(mask) = mask {
        matrix = matrix * mask;
    }
    matrix.transpose()
}

/// [`pointwise`] with the weights already as `matrix`, their [`pointwise_matrix`].
pub fn pointwise_product(conv: &Conv2d, matrix: Tensor<2>, x: Tensor<4>) -> Tensor<4> {
    product(x, matrix, conv.bias.as_ref())
}

/// `x` `[B, H, W, I]` times `matrix` `[I, O]`, plus `bias` `[O]`: `[B, H, W, O]`.
fn product(x: Tensor<4>, matrix: Tensor<2>, bias: Option<&Param<Tensor<1>>>) -> Tensor<4> {
    let [batch, height, width, inputs] = x.dims();
    let outputs = matrix.dims()[1];
    let x = x.reshape([batch * height * width, inputs]);
    let y = match bias {
        Some(bias) => affine(x, matrix, bias.val()),
        None => matmul(x, matrix),
    };
    y.reshape([batch, height, width, outputs])
}

/// `[B, C, H, W]` as `[B, H, W, C]`.
pub fn to_channels_last(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 2, 3, 1])
}
