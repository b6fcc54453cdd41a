//! What the integration tests share: IDX, CIFAR-10 and `.npy` files made in memory, a small
//! synthetic IDX data set, and running the `pixelcnn` binary.

#![allow(dead_code)] // Each test crate uses a different subset.

use std::path::Path;
use std::process::{Command, Output};

use pixelcnn::data::{DataSource, ImageSet};
use pixelcnn::model::PixelCnnConfig;
use pixelcnn::run_config::RunConfig;

/// Training flags of a tiny, quick run: 4 steps of batch 8, 2 layers of 4 channels.
pub const TINY: &[&str] = &[
    "--steps",
    "4",
    "--interval",
    "2",
    "--layers",
    "2",
    "--channels",
    "4",
    "--batch-size",
    "8",
];

/// Runs the `pixelcnn` binary with `args`.
pub fn pixelcnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pixelcnn"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// An IDX file of unsigned bytes with the given dimensions and body.
pub fn idx_bytes(dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(body);
    bytes
}

/// A `.npy` file (format 1.0) with the given dtype descriptor, shape, order and raw body.
pub fn npy(descr: &str, shape: &[usize], fortran: bool, body: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// CIFAR-10 binary records: image `i` has label `i % 10` and its R, G and B planes filled
/// with `i`, `2i` and `3i` (mod 256), with pixel 0 of the red plane set to 255.
pub fn cifar_records(count: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(count * 3073);
    for i in 0..count {
        bytes.push((i % 10) as u8);
        for channel in 1..=3 {
            let mut plane = vec![(i * channel % 256) as u8; 1024];
            if channel == 1 {
                plane[0] = 255;
            }
            bytes.extend(plane);
        }
    }
    bytes
}

pub fn write_idx(path: &Path, dims: &[u32], body: &[u8]) {
    std::fs::write(path, idx_bytes(dims, body)).unwrap();
}

/// A folder of `size`×`size` images: a bright square on a dark background, shifted around.
pub fn synthetic_data(dir: &Path, size: usize, train: usize, test: usize) {
    let image = |i: usize| -> Vec<u8> {
        (0..size * size)
            .map(|p| {
                let (y, x) = (p / size, p % size);
                let (oy, ox) = (i % 3, (i / 3) % 3);
                if (oy..oy + 4).contains(&y) && (ox..ox + 4).contains(&x) {
                    250
                } else {
                    10
                }
            })
            .collect()
    };
    for (prefix, count) in [("train", train), ("t10k", test)] {
        let pixels: Vec<u8> = (0..count).flat_map(image).collect();
        let s = size as u32;
        write_idx(
            &dir.join(format!("{prefix}-images-idx3-ubyte")),
            &[count as u32, s, s],
            &pixels,
        );
        write_idx(
            &dir.join(format!("{prefix}-labels-idx1-ubyte")),
            &[count as u32],
            &(0..count).map(|i| (i % 3) as u8).collect::<Vec<_>>(),
        );
    }
}

/// Bits per dimension that the best model ignoring context, fitted to `train`, scores on `eval`
/// at `levels` levels: the cross-entropy of `eval`'s levels under `train`'s level frequencies
/// (their entropy, when `eval` is `train`). A model that learned only how often each level
/// occurs gets this figure; one that uses the context must get clearly less.
pub fn context_free_bits(train: &ImageSet, eval: &ImageSet, levels: usize) -> f64 {
    let counts = |set: &ImageSet| {
        let mut counts = vec![0usize; levels];
        for index in 0..set.len() {
            for level in set.levels(index, levels) {
                counts[usize::from(level)] += 1;
            }
        }
        counts
    };
    let (train_counts, eval_counts) = (counts(train), counts(eval));
    let (train_total, eval_total) = (
        train_counts.iter().sum::<usize>() as f64,
        eval_counts.iter().sum::<usize>() as f64,
    );
    train_counts
        .iter()
        .zip(&eval_counts)
        .filter(|&(_, &seen)| seen > 0)
        .map(|(&fitted, &seen)| -(seen as f64 / eval_total) * (fitted as f64 / train_total).log2())
        .sum()
}

/// The first `count` embedded MNIST images, downsampled to 14×14 to keep the tests fast.
pub fn small_mnist(count: usize) -> ImageSet {
    let (train, _) = DataSource::Embedded.training(None).unwrap();
    let mut pixels = Vec::with_capacity(count * 196);
    for index in 0..count {
        let image = train.image(index);
        for y in 0..14 {
            for x in 0..14 {
                pixels.push(image[2 * y * 28 + 2 * x]);
            }
        }
    }
    ImageSet {
        channels: 1,
        height: 14,
        width: 14,
        pixels,
        labels: None,
        embeddings: None,
    }
}

/// 500 training and 100 validation images of [`small_mnist`].
pub fn data() -> (ImageSet, ImageSet) {
    small_mnist(600).split_tail(100)
}

/// A run of a small model (3 layers of 8 channels) on [`data`].
pub fn small_config(steps: usize, interval: usize) -> RunConfig {
    RunConfig {
        model: PixelCnnConfig::new(4)
            .with_layers(3)
            .with_channels(8)
            .with_head_channels(8),
        batch_size: 16,
        learning_rate: 3e-3,
        seed: 1,
        steps,
        interval,
        dataset: Default::default(),
        data_dir: None,
        image_size: None,
        condition_file: None,
        image_height: 14,
        image_width: 14,
        binarization: None,
        recipe: Default::default(),
        shards: 1,
        precision: Default::default(),
        init_from: None,
    }
}
