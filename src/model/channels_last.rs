//! The convolutions of the Gated PixelCNN (arXiv 1606.05328, Section 2.2 and Figure 2) as matrix
//! products on channels-last feature maps `[B, H, W, C]`.
//!
//! Every convolution of the two stacks is either 1×1 or a thin window on one side of the pixel
//! (a row `1×k`, a column of rows above, a half row to the left). With channels last, each is
//! one matrix product: the window's few shifted views of the zero-padded input are concatenated
//! along the channel axis and multiplied by the weights reshaped to `[kh·kw·C_in, C_out]`.
//! Forward and backward are then matrix products, which the backends run much faster than their
//! general convolution kernels on these shapes. The weights stay in burn's `Conv2d` modules
//! (`[C_out, C_in, kh, kw]`), so a model's record, and every checkpoint, is the same as with
//! `Conv2d::forward` on `[B, C, H, W]`.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::ops::PadMode;

use super::colour::ColourMask;

/// Where a window convolution reads, relative to each output pixel, and how large its output is.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Offset (rows, columns) of the kernel's first tap from the output pixel: output `(r, c)`
    /// sums input `(r + offset.0 + i, c + offset.1 + j)` over the taps `(i, j)`.
    pub offset: (isize, isize),
    /// Output rows and columns.
    pub output: (usize, usize),
}

/// `conv` over `x` `[B, H, W, C_in]` read through `window`, input pixels outside the map being
/// zero: `[B, rows, columns, C_out]`.
pub fn window_conv(conv: &Conv2d, x: Tensor<4>, window: Window) -> Tensor<4> {
    let weight = conv.weight.val();
    let [outputs, inputs, kernel_rows, kernel_cols] = weight.dims();
    let [_, height, width, _] = x.dims();
    let (rows, cols) = window.output;
    let (top, bottom) = padding(window.offset.0, rows, kernel_rows, height);
    let (left, right) = padding(window.offset.1, cols, kernel_cols, width);
    let padded = x.pad(
        [(top, bottom), (left, right), (0, 0)],
        PadMode::Constant(0.0),
    );
    // Offsets into the padded map of the first tap.
    let first_row = (window.offset.0 + top as isize) as usize;
    let first_col = (window.offset.1 + left as isize) as usize;
    let views: Vec<Tensor<4>> = (0..kernel_rows)
        .flat_map(|i| (0..kernel_cols).map(move |j| (i, j)))
        .map(|(i, j)| {
            padded
                .clone()
                .narrow(1, first_row + i, rows)
                .narrow(2, first_col + j, cols)
        })
        .collect();
    let columns = Tensor::cat(views, 3);
    let matrix = weight
        .permute([2, 3, 1, 0])
        .reshape([kernel_rows * kernel_cols * inputs, outputs]);
    product(columns, matrix, conv.bias.as_ref())
}

/// Zero rows (or columns) needed before and after an input of `size` so that `output` positions
/// starting at `offset` with a `kernel`-wide window stay inside it.
fn padding(offset: isize, output: usize, kernel: usize, size: usize) -> (usize, usize) {
    let before = (-offset).max(0) as usize;
    let last = offset + (output + kernel) as isize - 2;
    let after = (last - (size as isize - 1)).max(0) as usize;
    (before, after)
}

/// The 1×1 convolution `conv` on `x` `[B, H, W, C_in]`, its weights multiplied by the colour
/// `mask` when the image has colours.
pub fn pointwise(conv: &Conv2d, x: Tensor<4>, mask: Option<ColourMask>) -> Tensor<4> {
    let weight = conv.weight.val();
    let [outputs, inputs, _, _] = weight.dims();
    let mut matrix = weight.reshape([outputs, inputs]);
    if let Some(mask) = mask.filter(|m| m.colours > 1) {
        let device = matrix.device();
        matrix = matrix * mask.weights(outputs, inputs, &device);
    }
    product(x, matrix.transpose(), conv.bias.as_ref())
}

/// `x` `[B, H, W, I]` times `matrix` `[I, O]`, plus `bias` `[O]`: `[B, H, W, O]`.
fn product(x: Tensor<4>, matrix: Tensor<2>, bias: Option<&Param<Tensor<1>>>) -> Tensor<4> {
    let [batch, height, width, inputs] = x.dims();
    let outputs = matrix.dims()[1];
    let mut y = x.reshape([batch * height * width, inputs]).matmul(matrix);
    if let Some(bias) = bias {
        y = y + bias.val().unsqueeze();
    }
    y.reshape([batch, height, width, outputs])
}

/// `[B, C, H, W]` as `[B, H, W, C]`.
pub fn to_channels_last(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 2, 3, 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_covers_exactly_the_taps_outside_the_input() {
        // A 1×3 row window centred on each of 5 columns: one zero column on each side.
        assert_eq!(padding(-1, 5, 3, 5), (1, 1));
        // Two rows above each of 6 output rows of a 5-row input: rows -2..=4.
        assert_eq!(padding(-2, 6, 2, 5), (2, 0));
        // Half row strictly to the left, output as wide as the input.
        assert_eq!(padding(-4, 5, 4, 5), (4, 0));
        // A window entirely inside needs nothing.
        assert_eq!(padding(0, 3, 3, 5), (0, 0));
    }
}
