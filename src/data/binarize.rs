//! Binarised images, the standard likelihood benchmark for PixelCNN on MNIST (arXiv 1601.06759,
//! Section 5.2: "binarized MNIST"; its figures are test NLL in nats per image).
//!
//! Two binarisations are in use. *Threshold* sets a pixel when its intensity is at least 128 —
//! the K = 2 quantisation `⌊v·2/256⌋`, deterministic. *Dynamic* binarisation, as the published
//! figures of PixelCNN and its successors use it, treats intensity `v` as the probability
//! `v/255` that the pixel is on: every time a training image is used it is binarised anew, which
//! acts as data augmentation, and the test set is binarised once, by a fixed seed, so that every
//! evaluation scores the same binary images. Both the training draws (from the run's seed and
//! the step) and the test draws (from [`TEST_SEED`]) are seeded, so resume stays exact.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::ImageSet;
use crate::random::{self, SeededRng};

/// The seed that binarises every validation and test set of a dynamically binarised run, once.
pub const TEST_SEED: u64 = 0;

/// How a binarised run turns intensities into binary pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Binarization {
    /// A pixel is on with probability intensity/255, drawn anew each time a training image is
    /// used; test images are drawn once with a fixed seed.
    Dynamic,
    /// A pixel is on when its intensity is at least 128.
    Threshold,
}

impl Binarization {
    /// What the binarisation does, for `eval` and the training log.
    pub fn describe(self) -> String {
        match self {
            Self::Dynamic => format!(
                "dynamic (a training pixel is on with probability intensity/255, drawn anew at every use; the test images are binarised once, with seed {TEST_SEED})"
            ),
            Self::Threshold => {
                "threshold (a pixel is on when its intensity is at least 128)".into()
            }
        }
    }
}

impl ImageSet {
    /// Every pixel set to 255 with probability `value/255`, else 0, drawn from `rng` in the
    /// order of the pixels.
    pub fn binarized(&self, rng: &mut SeededRng) -> Self {
        let pixels = self
            .pixels
            .iter()
            .map(|&value| {
                // `random_range(0..255) < value` is true with probability value/255 exactly.
                if rng.random_range(0..255u8) < value {
                    255
                } else {
                    0
                }
            })
            .collect();
        Self {
            channels: self.channels,
            height: self.height,
            width: self.width,
            pixels,
            labels: self.labels.clone(),
            embeddings: self.embeddings.clone(),
        }
    }

    /// The set as every evaluation of a dynamically binarised run sees it: binarised once with
    /// [`TEST_SEED`].
    pub fn binarized_for_test(&self) -> Self {
        self.binarized(&mut random::seeded(TEST_SEED))
    }

    /// The set binarised as `binarization` asks, for evaluation: threshold binarisation is the
    /// model's own K = 2 quantisation and leaves the bytes as they are.
    pub fn for_evaluation(self, binarization: Option<Binarization>) -> Self {
        match binarization {
            Some(Binarization::Dynamic) => self.binarized_for_test(),
            _ => self,
        }
    }
}

/// The generator of the training binarisation at `step` of a run seeded with `seed`: one
/// stream per step, so a resumed run draws what an uninterrupted one would.
pub fn training_rng(seed: u64, step: usize) -> SeededRng {
    let mut rng = random::seeded(seed);
    rng.set_stream(step as u64 + 1);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> ImageSet {
        ImageSet {
            channels: 1,
            height: 16,
            width: 16,
            pixels: (0..=255).collect(),
            labels: None,
            embeddings: None,
        }
    }

    #[test]
    fn a_pixel_is_on_with_probability_intensity_over_255() {
        let set = ramp();
        let mut rng = random::seeded(7);
        let draws = 2_000;
        let mut on = [0u32; 256];
        for _ in 0..draws {
            for (count, &pixel) in on.iter_mut().zip(&set.binarized(&mut rng).pixels) {
                assert!(pixel == 0 || pixel == 255);
                *count += u32::from(pixel == 255);
            }
        }
        assert_eq!(on[0], 0, "black never turns on");
        assert_eq!(on[255], draws, "white always does");
        for (value, &count) in on.iter().enumerate() {
            let expected = value as f64 / 255.0;
            let frequency = f64::from(count) / f64::from(draws);
            // Four standard deviations of a binomial frequency at most 0.5·0.5/2000.
            assert!(
                (frequency - expected).abs() < 4.0 * (0.25 / f64::from(draws)).sqrt(),
                "intensity {value}: on {frequency}, expected {expected}"
            );
        }
    }

    #[test]
    fn the_test_binarisation_is_fixed_and_training_draws_differ_by_step() {
        let set = ramp();
        assert_eq!(set.binarized_for_test(), set.binarized_for_test());
        let first = set.binarized(&mut training_rng(0, 0));
        assert_eq!(first, set.binarized(&mut training_rng(0, 0)));
        assert_ne!(first, set.binarized(&mut training_rng(0, 1)));
        assert_ne!(first, set.binarized(&mut training_rng(1, 0)));
        // Pinned: a change of generator or of the draw would change every binarised test set.
        let on: Vec<usize> = set
            .binarized_for_test()
            .pixels
            .iter()
            .enumerate()
            .filter(|(_, p)| **p == 255)
            .map(|(i, _)| i)
            .take(6)
            .collect();
        assert_eq!(on, [24, 29, 41, 46, 57, 60]);
    }
}
