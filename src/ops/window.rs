//! A window convolution of the two stacks (arXiv 1606.05328, Section 2.2, Figure 2) with its
//! bias, as one backend operation with its own backward pass: `[B, H, W, C]` → `[B, rows,
//! cols, N]` for the taps of [`Taps`] and the weights as the matrix `[kh·kw·C, N]`.
//!
//! The composed form (GPU backends, and small maps on the CPU) multiplies the column matrix of
//! [`super::columns`] by the weights; the column matrix holds every input pixel kh·kw times,
//! and its gradient is scattered back tap by tap. On the CPU backend the convolution is instead
//! a sum of shifted products over a zero-padded copy of the input ("implicit GEMM"): in the
//! padded map of `Hp × Wp` pixels (`Hp = rows + kh − 1`, `Wp = cols + kw − 1`), the `kw` taps
//! of one row of the window are `kw · C` consecutive values, so row `i` of the window is one
//! product whose left factor is a view of the padded map, each of its rows starting `C` values
//! after the last (overlapping reads). The products are computed at every pixel of the padded
//! grid, including its `kw − 1` extra columns and `kh − 1` extra rows per image, whose outputs
//! are dropped; where the padded grid has over a quarter more pixels than the output (a few
//! rows, as in the cached sampler), the composed form runs instead. Backward: the weight gradient of window row `i` is the same view,
//! transposed, times the output gradient on the padded grid; the input gradient of window row
//! `i` is the output gradient times the row's weights, the taps reversed, over shifted views of
//! the gradient, added onto the padded map's gradient. With `--precision bf16` the padded input
//! and the spread gradient are rounded to bf16 as they are copied, and the products read them
//! there ([`super::bf16`]).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::{DType, Shape};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::bf16;
use super::columns::{ColumnsBackend, Taps};
use super::flex_tensor;
use super::matmul::{MatmulBackend, Product, bias_rows, first_element, strides};

/// The window convolution as a backend operation.
#[backend_extension(Flex, Cube: cfg(any(feature = "wgpu", feature = "cuda")), Autodiff)]
pub trait WindowBackend: Backend + ColumnsBackend + MatmulBackend {
    /// `x` `[B, H, W, C]` through the window `taps` with weights `matrix` `[kh·kw·C, N]` plus
    /// `bias` `[N]`: `[B, rows, cols, N]`.
    fn window_affine(
        x: FloatTensor<Self>,
        matrix: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        taps: Taps,
    ) -> FloatTensor<Self> {
        composed_affine::<Self>(x, matrix, bias, taps)
    }

    /// The gradient with respect to `x` (of `shape`) given the output gradient `grad`.
    fn window_input_gradient(
        grad: FloatTensor<Self>,
        matrix: FloatTensor<Self>,
        shape: Shape,
        taps: Taps,
    ) -> FloatTensor<Self> {
        composed_input_gradient::<Self>(grad, matrix, shape, taps)
    }

    /// The gradient with respect to the weights `[kh·kw·C, N]` given the output gradient.
    fn window_weight_gradient(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        taps: Taps,
    ) -> FloatTensor<Self> {
        composed_weight_gradient::<Self>(x, grad, taps)
    }
}

/// The column matrix times the weights, plus the bias.
fn composed_affine<B: ColumnsBackend + MatmulBackend>(
    x: FloatTensor<B>,
    matrix: FloatTensor<B>,
    bias: FloatTensor<B>,
    taps: Taps,
) -> FloatTensor<B> {
    let batch = x.shape()[0];
    let columns = flat::<B>(B::columns(x, taps));
    let outputs = matrix.shape()[1];
    let y = B::affine(columns, matrix, bias);
    let (rows, cols) = taps.output;
    B::float_reshape(y, Shape::new([batch, rows, cols, outputs]))
}

/// The output gradient times the weights, transposed, scattered back through the columns.
fn composed_input_gradient<B: ColumnsBackend + MatmulBackend>(
    grad: FloatTensor<B>,
    matrix: FloatTensor<B>,
    shape: Shape,
    taps: Taps,
) -> FloatTensor<B> {
    let [batch, rows, cols, _] = grad.shape().dims();
    let columns = B::matmul(flat::<B>(grad), B::float_transpose(matrix));
    let width = columns.shape()[1];
    let columns = B::float_reshape(columns, Shape::new([batch, rows, cols, width]));
    B::columns_backward(columns, shape, taps)
}

/// The column matrix, transposed, times the output gradient.
fn composed_weight_gradient<B: ColumnsBackend + MatmulBackend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
    taps: Taps,
) -> FloatTensor<B> {
    let columns = flat::<B>(B::columns(x, taps));
    B::matmul(B::float_transpose(columns), flat::<B>(grad))
}

/// `[B, H, W, C]` as `[B·H·W, C]`.
fn flat<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let [batch, height, width, channels] = x.shape().dims();
    B::float_reshape(x, Shape::new([batch * height * width, channels]))
}

/// `x` `[B, H, W, C]` through the window `taps` with weights `matrix` `[kh·kw·C, N]` and
/// `bias` `[N]`: `[B, rows, cols, N]`.
pub fn window_affine(x: Tensor<4>, matrix: Tensor<2>, bias: Tensor<1>, taps: Taps) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as WindowBackend>::window_affine(
        x.into_dispatch(),
        matrix.into_dispatch(),
        bias.into_dispatch(),
        taps,
    ))
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl WindowBackend for burn::backend::Cube {}

impl<B: Backend + WindowBackend, C: CheckpointStrategy> WindowBackend for Autodiff<B, C> {
    fn window_affine(
        x: FloatTensor<Self>,
        matrix: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        taps: Taps,
    ) -> FloatTensor<Self> {
        let (x_tracked, matrix_tracked) = (x.is_tracked(), matrix.is_tracked());
        let step = WindowGradient { taps };
        match step
            .prepare::<C>([x.node(), matrix.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, matrix) = (x.into_primitive(), matrix.into_primitive());
                let shape = x.shape();
                // ∂L/∂W needs the input, ∂L/∂x the weights.
                let state = (
                    matrix_tracked.then(|| x.clone()),
                    x_tracked.then(|| matrix.clone()),
                    shape,
                );
                let y = B::window_affine(x, matrix, bias.into_primitive(), taps);
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::window_affine(
                x.into_primitive(),
                matrix.into_primitive(),
                bias.into_primitive(),
                taps,
            )),
        }
    }
}

/// The backward step of [`window_affine`]: its state is the input (for the weight gradient),
/// the weights (for the input gradient) and the input's shape.
#[derive(Debug)]
struct WindowGradient {
    taps: Taps,
}

impl<B: Backend + WindowBackend> Backward<B, 3> for WindowGradient {
    type State = (Option<FloatTensor<B>>, Option<FloatTensor<B>>, Shape);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (x, matrix, shape) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let [x_node, matrix_node, bias_node] = ops.parents;
        if let Some(node) = bias_node {
            grads.register::<B>(node.id, B::column_sums(flat::<B>(grad.clone())));
        }
        if let Some(node) = matrix_node {
            let x = x.expect("x kept for ∂L/∂W");
            let gradient = B::window_weight_gradient(x, grad.clone(), self.taps);
            grads.register::<B>(node.id, gradient);
        }
        if let Some(node) = x_node {
            let matrix = matrix.expect("weights kept for ∂L/∂x");
            let gradient = B::window_input_gradient(grad, matrix, shape, self.taps);
            grads.register::<B>(node.id, gradient);
        }
    }
}

/// Where a window convolution of a `[B, H, W, C]` map lies on its padded grid.
#[derive(Debug, Clone, Copy)]
struct Grid {
    batch: usize,
    height: usize,
    width: usize,
    channels: usize,
    taps: Taps,
    /// Rows and columns of the padded grid, `rows + kh − 1` and `cols + kw − 1`.
    padded: (usize, usize),
}

impl Grid {
    fn new(shape: &Shape, taps: Taps) -> Self {
        let [batch, height, width, channels] = shape.dims();
        let (rows, cols) = taps.output;
        let (kernel_rows, kernel_cols) = taps.kernel;
        Self {
            batch,
            height,
            width,
            channels,
            taps,
            padded: (rows + kernel_rows - 1, cols + kernel_cols - 1),
        }
    }

    /// Whether the padded grid has at most a quarter more pixels than the output.
    fn pays(&self) -> bool {
        let (rows, cols) = self.taps.output;
        let useful = rows * cols;
        useful > 0 && self.channels > 0 && 4 * self.padded.0 * self.padded.1 <= 5 * useful
    }

    /// Pixels of the padded grid over the whole batch: the rows of every product.
    fn pixels(&self) -> usize {
        self.batch * self.padded.0 * self.padded.1
    }

    /// How far past its pixel the window's last tap reads, in pixels of the padded grid.
    fn reach(&self) -> usize {
        let (kernel_rows, kernel_cols) = self.taps.kernel;
        (kernel_rows - 1) * self.padded.1 + kernel_cols - 1
    }

    /// The input copied onto the padded grid, zero outside the map, with [`Grid::reach`]
    /// pixels of zeros after it for the last pixels' taps.
    fn pad(&self, x: &[f32]) -> Vec<f32> {
        let zeros = vec![0.0; (self.pixels() + self.reach()) * self.channels];
        self.pad_into(x, zeros, 1, |from, into| into.copy_from_slice(from))
    }

    /// [`Grid::pad`] rounded to bf16 pairs, as the products read it when they run in bf16.
    #[cfg(target_arch = "x86_64")]
    fn pad_rounded(&self, x: &[f32]) -> Vec<u32> {
        let zeros = bf16::rounded_zeros(self.pixels() + self.reach(), self.channels);
        self.pad_into(x, zeros, 2, bf16::round_into)
    }

    /// The input copied by `copy` onto the padded grid in `padded` (zeros), each element of
    /// which holds `per` values.
    fn pad_into<T: Send>(
        &self,
        x: &[f32],
        mut padded: Vec<T>,
        per: usize,
        copy: impl Fn(&[f32], &mut [T]) + Sync,
    ) -> Vec<T> {
        let (rows, cols) = self.padded;
        let c = self.channels;
        let (first, end, source) = Taps::valid(self.taps.offset.1, 0, cols, self.width);
        padded[..self.pixels() * c / per]
            .par_chunks_mut(cols * c / per)
            .enumerate()
            .for_each(|(row, out)| {
                let (b, r) = (row / rows, row % rows);
                let h = r as isize + self.taps.offset.0;
                if (0..self.height as isize).contains(&h) && end > first {
                    let at = ((b * self.height + h as usize) * self.width + source) * c;
                    let from = &x[at..at + (end - first) * c];
                    copy(from, &mut out[first * c / per..end * c / per]);
                }
            });
        padded
    }

    /// The output gradient `[B, rows, cols, N]` on the padded grid, zero at the dropped
    /// pixels, after `lead` pixels of zeros.
    fn spread(&self, grad: &[f32], n: usize, lead: usize) -> Vec<f32> {
        let zeros = vec![0.0; (lead + self.pixels()) * n];
        self.spread_into(grad, n, lead, (zeros, 1), |from, into| {
            into.copy_from_slice(from)
        })
    }

    /// [`Grid::spread`] rounded to bf16 pairs, as the products read it when they run in bf16.
    #[cfg(target_arch = "x86_64")]
    fn spread_rounded(&self, grad: &[f32], n: usize, lead: usize) -> Vec<u32> {
        let zeros = bf16::rounded_zeros(lead + self.pixels(), n);
        self.spread_into(grad, n, lead, (zeros, 2), bf16::round_into)
    }

    /// The output gradient copied by `copy` onto the padded grid in `spread` (zeros), each
    /// element of which holds `per` values, after `lead` pixels.
    fn spread_into<T: Send>(
        &self,
        grad: &[f32],
        n: usize,
        lead: usize,
        (mut spread, per): (Vec<T>, usize),
        copy: impl Fn(&[f32], &mut [T]) + Sync,
    ) -> Vec<T> {
        let (rows, cols) = self.taps.output;
        let (padded_rows, padded_cols) = self.padded;
        spread[lead * n / per..(lead + self.pixels()) * n / per]
            .par_chunks_mut(padded_cols * n / per)
            .enumerate()
            .for_each(|(row, out)| {
                let (b, r) = (row / padded_rows, row % padded_rows);
                if r < rows {
                    let at = (b * rows + r) * cols * n;
                    copy(&grad[at..at + cols * n], &mut out[..cols * n / per]);
                }
            });
        spread
    }

    /// The outputs at the kept pixels of the padded grid's `[pixels, N]`: `[B, rows, cols, N]`.
    fn crop(&self, full: &[f32], n: usize) -> Vec<f32> {
        let (rows, cols) = self.taps.output;
        let (padded_rows, padded_cols) = self.padded;
        let len = self.batch * rows * cols * n;
        let mut out = Vec::with_capacity(len);
        if len == 0 {
            return out;
        }
        out.spare_capacity_mut()[..len]
            .par_chunks_mut(cols * n)
            .enumerate()
            .for_each(|(row, out)| {
                let (b, r) = (row / rows, row % rows);
                let at = (b * padded_rows + r) * padded_cols * n;
                out.write_copy_of_slice(&full[at..at + cols * n]);
            });
        // SAFETY: the rows of `cols · n` values cover all `len`, and each was written.
        unsafe { out.set_len(len) };
        out
    }

    /// The input gradient `[B, H, W, C]` from the padded map's gradient: each pixel's value
    /// where the padded grid holds it, zero where no tap reads it.
    fn uncrop(&self, padded: &[f32]) -> Vec<f32> {
        let (padded_rows, padded_cols) = self.padded;
        let c = self.channels;
        let mut out = vec![0.0; self.batch * self.height * self.width * c];
        // Input column w is padded column w − offset.
        let (first, end, source) = Taps::valid(-self.taps.offset.1, 0, self.width, padded_cols);
        out.par_chunks_mut(self.width * c)
            .enumerate()
            .for_each(|(row, out)| {
                let (b, h) = (row / self.height, row % self.height);
                let r = h as isize - self.taps.offset.0;
                if (0..padded_rows as isize).contains(&r) && end > first {
                    let at = ((b * padded_rows + r as usize) * padded_cols + source) * c;
                    out[first * c..end * c].copy_from_slice(&padded[at..at + (end - first) * c]);
                }
            });
        out
    }
}

impl WindowBackend for Flex {
    fn window_affine(
        x: FlexTensor,
        matrix: FlexTensor,
        bias: FlexTensor,
        taps: Taps,
    ) -> FlexTensor {
        let grid = Grid::new(x.layout().shape(), taps);
        if !grid.pays() {
            return composed_affine::<Flex>(x, matrix, bias, taps);
        }
        assert_eq!(
            x.dtype(),
            DType::F32,
            "the model's products are computed in f32"
        );
        let x = x.to_contiguous();
        let n = matrix.layout().shape()[1];
        let bias = bias.to_contiguous();
        let mut full = bias_rows(bias.storage(), grid.pixels());
        let (kernel_rows, kernel_cols) = taps.kernel;
        let (rhs_rows, rhs_cols) = strides(&matrix);
        let c = grid.channels;
        // Window row i: its taps' rows of `matrix` times the padded map from pixel i·Wp on.
        let product = |i: usize| Product {
            m: grid.pixels(),
            k: kernel_cols * c,
            n,
            lhs: std::ptr::null(),
            lhs_strides: (c as isize, 1),
            rhs: first_element(&matrix).wrapping_offset((i * kernel_cols * c) as isize * rhs_rows),
            rhs_strides: (rhs_rows, rhs_cols),
        };
        let padded = match rounds(&product(0), c) {
            #[cfg(target_arch = "x86_64")]
            true => Map::Rounded(grid.pad_rounded(x.storage())),
            _ => Map::F32(grid.pad(x.storage())),
        };
        for i in 0..kernel_rows {
            let rows = (i * grid.padded.1 * c, c);
            // SAFETY: row p of the left factor reads padded pixels p + i·Wp … p + i·Wp + kw − 1,
            // inside the padded map and its `reach` pixels of zeros; the right factor is rows
            // of `matrix`; `full` holds `pixels × n` initialised values.
            unsafe { padded.multiply(product(i), rows, full.as_mut_ptr(), true) };
        }
        let (rows, cols) = taps.output;
        flex_tensor(grid.crop(&full, n), Shape::new([grid.batch, rows, cols, n]))
    }

    fn window_input_gradient(
        grad: FlexTensor,
        matrix: FlexTensor,
        shape: Shape,
        taps: Taps,
    ) -> FlexTensor {
        let grid = Grid::new(&shape, taps);
        if !grid.pays() {
            return composed_input_gradient::<Flex>(grad, matrix, shape, taps);
        }
        let grad = grad.to_contiguous();
        let matrix = matrix.to_contiguous();
        let n = matrix.layout().shape()[1];
        let (kernel_rows, kernel_cols) = taps.kernel;
        let c = grid.channels;
        // Row p of the shifted view reads the gradient at pixels p − kw + 1 … p.
        let product = |reversed: &[f32]| Product {
            m: grid.pixels(),
            k: kernel_cols * n,
            n: c,
            lhs: std::ptr::null(),
            lhs_strides: (n as isize, 1),
            rhs: reversed.as_ptr(),
            rhs_strides: (c as isize, 1),
        };
        let lead = kernel_cols - 1;
        let spread = match rounds(&product(&[]), n) {
            #[cfg(target_arch = "x86_64")]
            true => Map::Rounded(grid.spread_rounded(grad.storage(), n, lead)),
            _ => Map::F32(grid.spread(grad.storage(), n, lead)),
        };
        let (written, len) = (grid.pixels() * c, (grid.pixels() + grid.reach()) * c);
        let mut padded = Vec::<f32>::with_capacity(len);
        // Window row 0's product writes the first `pixels` rows without reading them; the rows
        // after them, which later window rows add onto, start at zero.
        padded.spare_capacity_mut()[written..len].fill(std::mem::MaybeUninit::new(0.0));
        for i in 0..kernel_rows {
            let reversed = reversed_row(matrix.storage(), i, kernel_cols, c, n);
            // SAFETY: row p of the left factor reads `kw` pixels of `spread` from p on, inside
            // its `kw − 1` leading pixels and `pixels` after them; the output, `pixels` rows of
            // `c` from padded pixel i·Wp on, lies inside the padded map and its reach. Window
            // row 0 writes rows 0..pixels; the later ones add onto rows written or zeroed.
            let out = padded.spare_capacity_mut()[i * grid.padded.1 * c..].as_mut_ptr();
            unsafe { spread.multiply(product(&reversed), (0, n), out.cast(), i > 0) };
        }
        // SAFETY: window row 0 wrote the first `written` values and the rest were zeroed.
        unsafe { padded.set_len(len) };
        flex_tensor(grid.uncrop(&padded), shape)
    }

    fn window_weight_gradient(x: FlexTensor, grad: FlexTensor, taps: Taps) -> FlexTensor {
        let grid = Grid::new(x.layout().shape(), taps);
        if !grid.pays() {
            return composed_weight_gradient::<Flex>(x, grad, taps);
        }
        let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
        let n = grad.layout().shape()[3];
        let (kernel_rows, kernel_cols) = taps.kernel;
        let c = grid.channels;
        let padded = grid.pad(x.storage());
        let spread = grid.spread(grad.storage(), n, 0);
        let mut gradient = vec![0.0; kernel_rows * kernel_cols * c * n];
        for i in 0..kernel_rows {
            let product = Product {
                m: kernel_cols * c,
                k: grid.pixels(),
                n,
                lhs: padded[i * grid.padded.1 * c..].as_ptr(),
                lhs_strides: (1, c as isize),
                rhs: spread.as_ptr(),
                rhs_strides: (n as isize, 1),
            };
            // SAFETY: as in the forward pass, transposed; `gradient` has room for the `kw · c`
            // rows of window row i.
            let out = gradient[i * kernel_cols * c * n..].as_mut_ptr();
            unsafe { product.run(out, false) };
        }
        flex_tensor(gradient, Shape::new([kernel_rows * kernel_cols * c, n]))
    }
}

/// A map whose overlapping rows are the left factors of a window's products: f32, or, when
/// they run in bf16, rounded to bf16 pairs as it was copied (once, instead of in each
/// product's packing of its rows, which would round every value `kw` times).
enum Map {
    F32(Vec<f32>),
    #[cfg(target_arch = "x86_64")]
    Rounded(Vec<u32>),
}

impl Map {
    /// `product` with the map's rows from value `start` on, `row` values (a pixel) apart, as its
    /// left factor, written into `out` or added there if `accumulate`.
    ///
    /// # Safety
    /// As [`Product::run`], for the product's rows inside the map (and, rounded, the zeros
    /// after it).
    unsafe fn multiply(
        &self,
        product: Product,
        (start, row): (usize, usize),
        out: *mut f32,
        accumulate: bool,
    ) {
        match self {
            Map::F32(values) => {
                let product = Product {
                    lhs: values[start..].as_ptr(),
                    lhs_strides: (row as isize, 1),
                    ..product
                };
                // SAFETY: as for this function.
                unsafe { product.run(out, accumulate) }
            }
            #[cfg(target_arch = "x86_64")]
            Map::Rounded(pairs) => {
                let left = (&pairs[start / 2..], row / 2);
                // SAFETY: as for this function; the map was rounded with its zeros after it.
                unsafe { bf16::write_rounded(&product, left, out, accumulate, product.parallel()) }
            }
        }
    }
}

/// Whether a window's products like `product`, over a map of `row` values a pixel, read it
/// rounded to bf16 ([`Map::Rounded`]).
fn rounds(product: &Product, row: usize) -> bool {
    product.in_bf16() && row.is_multiple_of(2) && product.k.is_multiple_of(2)
}

/// The weights of window row `i` (`matrix` `[kh·kw·C, N]`) for the input gradient: `[kw·N, C]`,
/// block `j'` the transpose of tap `kw − 1 − j'`'s `[C, N]`.
fn reversed_row(matrix: &[f32], i: usize, kernel_cols: usize, c: usize, n: usize) -> Vec<f32> {
    let mut reversed = vec![0.0; kernel_cols * n * c];
    for (block, out) in reversed.chunks_mut(n * c).enumerate() {
        let tap = i * kernel_cols + kernel_cols - 1 - block;
        let weights = &matrix[tap * c * n..(tap + 1) * c * n];
        for (ch, row) in weights.chunks(n).enumerate() {
            for (o, &w) in row.iter().enumerate() {
                out[o * c + ch] = w;
            }
        }
    }
    reversed
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::*;
    use crate::ops::columns::columns;
    use crate::ops::matmul::affine;

    /// The output of `convolve` on `x`, and the gradients of `x`, the weights and the bias of
    /// the output's sum weighted by `weights`.
    fn outputs_and_gradients(
        convolve: impl Fn(Tensor<4>, Tensor<2>, Tensor<1>) -> Tensor<4>,
        (x, matrix, bias, weights): (&Tensor<4>, &Tensor<2>, &Tensor<1>, &Tensor<4>),
    ) -> [TensorData; 4] {
        let x = x.clone().require_grad();
        let matrix = matrix.clone().require_grad();
        let bias = bias.clone().require_grad();
        let y = convolve(x.clone(), matrix.clone(), bias.clone());
        let grads = (y.clone() * weights.clone()).sum().backward();
        [
            y.inner().into_data(),
            x.grad(&grads).unwrap().into_data(),
            matrix.grad(&grads).unwrap().into_data(),
            bias.grad(&grads).unwrap().into_data(),
        ]
    }

    #[test]
    fn shifted_products_equal_the_column_matrix_forward_and_backward() {
        let device = Device::flex().autodiff();
        let [batch, height, width, channels, outputs] = [3, 20, 20, 5, 7];
        let cases = [
            // The vertical stack's 2×3 window over the rows above, one output row more.
            ((2, 3), (-2, -1), (height + 1, width)),
            // The horizontal stack's 1×2 window, with and without the current pixel.
            ((1, 2), (0, -1), (height, width)),
            ((1, 2), (0, -2), (height, width)),
            // A centred 3×3 window, and one reading mostly outside the map.
            ((3, 3), (-1, -1), (height, width)),
            ((2, 2), (9, 12), (height, width)),
        ];
        for (kernel, offset, output) in cases {
            let taps = Taps {
                kernel,
                offset,
                output,
            };
            let grid = Grid::new(&Shape::new([batch, height, width, channels]), taps);
            assert!(grid.pays(), "{taps:?} takes the shifted products");
            let depth = kernel.0 * kernel.1 * channels;
            let normal = Distribution::Normal(0.0, 1.0);
            let x = Tensor::<4>::random([batch, height, width, channels], normal, &device);
            let matrix = Tensor::<2>::random([depth, outputs], normal, &device);
            let bias = Tensor::<1>::random([outputs], normal, &device);
            let weights =
                Tensor::<4>::random([batch, output.0, output.1, outputs], normal, &device);
            let inputs = (&x, &matrix, &bias, &weights);
            let shifted = outputs_and_gradients(|x, m, b| window_affine(x, m, b, taps), inputs);
            let reference = outputs_and_gradients(
                |x, m, b| {
                    let columns = columns(x, taps).reshape([batch * output.0 * output.1, depth]);
                    affine(columns, m, b).reshape([batch, output.0, output.1, outputs])
                },
                inputs,
            );
            for (name, (ours, theirs)) in ["output", "∂x", "∂W", "∂b"]
                .iter()
                .zip(shifted.iter().zip(&reference))
            {
                assert_eq!(ours.shape(), theirs.shape(), "{name} of {taps:?}");
                ours.assert_approx_eq::<f32>(theirs, Tolerance::absolute(1e-3));
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn maps_rounded_as_they_are_copied_equal_the_copies_rounded() {
        if !crate::ops::bf16_available() {
            let required = std::env::var_os("PIXELCNN_REQUIRE_BF16");
            assert!(required.is_none(), "this processor lacks AVX-512 BF16");
            return;
        }
        let (shape, n) = (Shape::new([2, 5, 6, 4]), 6);
        let taps = Taps {
            kernel: (2, 3),
            offset: (-2, -1),
            output: (6, 6),
        };
        let grid = Grid::new(&shape, taps);
        let x: Vec<f32> = (0..shape.num_elements())
            .map(|v| v as f32 * 0.37 - 9.0)
            .collect();
        let grad: Vec<f32> = (0..2 * 6 * 6 * n).map(|v| 5.0 - v as f32 * 0.11).collect();
        let rounded = |values: Vec<f32>, row: usize| {
            let mut pairs = bf16::rounded_zeros(values.len() / row, row);
            bf16::round_into(&values, &mut pairs[..values.len() / 2]);
            pairs
        };
        assert_eq!(grid.pad_rounded(&x), rounded(grid.pad(&x), 4));
        let spread = grid.spread(&grad, n, 2);
        assert_eq!(grid.spread_rounded(&grad, n, 2), rounded(spread, n));
    }

    #[test]
    fn a_few_rows_take_the_column_matrix() {
        let taps = |rows| Taps {
            kernel: (2, 3),
            offset: (-2, -1),
            output: (rows, 28),
        };
        let grid = |rows| Grid::new(&Shape::new([4, 28, 28, 16]), taps(rows));
        assert!(
            !grid(1).pays(),
            "one row of the sampler: half the padded grid wasted"
        );
        assert!(grid(29).pays());
    }
}
