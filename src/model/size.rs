//! How big a model a configuration asks for, worked out from the configuration alone, so that a
//! crafted `config.json` or checkpoint asking for millions of layers or channels is refused with
//! a message before anything is allocated, instead of making the process allocate until it dies.
//!
//! The ceilings are generous: the largest model of arXiv 1606.05328 (ImageNet 64×64 in colour,
//! 20 layers of 384 channels, K = 256) needs about a quarter of each.

use super::{Architecture, InvalidSetting, PixelCnn, PixelCnnConfig};

/// The most parameters a model may have: 2^28 (1 GiB of f32 weights).
pub const MAX_PARAMETERS: u64 = 1 << 28;
/// The most feature values one image may have in a forward pass, by the measure of
/// [`PixelCnnConfig::feature_values`]: 2^27 (512 MiB of f32 per image and feature map).
pub const MAX_FEATURE_VALUES: u64 = 1 << 27;
/// The largest image side, in pixels, of training images, condition maps and codes.
pub const MAX_IMAGE_SIDE: usize = 1024;

/// Counts saturate instead of overflowing: anything that large is refused anyway.
type Count = u128;

impl PixelCnnConfig {
    /// The number of parameters of the model this configuration describes (saturating at
    /// `u64::MAX`), without building it.
    pub fn parameter_count(&self) -> u64 {
        let count = match self.arch {
            Architecture::Gated => gated(self, self.conditioning.dim()),
            Architecture::Pixelcnn => masked(self),
            Architecture::Autoencoder => total(&[
                encoder(self),
                gated(self, self.latent.map(|latent| latent.dim)),
            ]),
            Architecture::AutoencoderDeconv => {
                total(&[encoder(self), deconv_decoder(self, n(self.levels))])
            }
            Architecture::AutoencoderMse => {
                total(&[encoder(self), deconv_decoder(self, n(self.input_channels))])
            }
        };
        u64::try_from(count).unwrap_or(u64::MAX)
    }

    /// The feature values of one `height` × `width` image in a forward pass, each layer's
    /// feature channels counted once, and the head's and the logits': H·W·(layers·channels +
    /// head channels + C·K). The layers keep several maps of this size each, for training.
    pub fn feature_values(&self, height: usize, width: usize) -> u64 {
        let per_pixel = total(&[
            product(&[n(self.layers), n(self.channels)]),
            n(self.head_channels),
            product(&[n(self.input_channels), n(self.levels)]),
        ]);
        let count = product(&[n(height), n(width), per_pixel]);
        u64::try_from(count).unwrap_or(u64::MAX)
    }

    /// Refuses a configuration whose model would exceed [`MAX_PARAMETERS`], or whose condition
    /// map or code is larger than [`MAX_IMAGE_SIDE`].
    pub(super) fn check_size(&self) -> Result<(), InvalidSetting> {
        let sides = [
            ("spatial", self.spatial.map(|map| (map.height, map.width))),
            (
                "latent",
                self.latent.map(|latent| (latent.height, latent.width)),
            ),
        ];
        if let Some((setting, (height, width))) = sides
            .into_iter()
            .filter_map(|(setting, side)| Some((setting, side?)))
            .find(|&(_, (h, w))| h.max(w) > MAX_IMAGE_SIDE)
        {
            return Err(InvalidSetting::new(
                setting,
                format!(
                    "a condition map or code of {height}×{width} is larger than the ceiling of {MAX_IMAGE_SIDE} pixels a side"
                ),
            ));
        }
        let count = self.parameter_count();
        if count > MAX_PARAMETERS {
            return Err(InvalidSetting::new(
                "layers",
                format!(
                    "the model would have {} parameters, more than the ceiling of {MAX_PARAMETERS} (check layers, channels, and the conditioning and code sizes)",
                    if count == u64::MAX {
                        "over 2^64".to_string()
                    } else {
                        count.to_string()
                    }
                ),
            ));
        }
        Ok(())
    }
}

/// A Gated PixelCNN conditioned on a vector of `condition_dim` values, if any.
fn gated(config: &PixelCnnConfig, condition_dim: Option<usize>) -> Count {
    // With a condition map, the layers take the map's channels and the map is made from h.
    let (layer_condition, map) = match (config.spatial, condition_dim) {
        (Some(map), Some(dim)) => {
            let base = product(&[n(map.height.div_ceil(4)), n(map.width.div_ceil(4))]);
            let s = n(map.channels);
            let deconvolution = total(&[
                linear(n(dim), product(&[s, base])),
                product(&[2, transposed(s, s)]),
            ]);
            (Some(s), deconvolution)
        }
        (Some(map), None) => (Some(n(map.channels)), 0),
        (None, dim) => (dim.map(n), 0),
    };
    let first = gated_layer(
        config,
        (n(config.input_channels), n(config.first_kernel)),
        layer_condition,
    );
    let later = gated_layer(
        config,
        (n(config.channels), n(config.kernel)),
        layer_condition,
    );
    let later = product(&[n(config.layers.saturating_sub(1)), later]);
    total(&[first, later, map, head(config)])
}

/// One gated layer taking `c_in` channels through `k`-wide windows.
fn gated_layer(
    config: &PixelCnnConfig,
    (c_in, k): (Count, Count),
    condition: Option<Count>,
) -> Count {
    let c = n(config.channels);
    let (c2, p1) = (product(&[2, c]), k / 2 + 1);
    let colour = config.input_channels > 1;
    total(&[
        // The vertical stack's ⌈k/2⌉×k convolution and the 1×1 link.
        conv(c_in, c2, p1, k),
        conv(c2, c2, 1, 1),
        conv(c_in, c2, 1, p1),
        if colour { conv(c_in, c2, 1, 1) } else { 0 },
        product(&[2, conv(c, c, 1, 1)]),
        // V h or V * s, without a bias.
        condition.map_or(0, |d| product(&[d, 4, c])),
    ])
}

/// The masked-convolution PixelCNN.
fn masked(config: &PixelCnnConfig) -> Count {
    let c = n(config.channels);
    let (k1, k) = (n(config.first_kernel), n(config.kernel));
    let later = product(&[n(config.layers.saturating_sub(1)), conv(c, c, k, k)]);
    total(&[
        conv(n(config.input_channels), c, k1, k1),
        later,
        head(config),
    ])
}

/// The 1×1 output head of both architectures.
fn head(config: &PixelCnnConfig) -> Count {
    let hidden = n(config.head_channels);
    let logits = product(&[n(config.input_channels), n(config.levels)]);
    total(&[
        conv(n(config.channels), hidden, 1, 1),
        conv(hidden, logits, 1, 1),
    ])
}

/// An auto-encoder's encoder: two stride-2 3×3 convolutions and a linear layer onto the code.
fn encoder(config: &PixelCnnConfig) -> Count {
    let Some(latent) = config.latent else {
        return 0;
    };
    let c = n(config.channels);
    let reduced = product(&[n(latent.height.div_ceil(4)), n(latent.width.div_ceil(4))]);
    total(&[
        conv(n(config.input_channels), c, 3, 3),
        conv(c, product(&[2, c]), 3, 3),
        linear(product(&[2, c, reduced]), n(latent.dim)),
    ])
}

/// The baseline auto-encoders' deconvolutional decoder, with `outputs` values per pixel.
fn deconv_decoder(config: &PixelCnnConfig, outputs: Count) -> Count {
    let Some(latent) = config.latent else {
        return 0;
    };
    let c = n(config.channels);
    let reduced = product(&[n(latent.height.div_ceil(4)), n(latent.width.div_ceil(4))]);
    total(&[
        linear(n(latent.dim), product(&[2, c, reduced])),
        transposed(product(&[2, c]), c),
        transposed(c, outputs),
    ])
}

/// A convolution with a bias.
fn conv(input: Count, output: Count, kernel_height: Count, kernel_width: Count) -> Count {
    total(&[
        product(&[input, output, kernel_height, kernel_width]),
        output,
    ])
}

/// A 4×4 transposed convolution with a bias.
fn transposed(input: Count, output: Count) -> Count {
    conv(input, output, 4, 4)
}

/// A linear layer with a bias.
fn linear(input: Count, output: Count) -> Count {
    total(&[product(&[input, output]), output])
}

fn n(value: usize) -> Count {
    value as Count
}

fn product(factors: &[Count]) -> Count {
    factors.iter().fold(1, |acc, &f| acc.saturating_mul(f))
}

fn total(terms: &[Count]) -> Count {
    terms.iter().fold(0, |acc, &t| acc.saturating_add(t))
}

impl PixelCnn {
    /// Floating-point operations (two per multiply-add) of the convolutions of one forward pass on
    /// a grayscale image of `height × width`, which the cached sampler computes too: per position,
    /// each layer's vertical convolution and link (once per row for the sampler) and its horizontal
    /// convolution, skip and output 1×1 convolutions, and the output head. Additions of biases,
    /// gates and conditioning are left out; the naive sampler does about `height × width / 2` times
    /// as much.
    pub fn flop_per_image(&self, height: usize, width: usize) -> f64 {
        let weights = |conv: &burn::nn::conv::Conv2d| conv.weight.dims().iter().product::<usize>();
        let per_pixel: usize = match self {
            PixelCnn::Gated(gated) => {
                let layers: usize = gated
                    .layers
                    .iter()
                    .map(|layer| {
                        let current = layer.current_pixel.as_ref().map_or(0, weights);
                        [
                            &layer.vertical,
                            &layer.vertical_to_horizontal,
                            &layer.horizontal,
                            &layer.skip,
                            &layer.horizontal_output,
                        ]
                        .into_iter()
                        .map(weights)
                        .sum::<usize>()
                            + current
                    })
                    .sum();
                layers + weights(&gated.head.hidden) + weights(&gated.head.logits)
            }
            PixelCnn::Masked(masked) => {
                let layers: usize = masked.layers.iter().map(|layer| weights(&layer.conv)).sum();
                layers + weights(&masked.head.hidden) + weights(&masked.head.logits)
            }
            _ => 0,
        };
        2.0 * (per_pixel * height * width) as f64
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::prelude::Device;

    use super::*;
    use crate::model::{Conditioning, Latent, SpatialMap};

    #[test]
    fn the_count_is_that_of_the_built_model() {
        let base = PixelCnnConfig::new(4).with_layers(3).with_channels(6);
        let map = SpatialMap {
            channels: 5,
            height: 7,
            width: 9,
        };
        let latent = Latent {
            dim: 3,
            height: 9,
            width: 6,
        };
        let configs = [
            base.clone(),
            base.clone()
                .with_first_kernel(5)
                .with_kernel(5)
                .with_head_channels(7),
            PixelCnnConfig::new(256)
                .with_layers(2)
                .with_channels(6)
                .with_input_channels(3),
            base.clone()
                .with_arch(Architecture::Pixelcnn)
                .with_layers(4),
            base.clone()
                .with_conditioning(Conditioning::Class { classes: 10 }),
            base.clone()
                .with_conditioning(Conditioning::Embedding { dim: 3 })
                .with_spatial(Some(map)),
            base.clone()
                .with_arch(Architecture::Autoencoder)
                .with_latent(Some(latent)),
            base.clone()
                .with_arch(Architecture::Autoencoder)
                .with_latent(Some(latent))
                .with_spatial(Some(map)),
            base.clone()
                .with_arch(Architecture::AutoencoderDeconv)
                .with_latent(Some(latent)),
            base.clone()
                .with_arch(Architecture::AutoencoderMse)
                .with_latent(Some(latent)),
        ];
        for config in configs {
            config.validate().unwrap();
            // burn draws weights lazily: counting them allocates none.
            let built = config.init(&Device::flex()).num_params();
            assert_eq!(config.parameter_count(), built as u64, "{config:?}");
        }
    }

    #[test]
    fn a_model_past_a_ceiling_is_refused() {
        let small = PixelCnnConfig::new(4);
        let refused = [
            small.clone().with_layers(1_000_000),
            small
                .clone()
                .with_channels(1_000_000)
                .with_head_channels(1_000_000),
            small
                .clone()
                .with_layers(usize::MAX)
                .with_channels(usize::MAX),
            small.clone().with_conditioning(Conditioning::Class {
                classes: 100_000_000,
            }),
            small.clone().with_first_kernel(1_000_001),
        ];
        for config in refused {
            let error = config.validate().unwrap_err();
            assert!(
                error.message.contains("more than the ceiling of 268435456"),
                "{error}"
            );
            assert_eq!(error.setting, "layers");
        }
        let map = SpatialMap {
            channels: 1,
            height: 28,
            width: MAX_IMAGE_SIDE + 1,
        };
        let error = small
            .with_conditioning(Conditioning::Class { classes: 2 })
            .with_spatial(Some(map))
            .validate()
            .unwrap_err();
        assert!(
            error.message.contains("ceiling of 1024 pixels a side"),
            "{error}"
        );
        assert_eq!(error.setting, "spatial");
    }

    #[test]
    fn the_largest_model_of_the_paper_fits_with_room() {
        let imagenet = PixelCnnConfig::new(256)
            .with_layers(20)
            .with_channels(384)
            .with_head_channels(1024)
            .with_input_channels(3);
        imagenet.validate().unwrap();
        assert!(imagenet.parameter_count() < MAX_PARAMETERS / 3);
        assert!(imagenet.feature_values(64, 64) < MAX_FEATURE_VALUES / 3);
    }
}
