//! # pixelcnn
//!
//! The Gated PixelCNN of van den Oord et al. 2016, *Conditional Image Generation with PixelCNN
//! Decoders* (arXiv 1606.05328), and its predecessor PixelCNN (arXiv 1601.06759), on burn:
//! models, training, likelihood evaluation and autoregressive sampling.
//!
//! The `pixelcnn` program, its web page, benchmarks and plots are the crate `pixelcnn-cli`; this
//! library needs none of their dependencies (clap, anyhow, ctrlc, indicatif, axum, tokio, hyper,
//! plotters). Each module reports failures with its own error type, such as
//! [`train::TrainError`], which wraps those of the data, checkpoint, log and picture modules it
//! uses. The library prints nothing: training reports its progress to the
//! [`observer::TrainObserver`] its caller passes. The models this project trained come with the
//! default cargo feature `pretrained` ([`pretrained`], from the crate `pixelcnn-models`).
//!
//! Score images with a model shipped in the library (the `score_images` example in full;
//! `train_own_images` trains on images held in memory, `sample_pretrained` draws a grid):
//!
//! ```
//! use burn::prelude::*;
//! use pixelcnn::data::DataSource;
//! use pixelcnn::evaluate::{Likelihood, image_nll};
//! use pixelcnn::pretrained;
//!
//! let device = Device::flex();
//! let (config, model) = pretrained::find("mnist-class")?.load(&device)?;
//! let digits = DataSource::Embedded.test(None)?.for_evaluation(config.binarization);
//! let nats = image_nll(&model, &config.model, &digits, 20, &device)?; // the first 20 images
//! let mean = Likelihood::of_images(&nats, digits.values_per_image());
//! assert!(mean.bits_per_dim < 0.3, "{mean:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The model itself, from scratch:
//!
//! ```
//! use burn::prelude::*;
//! use pixelcnn::model::PixelCnnConfig;
//!
//! let device = Device::flex();
//! let config = PixelCnnConfig::new(4).with_layers(3).with_channels(9);
//! let model = config.clone().init_seeded(&device, 0);
//! let levels = Tensor::<4, Int>::zeros([2, 1, 6, 6], &device); // [B, C, H, W], values in 0..K
//! assert_eq!(model.forward(levels)?.dims(), [2, 1, 4, 6, 6]); // K logits per sub-pixel
//!
//! // Colour: R, G, B sub-pixels, each given the ones before it.
//! let rgb = config.with_input_channels(3).init_seeded(&device, 0);
//! let levels = Tensor::<4, Int>::zeros([2, 3, 6, 6], &device);
//! assert_eq!(rgb.forward(levels)?.dims(), [2, 3, 4, 6, 6]);
//! # Ok::<(), pixelcnn::model::NoLogits>(())
//! ```

pub mod checkpoint;
pub mod data;
pub mod device;
pub mod evaluate;
pub mod export;
pub mod files;
pub mod loss;
pub mod model;
pub mod observer;
mod ops;
pub mod parallel;
pub mod per_image;
pub mod picture;
pub mod precision;
#[cfg(feature = "pretrained")]
pub mod pretrained;
pub mod quiet_panic;
pub mod random;
pub mod recipe;
pub mod run_config;
pub mod run_dir;
pub mod run_log;
pub mod sample;
pub mod train;

/// The matrix product the model's convolutions are built on: `[M, K]` × `[K, N]` → `[M, N]`.
pub use ops::matmul::matmul;
