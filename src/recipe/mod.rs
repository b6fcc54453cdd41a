//! The optimisation recipe around Adam (arXiv 1601.06759, Section 5.1 trains with plain Adam):
//! what the strongest PixelCNN implementations add to learn faster per step of compute — a
//! learning-rate warm-up and decay, an exponential moving average of the weights (Polyak
//! averaging, which PixelCNN++ evaluates with: arXiv 1701.05517, Section 3) and a ceiling on the
//! gradient's norm. Each is off in a [`Recipe::default`] (and so in run configs written before
//! the recipe existed); a new `pixelcnn train` run starts from [`NEW_RUN`], which keeps what
//! measurably helped at an equal budget (docs/likelihood.md, "The recipe, and short runs"): the moving average and
//! clipping, not the schedule.
//!
//! Every part is a function of the step number alone, so a resumed run continues exactly.
//! [`grow`] is the one part that acts before the first step: a new run's weights taken from a
//! trained run, deeper than it (`train --init-from`).

pub mod average;
pub mod clipping;
pub mod grow;

use burn::optim::{AdamConfig, ModuleOptimizer};
use serde::{Deserialize, Serialize};

use crate::model::InvalidSetting;

/// Learning-rate schedule, weight averaging and gradient clipping of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recipe {
    /// Steps over which the learning rate rises linearly to its full value.
    pub warmup_steps: usize,
    /// Steps over which the learning rate halves (exponential decay); `None`: no decay.
    pub lr_half_life: Option<usize>,
    /// Decay of the exponential moving average of the weights that validation, evaluation and
    /// sampling use; `None`: they use the trained weights themselves.
    pub ema_decay: Option<f64>,
    /// Ceiling on the global norm of each step's gradient; `None`: no clipping.
    pub clip_grad_norm: Option<f64>,
}

/// The recipe of a new `pixelcnn train` run, for every recipe flag left out.
pub const NEW_RUN: Recipe = Recipe {
    warmup_steps: 0,
    lr_half_life: None,
    ema_decay: Some(0.999),
    clip_grad_norm: Some(0.1),
};

impl Recipe {
    /// Checks values that may have been edited by hand in a run's config.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.lr_half_life == Some(0) {
            return Err(InvalidSetting::new(
                "lr_half_life",
                "lr_half_life must be at least 1",
            ));
        }
        if let Some(decay) = self.ema_decay.filter(|d| !(0.0..1.0).contains(d)) {
            return Err(InvalidSetting::new(
                "ema_decay",
                format!("ema_decay must be in [0, 1), got {decay}"),
            ));
        }
        if let Some(norm) = self.clip_grad_norm.filter(|n| !(*n > 0.0 && n.is_finite())) {
            return Err(InvalidSetting::new(
                "clip_grad_norm",
                format!("clip_grad_norm must be a positive number, got {norm}"),
            ));
        }
        Ok(())
    }

    /// The learning rate of the step after `step` steps taken, for a peak rate of `peak`:
    /// `peak · min(1, (step+1)/warmup) · 2^(−step/half_life)`.
    pub fn learning_rate(&self, peak: f64, step: usize) -> f64 {
        let warmup = if self.warmup_steps == 0 {
            1.0
        } else {
            ((step + 1) as f64 / self.warmup_steps as f64).min(1.0)
        };
        let decay = self
            .lr_half_life
            .map_or(1.0, |half_life| 0.5f64.powf(step as f64 / half_life as f64));
        peak * warmup * decay
    }
}

/// The optimiser of every run: Adam with PyTorch's epsilon.
pub fn new_optimizer() -> ModuleOptimizer {
    AdamConfig::new().with_epsilon(1e-8).init()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_warms_up_linearly_then_halves_every_half_life() {
        let recipe = Recipe {
            warmup_steps: 4,
            lr_half_life: Some(100),
            ..Recipe::default()
        };
        let rate = |step| recipe.learning_rate(1.0, step);
        assert!((rate(0) - 0.25 * 0.5f64.powf(0.0)).abs() < 1e-12);
        assert!((rate(1) - 0.5 * 0.5f64.powf(0.01)).abs() < 1e-12);
        assert!((rate(100) - 0.5).abs() < 1e-12);
        assert!((rate(200) - 0.25).abs() < 1e-12);
        assert_eq!(Recipe::default().learning_rate(3e-3, 12_345), 3e-3);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let bad = [
            Recipe {
                lr_half_life: Some(0),
                ..Recipe::default()
            },
            Recipe {
                ema_decay: Some(1.0),
                ..Recipe::default()
            },
            Recipe {
                clip_grad_norm: Some(f64::NAN),
                ..Recipe::default()
            },
        ];
        for recipe in bad {
            assert!(recipe.validate().is_err(), "{recipe:?}");
        }
        assert!(Recipe::default().validate().is_ok());
    }
}
