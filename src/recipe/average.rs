//! Polyak averaging: an exponential moving average of the weights, updated after every step,
//! `average ← d·average + (1−d)·weights`. Its decay starts low and rises to `d` as
//! `min(d, (1+t)/(10+t))` after `t` updates, so that the average does not remember the random
//! initial weights for thousands of steps; the averaged model is the one that is evaluated
//! and sampled (PixelCNN++, arXiv 1701.05517, Section 3).

use std::collections::VecDeque;

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use crate::model::PixelCnn;

/// The decay applied at update number `updates` (counted from 0) for a target decay `decay`.
pub fn effective_decay(decay: f64, updates: usize) -> f64 {
    decay.min((1.0 + updates as f64) / (10.0 + updates as f64))
}

/// `average` moved towards `weights` (a model of the same configuration) by one update of
/// decay `decay`.
pub fn update(average: PixelCnn, weights: &PixelCnn, decay: f64) -> PixelCnn {
    let mut collected = Flattened::default();
    weights.visit(&mut collected);
    average.map(&mut Blend {
        weights: collected.values,
        decay,
    })
}

/// Every parameter of a model, flattened, in the order modules visit them.
#[derive(Default)]
struct Flattened {
    values: VecDeque<Tensor<1>>,
}

impl ModuleVisitor for Flattened {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let count = value.shape().num_elements();
        self.values.push_back(value.reshape([count]));
    }
}

/// Blends each parameter with the next of `weights`.
struct Blend {
    weights: VecDeque<Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let weights = self
            .weights
            .pop_front()
            .expect("the average has the weights' configuration");
        let decay = self.decay;
        param.map(|average| {
            let shape = average.shape();
            average.mul_scalar(decay) + weights.reshape(shape).mul_scalar(1.0 - decay)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PixelCnnConfig;

    fn first_weights(model: &PixelCnn) -> Vec<f32> {
        let mut collected = Flattened::default();
        model.visit(&mut collected);
        collected.values[0]
            .clone()
            .into_data()
            .try_to_vec()
            .unwrap()
    }

    #[test]
    fn the_average_moves_towards_the_weights_by_one_minus_the_decay() {
        let device = Device::flex();
        let config = PixelCnnConfig::new(4).with_layers(2).with_channels(4);
        let (a, b) = (
            config.init_seeded(&device, 1),
            config.init_seeded(&device, 2),
        );
        let blended = update(a.clone(), &b, 0.75);
        let (a, b, blended) = (
            first_weights(&a),
            first_weights(&b),
            first_weights(&blended),
        );
        assert_ne!(a, b);
        for ((a, b), m) in a.iter().zip(&b).zip(&blended) {
            assert!((m - (0.75 * a + 0.25 * b)).abs() < 1e-6);
        }
    }

    #[test]
    fn the_decay_warms_up_towards_its_target() {
        assert!((effective_decay(0.999, 0) - 0.1).abs() < 1e-12);
        assert!((effective_decay(0.999, 90) - 0.91).abs() < 1e-12);
        assert_eq!(effective_decay(0.999, 1_000_000), 0.999);
    }
}
