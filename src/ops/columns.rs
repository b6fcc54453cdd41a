//! The column matrix ("im2col") of a window convolution on a channels-last map, as one backend
//! operation with its own backward pass; [`super::channels_last`] multiplies it by the weights.
//!
//! For a window of `kh × kw` taps starting at `offset` from each output pixel, the columns of
//! output pixel `(r, c)` are the input pixels `(r + offset.0 + i, c + offset.1 + j)` for every tap
//! `(i, j)`, each `C` channels wide, zero where the pixel lies outside the map. The gradient adds
//! each tap's columns back onto the pixels they came from. Composed from burn's primitives (pad,
//! one slice per tap, concatenation) the backward pass allocates a zero map per tap; on the CPU
//! backend this is one parallel pass each way. GPU backends use the composed form.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::{DType, Shape, Slice};

use super::{flex_tensor, par_filled};

/// The taps of a window convolution and where they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taps {
    /// Kernel rows and columns.
    pub kernel: (usize, usize),
    /// Offset (rows, columns) of the first tap from the output pixel.
    pub offset: (isize, isize),
    /// Output rows and columns.
    pub output: (usize, usize),
}

impl Taps {
    pub(super) fn count(&self) -> usize {
        self.kernel.0 * self.kernel.1
    }

    /// Every tap `(i, j)` in row-major order.
    fn each(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.kernel.0).flat_map(|i| (0..self.kernel.1).map(move |j| (i, j)))
    }

    /// For tap `i` along one axis of an input `size` long: the output range whose source pixels
    /// lie inside the input, and the first source pixel.
    pub(super) fn valid(
        offset: isize,
        tap: usize,
        output: usize,
        size: usize,
    ) -> (usize, usize, usize) {
        let shift = offset + tap as isize;
        let first = (-shift).clamp(0, output as isize) as usize;
        let end = (size as isize - shift).clamp(first as isize, output as isize) as usize;
        // An empty range reads from source 0.
        let source = if end > first {
            (first as isize + shift) as usize
        } else {
            0
        };
        (first, end, source)
    }

    /// For every tap that reads inside a `height × width` map of `channels`: the region of the
    /// columns it fills and the region of the map it reads.
    fn regions(
        &self,
        height: usize,
        width: usize,
        channels: usize,
    ) -> impl Iterator<Item = ([Slice; 4], [Slice; 4])> + '_ {
        self.each().enumerate().filter_map(move |(index, (i, j))| {
            let (r0, r1, h0) = Self::valid(self.offset.0, i, self.output.0, height);
            let (c0, c1, w0) = Self::valid(self.offset.1, j, self.output.1, width);
            (r0 < r1 && c0 < c1).then(|| {
                (
                    region(r0..r1, c0..c1, index * channels..(index + 1) * channels),
                    region(h0..h0 + r1 - r0, w0..w0 + c1 - c0, 0..channels),
                )
            })
        })
    }
}

/// The column matrix as a backend operation.
#[backend_extension(Flex, Cube: cfg(any(feature = "wgpu", feature = "cuda")), Autodiff)]
pub trait ColumnsBackend: Backend {
    /// `[B, H, W, C]` → `[B, rows, cols, taps · C]`.
    fn columns(x: FloatTensor<Self>, taps: Taps) -> FloatTensor<Self> {
        let [batch, height, width, channels] = x.shape().dims();
        let (rows, cols) = taps.output;
        let shape = Shape::new([batch, rows, cols, taps.count() * channels]);
        let mut out = Self::float_zeros(shape, &x.device(), x.dtype().into());
        for (block, source) in taps.regions(height, width, channels) {
            let source = Self::float_slice(x.clone(), &source);
            out = Self::float_slice_assign(out, &block, source);
        }
        out
    }

    /// The gradient with respect to the input `[B, H, W, C]` of `shape`, given the gradient
    /// `grad` of the columns.
    fn columns_backward(grad: FloatTensor<Self>, shape: Shape, taps: Taps) -> FloatTensor<Self> {
        let [_, height, width, channels] = shape.dims();
        let mut out = Self::float_zeros(shape, &grad.device(), grad.dtype().into());
        for (block, target) in taps.regions(height, width, channels) {
            let part = Self::float_slice(grad.clone(), &block);
            let sum = Self::float_add(Self::float_slice(out.clone(), &target), part);
            out = Self::float_slice_assign(out, &target, sum);
        }
        out
    }
}

/// Slices of every image over rows, columns and channels.
fn region(
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    channels: std::ops::Range<usize>,
) -> [Slice; 4] {
    let slice = |range: std::ops::Range<usize>| {
        Slice::new(range.start as isize, Some(range.end as isize), 1)
    };
    [Slice::full(), slice(rows), slice(cols), slice(channels)]
}

/// The column matrix of `x` `[B, H, W, C]` for `taps`: `[B, rows, cols, taps · C]`.
pub fn columns(x: Tensor<4>, taps: Taps) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ColumnsBackend>::columns(
        x.into_dispatch(),
        taps,
    ))
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl ColumnsBackend for burn::backend::Cube {}

impl<B: Backend + ColumnsBackend, C: CheckpointStrategy> ColumnsBackend for Autodiff<B, C> {
    fn columns(x: FloatTensor<Self>, taps: Taps) -> FloatTensor<Self> {
        let step = ColumnsGradient { taps };
        match step.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let input = x.into_primitive();
                let shape = input.shape();
                prep.finish(shape, B::columns(input, taps))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::columns(x.into_primitive(), taps)),
        }
    }
}

/// The backward step of [`columns`]; its state is the input's shape.
#[derive(Debug)]
struct ColumnsGradient {
    taps: Taps,
}

impl<B: Backend + ColumnsBackend> Backward<B, 1> for ColumnsGradient {
    type State = Shape;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let shape = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::columns_backward(grad, shape, self.taps)
        });
    }
}

impl ColumnsBackend for Flex {
    fn columns(x: FlexTensor, taps: Taps) -> FlexTensor {
        assert_eq!(x.dtype(), DType::F32, "the column matrix is built in f32");
        let x = x.to_contiguous();
        let [batch, height, width, channels] = x.layout().shape().dims();
        let input: &[f32] = x.storage();
        let (rows, cols) = taps.output;
        let row_len = cols * taps.count() * channels;
        let (kernel_rows, kernel_cols) = taps.kernel;
        // One task per output row of one image: it reads whichever input rows its taps cover.
        let out = par_filled(batch * rows * row_len, row_len, |task, out_row| {
            let (b, r) = (task / rows, task % rows);
            let image = &input[b * height * width * channels..][..height * width * channels];
            for i in 0..kernel_rows {
                let h = r as isize + taps.offset.0 + i as isize;
                if !(0..height as isize).contains(&h) {
                    continue;
                }
                let source_row = &image[h as usize * width * channels..][..width * channels];
                // A row of taps reads consecutive pixels, and its columns lie side by side: one
                // copy per output pixel, of the taps that fall inside the map.
                for c in 0..cols {
                    let first = c as isize + taps.offset.1;
                    let j0 = (-first).clamp(0, kernel_cols as isize) as usize;
                    let j1 =
                        (width as isize - first).clamp(j0 as isize, kernel_cols as isize) as usize;
                    if j1 == j0 {
                        continue;
                    }
                    let from = (first + j0 as isize) as usize * channels;
                    let at = (c * taps.count() + i * kernel_cols + j0) * channels;
                    let len = (j1 - j0) * channels;
                    out_row[at..at + len].copy_from_slice(&source_row[from..from + len]);
                }
            }
        });
        flex_tensor(
            out,
            Shape::new([batch, rows, cols, taps.count() * channels]),
        )
    }

    fn columns_backward(grad: FlexTensor, shape: Shape, taps: Taps) -> FlexTensor {
        assert_eq!(
            grad.dtype(),
            DType::F32,
            "the column matrix is built in f32"
        );
        let grad = grad.to_contiguous();
        let [batch, height, width, channels] = shape.dims();
        let grad: &[f32] = grad.storage();
        let (rows, cols) = taps.output;
        let grad_row_len = cols * taps.count() * channels;
        // One task per input row of one image: it gathers from the output rows that read it,
        // so no two tasks write the same pixel.
        let out = par_filled(
            batch * height * width * channels,
            width * channels,
            |task, in_row| {
                let (b, h) = (task / height, task % height);
                for (index, (i, j)) in taps.each().enumerate() {
                    let r = h as isize - taps.offset.0 - i as isize;
                    if !(0..rows as isize).contains(&r) {
                        continue;
                    }
                    let (c0, c1, w0) = Taps::valid(taps.offset.1, j, cols, width);
                    let grad_row = &grad[(b * rows + r as usize) * grad_row_len..][..grad_row_len];
                    for (k, c) in (c0..c1).enumerate() {
                        let at = (c * taps.count() + index) * channels;
                        let target = &mut in_row[(w0 + k) * channels..(w0 + k + 1) * channels];
                        for (t, g) in target.iter_mut().zip(&grad_row[at..at + channels]) {
                            *t += g;
                        }
                    }
                }
            },
        );
        flex_tensor(out, shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_keep_sources_inside_the_input() {
        // Tap 0 of a 1×3 row window centred on 5 columns reads column c − 1: outputs 1..5 from 0.
        assert_eq!(Taps::valid(-1, 0, 5, 5), (1, 5, 0));
        // Tap 2 reads c + 1: outputs 0..4 from 1.
        assert_eq!(Taps::valid(-1, 2, 5, 5), (0, 4, 1));
        // Two rows above, 6 output rows of a 5-row map: tap 1 reads r − 1, outputs 1..6 from 0.
        assert_eq!(Taps::valid(-2, 1, 6, 5), (1, 6, 0));
        // A tap entirely outside reads nothing.
        assert_eq!(Taps::valid(-9, 0, 5, 5), (5, 5, 0));
        assert_eq!(Taps::valid(9, 0, 5, 5), (0, 0, 0));
    }

    #[test]
    fn each_column_holds_its_taps_pixel_or_zero_outside_the_map() {
        let [batch, height, width, channels] = [2, 5, 7, 3];
        let values: Vec<f32> = (0..batch * height * width * channels)
            .map(|i| i as f32 + 1.0)
            .collect();
        let device = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new(values.clone(), [batch, height, width, channels]),
            &device,
        );
        let at = |b: usize, h: isize, w: isize, ch: usize| {
            let inside = (0..height as isize).contains(&h) && (0..width as isize).contains(&w);
            let index = ((b * height + h.max(0) as usize) * width + w.max(0) as usize) * channels;
            if inside { values[index + ch] } else { 0.0 }
        };
        for taps in [
            // The vertical stack's 2×3 window over rows above, one row more than the map.
            Taps {
                kernel: (2, 3),
                offset: (-2, -1),
                output: (height + 1, width),
            },
            // The horizontal stack's 1×2 window, the first layer's that skips the current pixel.
            Taps {
                kernel: (1, 2),
                offset: (0, -2),
                output: (height, width),
            },
            // Wider than the map, windows hanging over both edges, and a part of the map only.
            Taps {
                kernel: (3, 9),
                offset: (-1, -4),
                output: (height, width),
            },
            Taps {
                kernel: (2, 2),
                offset: (1, 2),
                output: (2, 3),
            },
        ] {
            let columns: Vec<f32> = columns(x.clone(), taps).into_data().try_to_vec().unwrap();
            let (kernel_rows, kernel_cols) = taps.kernel;
            let (rows, cols) = taps.output;
            let mut expected = Vec::new();
            for b in 0..batch {
                for r in 0..rows {
                    for c in 0..cols {
                        for i in 0..kernel_rows {
                            for j in 0..kernel_cols {
                                let h = r as isize + taps.offset.0 + i as isize;
                                let w = c as isize + taps.offset.1 + j as isize;
                                expected.extend((0..channels).map(|ch| at(b, h, w, ch)));
                            }
                        }
                    }
                }
            }
            assert_eq!(columns, expected, "{taps:?}");
        }
    }
}
