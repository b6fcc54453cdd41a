//! `cargo bench -p pixelcnn-benches --bench bf16`: whether bf16 matrix products would speed up
//! training here.
//!
//! The three products of a config P training step's vertical convolution (batch 32, 28×28, the
//! 2×3 window over 64 channels into 128): forward `X W` `[25088, 384] × [384, 128]`, `∂L/∂X =
//! G Wᵀ` and `∂L/∂W = Xᵀ G`, each in f32 with `gemm` (as the crate computes them, the weight
//! gradient on one thread per part of its contraction, as `crate::ops::matmul` splits it, and
//! also as one product on all threads, as before that split) and
//! with bf16 inputs and f32 accumulation on the processor's AVX-512 BF16 dot product
//! (`vdpbf16ps`, through the `gemmkit` crate's kernel with f32 output): the kernel alone on
//! operands already in bf16, and with the conversion of the f32 operands the model holds.
//! docs/speed.md has the figures and what they decided. On a processor without AVX-512 BF16
//! only the f32 products are measured.

use criterion::{Criterion, criterion_group, criterion_main};
use gemmkit::bf16;
use rayon::prelude::*;

const ROWS: usize = 32 * 28 * 28;
const DEPTH: usize = 2 * 3 * 64;
const OUTPUTS: usize = 128;
/// Parts of the weight gradient's contraction, as in `crate::ops::matmul`.
const PARTS: usize = 8;

/// A strided `rows × cols` f32 view: its first element and its row and column strides.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    strides: (isize, isize),
}

impl View<'_> {
    fn at(&self, row: usize, col: usize) -> f32 {
        let (r, c) = self.strides;
        self.data[(row as isize * r + col as isize * c) as usize]
    }

    /// The view as a contiguous row-major bf16 matrix, converted in parallel.
    fn to_bf16(self) -> Vec<bf16> {
        let mut out = vec![bf16::ZERO; self.rows * self.cols];
        out.par_chunks_mut(self.cols)
            .enumerate()
            .for_each(|(row, values)| {
                for (col, value) in values.iter_mut().enumerate() {
                    *value = bf16::from_f32(self.at(row, col));
                }
            });
        out
    }
}

/// `lhs · rhs` into row-major `out`, f32, `gemm` on all threads.
fn f32_product(lhs: View, rhs: View, out: &mut [f32], parallel: bool) {
    let ((lr, lc), (rr, rc)) = (lhs.strides, rhs.strides);
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the views address `rows × cols` elements inside their slices; `out` holds
    // `lhs.rows × rhs.cols` values.
    unsafe {
        gemm::gemm(
            lhs.rows,
            rhs.cols,
            lhs.cols,
            out.as_mut_ptr(),
            1,
            rhs.cols as isize,
            false,
            lhs.data.as_ptr(),
            lc,
            lr,
            rhs.data.as_ptr(),
            rc,
            rr,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The weight gradient's form: the contraction in [`PARTS`] slices, one thread each, summed.
fn f32_split_product(lhs: View, rhs: View, out: &mut [f32]) {
    let len = out.len();
    let depth = lhs.cols;
    let parts: Vec<Vec<f32>> = (0..PARTS)
        .into_par_iter()
        .map(|part| {
            let (start, end) = (part * depth / PARTS, (part + 1) * depth / PARTS);
            let (_, lc) = lhs.strides;
            let (rr, _) = rhs.strides;
            let lhs = View {
                data: &lhs.data[(start as isize * lc) as usize..],
                cols: end - start,
                ..lhs
            };
            let rhs = View {
                data: &rhs.data[(start as isize * rr) as usize..],
                rows: end - start,
                ..rhs
            };
            let mut partial = vec![0.0; len];
            f32_product(lhs, rhs, &mut partial, false);
            partial
        })
        .collect();
    out.fill(0.0);
    for partial in parts {
        out.iter_mut().zip(partial).for_each(|(o, p)| *o += p);
    }
}

/// `lhs · rhs` of contiguous row-major bf16 matrices (`m × k`, `k × n`) into row-major f32 `out`
/// with the AVX-512 BF16 kernel, packing in `workspace`.
///
/// # Safety
/// The processor has AVX-512 BF16 and F.
unsafe fn bf16_product(
    lhs: &[bf16],
    rhs: &[bf16],
    (m, k, n): (usize, usize, usize),
    out: &mut [f32],
    workspace: &mut gemmkit::Workspace,
) {
    use gemmkit::kernel::Bf16DotGemmF32;
    use gemmkit::simd::Avx512Bf16;
    // The kernel writes a column-major output: compute `outᵀ = rhsᵀ lhsᵀ` into it.
    // SAFETY: the slices hold the matrices; the caller checked the processor.
    unsafe {
        gemmkit::driver::run::<Bf16DotGemmF32, Avx512Bf16, 2, 12>(
            Avx512Bf16,
            n,
            k,
            m,
            1.0,
            rhs.as_ptr(),
            1,
            n as isize,
            lhs.as_ptr(),
            1,
            k as isize,
            0.0,
            out.as_mut_ptr(),
            1,
            n as isize,
            gemmkit::Parallelism::Rayon(0),
            workspace,
        )
    }
}

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + seed) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn products(c: &mut Criterion) {
    let x = values(ROWS * DEPTH, 1);
    let w = values(DEPTH * OUTPUTS, 2);
    let g = values(ROWS * OUTPUTS, 3);
    let row_major = |data, rows, cols: usize| View {
        data,
        rows,
        cols,
        strides: (cols as isize, 1),
    };
    let transposed = |data, rows: usize, cols| View {
        data,
        rows,
        cols,
        strides: (1, rows as isize),
    };
    let cases = [
        (
            "forward",
            row_major(&x, ROWS, DEPTH),
            row_major(&w, DEPTH, OUTPUTS),
        ),
        (
            "grad_x",
            row_major(&g, ROWS, OUTPUTS),
            transposed(&w, OUTPUTS, DEPTH),
        ),
        (
            "grad_w",
            transposed(&x, DEPTH, ROWS),
            row_major(&g, ROWS, OUTPUTS),
        ),
    ];
    let bf16_dot = std::arch::is_x86_feature_detected!("avx512bf16")
        && std::arch::is_x86_feature_detected!("avx512f");
    let mut group = c.benchmark_group("bf16");
    group.sample_size(20);
    for (name, lhs, rhs) in cases {
        let mut out = vec![0.0f32; lhs.rows * rhs.cols];
        group.bench_function(format!("{name}/f32"), |b| {
            b.iter(|| match name {
                "grad_w" => f32_split_product(lhs, rhs, &mut out),
                _ => f32_product(lhs, rhs, &mut out, true),
            })
        });
        if name == "grad_w" {
            // The weight gradient as one product, as before the split.
            group.bench_function("grad_w/f32_one_product", |b| {
                b.iter(|| f32_product(lhs, rhs, &mut out, true))
            });
        }
        if !bf16_dot {
            continue;
        }
        let shape = (lhs.rows, lhs.cols, rhs.cols);
        let (lhs_bf16, rhs_bf16) = (lhs.to_bf16(), rhs.to_bf16());
        let mut workspace = gemmkit::Workspace::new();
        let ws = &mut workspace;
        // SAFETY (both): the processor has AVX-512 BF16 and F, checked above.
        group.bench_function(format!("{name}/bf16_kernel"), |b| {
            b.iter(|| unsafe { bf16_product(&lhs_bf16, &rhs_bf16, shape, &mut out, ws) })
        });
        group.bench_function(format!("{name}/bf16_with_conversion"), |b| {
            b.iter(|| unsafe { bf16_product(&lhs.to_bf16(), &rhs.to_bf16(), shape, &mut out, ws) })
        });
    }
    group.finish();
}

criterion_group!(benches, products);
criterion_main!(benches);
