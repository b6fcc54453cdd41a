//! Gradient-norm clipping: when the norm of a step's whole gradient (all parameters as one
//! vector) exceeds a ceiling, the gradient is scaled down to that norm, so a rare large
//! gradient cannot throw the weights far; its direction is kept.

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::model::PixelCnn;

/// The global L2 norm of `grads` over the parameters of `model`.
pub fn global_norm(model: &PixelCnn, grads: &GradientsParams) -> f64 {
    let mut squares = SquaredNorms {
        grads,
        sums: Vec::new(),
    };
    model.visit(&mut squares);
    if squares.sums.is_empty() {
        return 0.0;
    }
    Tensor::cat(squares.sums, 0)
        .sum()
        .into_scalar::<f64>()
        .sqrt()
}

/// `grads` scaled to norm `ceiling` if their global norm is above it; returns the norm before
/// clipping.
pub fn clip(model: &PixelCnn, grads: &mut GradientsParams, ceiling: f64) -> f64 {
    let norm = global_norm(model, grads);
    if norm > ceiling {
        model.visit(&mut Scale {
            grads,
            factor: ceiling / norm,
        });
    }
    norm
}

struct SquaredNorms<'a> {
    grads: &'a GradientsParams,
    sums: Vec<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorms<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            self.sums.push(grad.powi_scalar(2).sum().reshape([1]));
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, grad.mul_scalar(self.factor));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::mean_nll;
    use crate::model::PixelCnnConfig;

    #[test]
    fn a_gradient_above_the_ceiling_is_scaled_to_it_and_one_below_is_kept() {
        let device = Device::flex().autodiff();
        let model = PixelCnnConfig::new(4)
            .with_layers(2)
            .with_channels(4)
            .init_seeded(&device, 0);
        let gradients = || {
            let targets = Tensor::<4, Int>::ones([2, 1, 5, 5], &device);
            let loss = mean_nll(model.forward(targets.clone()).unwrap(), targets);
            GradientsParams::from_grads(loss.backward(), &model)
        };
        let norm = global_norm(&model, &gradients());
        assert!(norm > 0.0);

        let mut clipped = gradients();
        assert_eq!(clip(&model, &mut clipped, norm / 4.0), norm);
        assert!((global_norm(&model, &clipped) - norm / 4.0).abs() < 1e-4 * norm);

        let mut kept = gradients();
        clip(&model, &mut kept, norm * 2.0);
        assert_eq!(global_norm(&model, &kept), norm);
    }
}
