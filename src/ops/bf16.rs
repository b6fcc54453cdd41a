//! Matrix products with bf16 operands and f32 accumulation, the CPU's mixed precision
//! (`--precision bf16`). The paper trains in f32; this is a speed option, off by default.
//!
//! bf16 keeps f32's exponent and 8 bits of its mantissa. Processors with AVX-512 BF16 multiply
//! pairs of bf16 values and add both products into an f32 lane in one instruction
//! (`vdpbf16ps`): 32 multiply-adds per instruction where an f32 FMA does 16. Each product here
//! rounds its operands to bf16 (round to nearest even; subnormal inputs count as zero, as the
//! instruction does) while packing them into blocks, and accumulates in f32: the result is the
//! f32 product of the rounded operands up to the order of the additions. Weights, gradients,
//! optimiser state, the gates and the likelihood stay f32 ([`super::matmul::Product`] calls this
//! only for its products).
//!
//! Layout, as in BLIS: the contraction is cut into blocks of [`KC`]; for each, the right factor
//! is packed into panels of [`NR`] columns holding, for each pair of rows `(2q, 2q + 1)`, the
//! bf16 pairs of each column as one 32-bit value; the left factor is packed [`MC`] rows at a
//! time (one parallel task each) as bf16 pairs along the contraction, and a micro-kernel
//! multiplies [`MR`] packed rows by one panel into a tile of `MR × NR` f32 accumulators held in
//! registers, one pair of the left factor broadcast against a panel row per instruction. The
//! left factors of a window convolution ([`super::window`]) are overlapping rows of one map,
//! which would be rounded once per row of the window's taps: that map is instead rounded as it
//! is copied onto its padded grid ([`rounded_zeros`], [`round_into`]) and the tiles read their
//! rows there ([`write_rounded`]). (Rounding it in a pass of its own was slower than rounding
//! the rows again while packing them, which reads them from the cache.)

use std::arch::x86_64::*;
use std::cell::RefCell;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::matmul::Product;

/// Rows of a micro-kernel tile.
const MR: usize = 12;
/// Columns of a micro-kernel tile: two vectors of 16 f32 accumulators.
const NR: usize = 32;
/// Contraction per block (even, so that blocks start on a pair).
const KC: usize = 512;
/// Rows of the left factor per parallel task (a whole number of tiles).
const MC: usize = 10 * MR;

/// Whether this processor has the instructions (AVX-512 F, BW and BF16), checked once.
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512bf16")
    })
}

/// The shortest inner dimension and output width (columns) of a product that runs in bf16.
const MIN_SIDE: usize = 32;
/// The fewest rows of a product that runs in bf16.
const MIN_ROWS: usize = 64;

/// Whether `product` is large enough to run in bf16: at least [`MIN_SIDE`] deep and wide and
/// [`MIN_ROWS`] long. Smaller products — the first layer's, the last layer of the head's, the
/// weight gradients of narrow layers (few rows against a contraction over every pixel) — spend
/// more on packing than the faster multiply saves, and stay f32 (docs/speed.md).
pub(super) fn pays(product: &Product) -> bool {
    product.k >= MIN_SIDE && product.n >= MIN_SIDE && product.m >= MIN_ROWS
}

/// `x` rounded to bf16 (to nearest, ties to even; NaN stays NaN, subnormals become zero), as
/// the upper 16 bits of its f32 encoding.
fn bf16_bits(x: f32) -> u32 {
    let bits = x.to_bits();
    if x.is_nan() {
        (bits >> 16) | 0x40
    } else if bits & 0x7f80_0000 == 0 {
        (bits >> 16) & 0x8000
    } else {
        (bits + 0x7fff + ((bits >> 16) & 1)) >> 16
    }
}

/// `x` rounded to bf16, back as an f32: the value the products multiply.
#[cfg(test)]
fn rounded(x: f32) -> f32 {
    f32::from_bits(bf16_bits(x) << 16)
}

/// Two values as one packed pair: `first` in the low half.
fn pair(first: f32, second: f32) -> u32 {
    bf16_bits(first) | bf16_bits(second) << 16
}

/// Writes `lhs · rhs` of `product` into the contiguous `[M, N]` matrix at `out`, or adds it
/// there if `accumulate`, on all threads if `parallel`.
///
/// # Safety
/// As [`Product::run`], with `k > 0`; [`available`] must be true.
pub(super) unsafe fn write(product: &Product, out: *mut f32, accumulate: bool, parallel: bool) {
    // SAFETY: as for this function.
    unsafe { run(product, Left::Packed, out, accumulate, parallel) };
}

/// Zeros for `pixels` pixels of `row` values (`row` even) as bf16 pairs, and after them enough
/// for the last tile of a product whose rows start a pixel apart ([`write_rounded`]); a map is
/// rounded into it with [`round_into`].
pub(super) fn rounded_zeros(pixels: usize, row: usize) -> Vec<u32> {
    assert!(row.is_multiple_of(2));
    vec![0; (pixels + MR + 1) * row / 2]
}

/// `from` (an even number of values) rounded to bf16 pairs into `into`.
pub(super) fn round_into(from: &[f32], into: &mut [u32]) {
    assert!(from.len().is_multiple_of(2) && into.len() == from.len() / 2);
    assert!(available(), "bf16 rounding needs AVX-512 BF16");
    // SAFETY: `from` holds `2 · into.len()` values, and the processor has the instructions.
    unsafe { convert_run(from.as_ptr(), from.len(), into) };
}

/// [`write`] for a product whose left factor was rounded beforehand: row `i`'s pairs start at
/// `rounded[i · stride]` (a map in [`rounded_zeros`], rows a pixel apart). The product's own
/// left factor is not read.
///
/// # Safety
/// As [`write`]; the depth must be even and `rounded` must hold the pairs of `M` rows and the
/// zeros that [`rounded_zeros`] adds after them.
pub(super) unsafe fn write_rounded(
    product: &Product,
    (rounded, stride): (&[u32], usize),
    out: *mut f32,
    accumulate: bool,
    parallel: bool,
) {
    let Product { m, k, .. } = *product;
    assert!(k.is_multiple_of(2) && rounded.len() >= (m + MR - 1) * stride + k / 2);
    let left = Left::Rounded { rounded, stride };
    // SAFETY: as for this function.
    unsafe { run(product, left, out, accumulate, parallel) };
}

/// Where the tiles' rows of the left factor come from.
#[derive(Clone, Copy)]
enum Left<'a> {
    /// The product's own f32 view, rounded and packed per block of rows.
    Packed,
    /// Rows rounded beforehand: row `i`'s pairs from `rounded[i · stride]`.
    Rounded { rounded: &'a [u32], stride: usize },
}

/// [`write`] with the left factor from `left`.
///
/// # Safety
/// As [`write`] and [`write_rounded`].
unsafe fn run(product: &Product, left: Left, out: *mut f32, accumulate: bool, parallel: bool) {
    let Product { m, k, .. } = *product;
    let out = Output(out);
    for start in (0..k).step_by(KC) {
        let depth = KC.min(k - start);
        // SAFETY: the block lies inside the right factor's view.
        let panels = unsafe { pack_rhs(product, start, depth) };
        let add = accumulate || start > 0;
        let task = |block: usize| {
            let rows = block * MC..m.min((block + 1) * MC);
            // SAFETY: the rows and the block lie inside the views; each task writes its own
            // rows of the output.
            unsafe { multiply_block(product, left, &panels, (rows, start, depth), out, add) };
        };
        if parallel {
            (0..m.div_ceil(MC)).into_par_iter().for_each(task);
        } else {
            (0..m.div_ceil(MC)).for_each(task);
        }
    }
}

thread_local! {
    /// Each thread's buffer for its packed rows of the left factor.
    static PACKED_LHS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// The output pointer, shared by the tasks that each write their own rows.
#[derive(Clone, Copy)]
struct Output(*mut f32);

// SAFETY: the tasks write disjoint rows through it (see `write`).
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

/// Rows `rows` of the left factor times the packed block of the right factor, for the
/// contraction `start .. start + depth`, written into (or added onto, if `add`) those rows of
/// `out`.
///
/// # Safety
/// As [`write`], for rows inside `0..M`.
unsafe fn multiply_block(
    product: &Product,
    left: Left,
    panels: &[u32],
    (rows, start, depth): (std::ops::Range<usize>, usize, usize),
    out: Output,
    add: bool,
) {
    let pairs = depth.div_ceil(2);
    PACKED_LHS.with_borrow_mut(|packed| {
        let (lhs, layout): (&[u32], _) = match left {
            Left::Packed => {
                // SAFETY: as for this function.
                let layout = unsafe { pack_lhs(product, rows.clone(), start, depth, packed) };
                (packed, layout)
            }
            Left::Rounded { rounded, stride } => {
                let layout = Layout {
                    row: stride,
                    pair: 1,
                };
                (&rounded[rows.start * stride + start / 2..], layout)
            }
        };
        for (panel, column) in (0..product.n).step_by(NR).enumerate() {
            let columns = NR.min(product.n - column);
            let rhs = &panels[panel * pairs * NR..(panel + 1) * pairs * NR];
            for (tile, row) in rows.clone().step_by(MR).enumerate() {
                let lhs = &lhs[layout.tile(tile, pairs)..];
                let c = out.0.wrapping_add(row * product.n + column);
                let shape = (MR.min(rows.end - row), columns, product.n);
                // SAFETY: the tile's rows and columns lie inside the `[M, N]` output.
                unsafe { tile_product(pairs, lhs, layout, rhs, c, shape, add) };
            }
        }
    });
}

/// How a tile's packed rows of the left factor lie: pair `q` of row `r` at
/// `r · row + q · pair` (32-bit units).
#[derive(Clone, Copy)]
struct Layout {
    row: usize,
    pair: usize,
}

impl Layout {
    /// Where tile `tile` (of rows with `pairs` pairs each) starts.
    fn tile(self, tile: usize, pairs: usize) -> usize {
        match self.pair {
            1 => tile * MR * self.row,
            _ => tile * MR * pairs,
        }
    }
}

/// Packs rows `rows` of the left factor, contraction `start .. start + depth`, into `packed`:
/// tiles of [`MR`] rows (the last padded with zero rows), each `MR × pairs` values. A factor
/// whose rows are contiguous is packed row by row (pairs of a row consecutive); any other
/// (a transposed view) pair by pair (the tile's rows of a pair consecutive).
///
/// # Safety
/// The rows and the contraction range must lie inside the left factor's view.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_lhs(
    product: &Product,
    rows: std::ops::Range<usize>,
    start: usize,
    depth: usize,
    packed: &mut Vec<u32>,
) -> Layout {
    let pairs = depth.div_ceil(2);
    let tiles = rows.len().div_ceil(MR);
    packed.clear();
    packed.resize(tiles * MR * pairs, 0);
    let (row_stride, col_stride) = product.lhs_strides;
    let at = |r: usize, k: usize| {
        product
            .lhs
            .wrapping_offset(r as isize * row_stride + k as isize * col_stride)
    };
    if col_stride == 1 {
        for (i, r) in rows.enumerate() {
            let into = &mut packed[i * pairs..(i + 1) * pairs];
            // SAFETY: `depth` consecutive values of row r from `start` lie in the view.
            unsafe { convert_run(at(r, start), depth, into) };
        }
        Layout {
            row: pairs,
            pair: 1,
        }
    } else {
        for (tile, first) in rows.clone().step_by(MR).enumerate() {
            let count = MR.min(rows.end - first);
            let tile_values = &mut packed[tile * MR * pairs..(tile + 1) * MR * pairs];
            for (q, values) in tile_values.chunks_exact_mut(MR).enumerate() {
                let k = start + 2 * q;
                let second = (2 * q + 1 < depth).then(|| at(first, k + 1));
                if row_stride == 1 {
                    // SAFETY: the tile's `count` rows of columns k and k + 1 are consecutive
                    // values of the view.
                    unsafe { interleave(at(first, k), second, count, values.as_mut_ptr()) };
                    continue;
                }
                for (i, value) in values[..count].iter_mut().enumerate() {
                    // SAFETY: (first + i, k) and, if inside the block, (first + i, k + 1) lie
                    // in the view.
                    *value = unsafe {
                        pair(
                            *at(first + i, k),
                            if second.is_some() {
                                *at(first + i, k + 1)
                            } else {
                                0.0
                            },
                        )
                    };
                }
            }
        }
        Layout { row: 1, pair: MR }
    }
}

/// Packs the contraction `start .. start + depth` of the right factor into panels of [`NR`]
/// columns (the last padded with zero columns), each `pairs × NR` values: pair `q` of column
/// `j` holds rows `start + 2q` and `start + 2q + 1` (zero past the block).
///
/// # Safety
/// The block must lie inside the right factor's view.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_rhs(product: &Product, start: usize, depth: usize) -> Vec<u32> {
    let pairs = depth.div_ceil(2);
    let n = product.n;
    let mut panels = vec![0u32; n.div_ceil(NR) * pairs * NR];
    let (row_stride, col_stride) = product.rhs_strides;
    let at = |k: usize, j: usize| {
        product
            .rhs
            .wrapping_offset(k as isize * row_stride + j as isize * col_stride)
    };
    for (panel, values) in panels.chunks_exact_mut(pairs * NR).enumerate() {
        let first = panel * NR;
        let count = NR.min(n - first);
        for (q, row) in values.chunks_exact_mut(NR).enumerate() {
            let k = start + 2 * q;
            let second = (2 * q + 1 < depth).then(|| at(k + 1, first));
            if col_stride == 1 {
                for half in (0..count).step_by(16) {
                    let second = second.map(|s| s.wrapping_add(half));
                    // SAFETY: columns first + half … of rows k and k + 1 are consecutive
                    // values of the view.
                    unsafe {
                        interleave(
                            at(k, first + half),
                            second,
                            16.min(count - half),
                            row[half..].as_mut_ptr(),
                        )
                    };
                }
                continue;
            }
            for (i, value) in row[..count].iter_mut().enumerate() {
                let j = first + i;
                // SAFETY: (k, j) and, if inside the block, (k + 1, j) lie in the view.
                *value = unsafe {
                    pair(
                        *at(k, j),
                        if second.is_some() { *at(k + 1, j) } else { 0.0 },
                    )
                };
            }
        }
    }
    panels
}

/// `len` consecutive f32 values from `from` as `len / 2` (rounded up) pairs into `into`, the
/// last paired with zero if `len` is odd.
///
/// # Safety
/// `from` must address `len` readable values; `into` must hold `len.div_ceil(2)`.
unsafe fn convert_run(from: *const f32, len: usize, into: &mut [u32]) {
    let whole = len / 32;
    // SAFETY: `available` was checked by the caller of `write`.
    unsafe { convert_blocks(from, whole, into.as_mut_ptr()) };
    for (q, value) in into.iter_mut().enumerate().skip(whole * 16) {
        let k = 2 * q;
        // SAFETY: k < len, and k + 1 is read only if it is too.
        *value = unsafe {
            pair(
                *from.add(k),
                if k + 1 < len { *from.add(k + 1) } else { 0.0 },
            )
        };
    }
}

/// `blocks` runs of 32 values from `from` as 16 pairs each into `into`.
///
/// # Safety
/// `from` must address `32 · blocks` values, `into` room for `16 · blocks`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn convert_blocks(from: *const f32, blocks: usize, into: *mut u32) {
    for b in 0..blocks {
        // SAFETY: as for this function.
        unsafe {
            let low = _mm512_loadu_ps(from.add(32 * b));
            let high = _mm512_loadu_ps(from.add(32 * b + 16));
            // Lanes 0–15 the first 16 values, 16–31 the next: as 32-bit lanes, pairs in order.
            let pairs: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(high, low));
            _mm512_storeu_si512(into.add(16 * b).cast(), pairs);
        }
    }
}

/// Where [`interleave`] takes each 16-bit lane from: lane `2i` the first run's value `i`,
/// lane `2i + 1` the second's.
const PAIRED_LANES: [u16; 32] = {
    let mut lanes = [0; 32];
    let mut i = 0;
    while i < 16 {
        lanes[2 * i] = i as u16;
        lanes[2 * i + 1] = 16 + i as u16;
        i += 1;
    }
    lanes
};

/// `count` (at most 16) values from `first` paired with as many from `second` (zero if
/// `None`): `count` pairs into `into`.
///
/// # Safety
/// Both runs must address `count` readable values, `into` room for `count`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn interleave(first: *const f32, second: Option<*const f32>, count: usize, into: *mut u32) {
    let mask = column_mask(count);
    // SAFETY: as for this function; masked-off lanes are neither read nor written.
    unsafe {
        let low = _mm512_maskz_loadu_ps(mask, first);
        let high = second.map_or(_mm512_setzero_ps(), |s| _mm512_maskz_loadu_ps(mask, s));
        let halves: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(high, low));
        let lanes = _mm512_loadu_si512(PAIRED_LANES.as_ptr().cast());
        let pairs = _mm512_permutexvar_epi16(lanes, halves);
        _mm512_mask_storeu_epi32(into.cast(), mask, pairs);
    }
}

/// One tile: the packed rows `lhs` (`MR` of them, laid out as `layout`) times the panel `rhs`
/// (`pairs × NR`), over `pairs` pairs of the contraction, written into (or added onto, if
/// `add`) the first `rows × columns` of the tile at `c`, whose rows are `stride` apart:
/// `shape = (rows, columns, stride)`.
///
/// # Safety
/// `c` must address the tile's `rows × columns` values, initialised if `add`. (`lhs` and `rhs`
/// are checked to hold the tile's rows and panel.)
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_product(
    pairs: usize,
    lhs: &[u32],
    layout: Layout,
    rhs: &[u32],
    c: *mut f32,
    shape: (usize, usize, usize),
    add: bool,
) {
    assert!(pairs == 0 || lhs.len() > (MR - 1) * layout.row + (pairs - 1) * layout.pair);
    assert!(rhs.len() >= pairs * NR);
    let (rows, columns, stride) = shape;
    let mut sums = [[_mm512_setzero_ps(); 2]; MR];
    let (a, b) = (lhs.as_ptr(), rhs.as_ptr());
    for q in 0..pairs {
        // SAFETY: pair q of every row of the tile and row q of the panel lie in the slices.
        unsafe {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR).cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR + 16).cast()));
            for (r, sum) in sums.iter_mut().enumerate() {
                let value = *a.add(r * layout.row + q * layout.pair) as i32;
                let a_pair: __m512bh = std::mem::transmute(_mm512_set1_epi32(value));
                sum[0] = _mm512_dpbf16_ps(sum[0], a_pair, b0);
                sum[1] = _mm512_dpbf16_ps(sum[1], a_pair, b1);
            }
        }
    }
    let masks = [
        column_mask(columns.min(16)),
        column_mask(columns.saturating_sub(16)),
    ];
    for (r, sum) in sums.iter().enumerate().take(rows) {
        for (half, (&value, &mask)) in sum.iter().zip(&masks).enumerate() {
            // SAFETY: the masked lanes are the tile's columns inside the output.
            unsafe {
                let at = c.add(r * stride + 16 * half);
                let value = if add {
                    _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, at))
                } else {
                    value
                };
                _mm512_mask_storeu_ps(at, mask, value);
            }
        }
    }
}

/// The first `count` (at most 16) lanes.
fn column_mask(count: usize) -> __mmask16 {
    ((1u32 << count) - 1) as __mmask16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of values in [−1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// `lhs` `[m, k]` (row-major, or column-major if `transposed`) times `rhs` `[k, n]` through
    /// [`write`], onto `initial` if given.
    fn bf16_product(
        (m, k, n): (usize, usize, usize),
        lhs: &[f32],
        rhs: &[f32],
        transposed: (bool, bool),
        initial: Option<&[f32]>,
        parallel: bool,
    ) -> Vec<f32> {
        let product = Product {
            m,
            k,
            n,
            lhs: lhs.as_ptr(),
            lhs_strides: if transposed.0 {
                (1, m as isize)
            } else {
                (k as isize, 1)
            },
            rhs: rhs.as_ptr(),
            rhs_strides: if transposed.1 {
                (1, k as isize)
            } else {
                (n as isize, 1)
            },
        };
        let mut out = initial.map_or_else(|| vec![f32::NAN; m * n], <[f32]>::to_vec);
        // SAFETY: both views cover their vectors; `out` holds `m × n` values.
        unsafe { write(&product, out.as_mut_ptr(), initial.is_some(), parallel) };
        out
    }

    /// The f64 product of `lhs` and `rhs` with each operand passed through `operand` first.
    fn reference(
        (m, k, n): (usize, usize, usize),
        lhs: &[f32],
        rhs: &[f32],
        transposed: (bool, bool),
        operand: impl Fn(f32) -> f32,
    ) -> (Vec<f64>, Vec<f64>) {
        let a = |i: usize, p: usize| lhs[if transposed.0 { p * m + i } else { i * k + p }];
        let b = |p: usize, j: usize| rhs[if transposed.1 { j * k + p } else { p * n + j }];
        let mut sums = vec![0.0; m * n];
        let mut magnitudes = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let term = operand(a(i, p)) as f64 * operand(b(p, j)) as f64;
                    sums[i * n + j] += term;
                    magnitudes[i * n + j] += term.abs();
                }
            }
        }
        (sums, magnitudes)
    }

    /// Checks `got` against the product of the bf16-rounded operands (within f32 accumulation
    /// error) and against the f32 product (within bf16 rounding), for one shape and layout.
    fn check(shape: (usize, usize, usize), transposed: (bool, bool), scale: (f32, f32)) {
        let (m, k, n) = shape;
        let lhs: Vec<f32> = values(m * k, 1).iter().map(|v| v * scale.0).collect();
        let rhs: Vec<f32> = values(k * n, 2).iter().map(|v| v * scale.1).collect();
        // With subnormal operands (which count as zero) only the first comparison holds.
        let subnormal = lhs.iter().chain(&rhs).any(|v| v.is_subnormal());
        for parallel in [false, true] {
            let got = bf16_product(shape, &lhs, &rhs, transposed, None, parallel);
            let (exact, magnitude) = reference(shape, &lhs, &rhs, transposed, rounded);
            let (full, _) = reference(shape, &lhs, &rhs, transposed, |x| x);
            for i in 0..m * n {
                let (g, e, f, mag) = (got[i] as f64, exact[i], full[i], magnitude[i]);
                let context = format!("{shape:?} {transposed:?} at {i}: {g} vs {e} (f32 {f})");
                assert!((g - e).abs() <= 1e-6 * mag + 1e-30, "{context}");
                let close = (g - f).abs() <= 2.0f64.powi(-7) * mag + 1e-30;
                assert!(close || subnormal, "{context}");
            }
        }
    }

    /// Whether this processor runs the kernel; where it does not, `PIXELCNN_REQUIRE_BF16` (set
    /// by CI where the processor has AVX-512 BF16) turns the tests into failures.
    fn here() -> bool {
        assert!(
            available() || std::env::var_os("PIXELCNN_REQUIRE_BF16").is_none(),
            "PIXELCNN_REQUIRE_BF16 is set but this processor lacks AVX-512 BF16"
        );
        available()
    }

    #[test]
    fn products_equal_those_of_the_rounded_operands() {
        if !here() {
            return;
        }
        // Odd shapes: edge tiles in both directions, odd contractions, several blocks of KC.
        for shape in [
            (1, 1, 1),
            (13, 7, 33),
            (25, 1030, 70),
            (MC + 5, 64, NR),
            (3, 2, 17),
        ] {
            for transposed in [(false, false), (true, false), (false, true), (true, true)] {
                check(shape, transposed, (1.0, 1.0));
            }
        }
        // Large and tiny magnitudes.
        check((14, 40, 20), (false, false), (1e18, 1e18));
        check((14, 40, 20), (true, true), (1e-18, 1e-18));
        // Subnormal operands (about one in nine of the left factor's values) count as zero.
        check((14, 40, 20), (false, true), (1e-37, 1e20));
        let lhs = values(14 * 40, 1);
        let tiny = lhs.iter().filter(|&v| (v * 1e-37).is_subnormal()).count();
        assert!(tiny > 20, "{tiny} subnormal values");
    }

    #[test]
    fn rounding_is_to_nearest_even_and_subnormals_are_zero() {
        if !here() {
            return;
        }
        // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa, 1.
        assert_eq!(rounded(1.0 + 2f32.powi(-8)), 1.0);
        assert_eq!(
            rounded(1.0 + 3.0 * 2f32.powi(-8)),
            1.0 + 2.0 * 2f32.powi(-7)
        );
        assert_eq!(rounded(f32::MIN_POSITIVE / 2.0), 0.0);
        assert!(rounded(f32::NAN).is_nan());
        assert_eq!(rounded(f32::MAX), f32::INFINITY);
        // The instruction's rounding agrees with this one, subnormals included.
        let from = [
            1.0 + 2f32.powi(-8),
            -(1.0 + 3.0 * 2f32.powi(-8)),
            f32::MIN_POSITIVE / 2.0,
            -f32::MIN_POSITIVE / 4.0,
            1e-20,
            3.0e38,
            -0.0,
            7.5,
        ];
        let mut pairs = [0u32; 4];
        // SAFETY: 8 values in, 4 pairs out.
        unsafe { convert_run(from.as_ptr(), 8, &mut pairs) };
        let mut vector = [0u32; 16];
        let mut block = [0.0f32; 32];
        block[..8].copy_from_slice(&from);
        // SAFETY: one block of 32 values in, 16 pairs out; `available` was checked.
        unsafe { convert_blocks(block.as_ptr(), 1, vector.as_mut_ptr()) };
        assert_eq!(&vector[..4], &pairs);
    }

    #[test]
    fn rows_rounded_once_give_the_same_products_as_rows_packed_per_product() {
        if !here() {
            return;
        }
        // Overlapping rows as in a window convolution: 40 values a pixel, 28 pixels a row (a
        // depth of 1,120, three blocks), each row starting one pixel after the last; the left
        // factor starts 3 pixels in.
        let (c, taps, m, n, offset) = (40, 28, 37, 45, 3 * 40);
        let map = values((m + taps + 3) * c, 6);
        let rhs = values(taps * c * n, 7);
        let product = Product {
            m,
            k: taps * c,
            n,
            lhs: map[offset..].as_ptr(),
            lhs_strides: (c as isize, 1),
            rhs: rhs.as_ptr(),
            rhs_strides: (n as isize, 1),
        };
        let mut rounded = rounded_zeros(m + taps + 3, c);
        round_into(&map, &mut rounded[..map.len() / 2]);
        for accumulate in [false, true] {
            let (mut packed, mut once) = (vec![0.5; m * n], vec![0.5; m * n]);
            // SAFETY: the views lie inside `map` and `rhs`; `rounded` is the map, rounded.
            unsafe {
                write(&product, packed.as_mut_ptr(), accumulate, true);
                let left = (&rounded[offset / 2..], c / 2);
                write_rounded(&product, left, once.as_mut_ptr(), accumulate, true);
            }
            assert_eq!(packed, once);
        }
    }

    #[test]
    fn accumulating_adds_onto_the_output() {
        if !here() {
            return;
        }
        let shape = (17, 9, 35);
        let (lhs, rhs) = (values(17 * 9, 3), values(9 * 35, 4));
        let initial = values(17 * 35, 5);
        let plain = bf16_product(shape, &lhs, &rhs, (false, false), None, false);
        let added = bf16_product(shape, &lhs, &rhs, (false, false), Some(&initial), true);
        for i in 0..17 * 35 {
            assert!((added[i] - (plain[i] + initial[i])).abs() <= 1e-6, "at {i}");
        }
    }
}
