//! The float generator after BatchNorm folding: Linear+ReLU layers, then Linear+Sigmoid.
//! It is the reference the integer model is calibrated on and compared against.

use crate::fold::Linear;

/// A folded generator: input is the noise followed (conditional models) by a one-hot class.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatGenerator {
    pub latent: usize,
    pub classes: usize,
    /// Every layer but the last is followed by ReLU; the last by Sigmoid.
    pub layers: Vec<Linear>,
}

impl FloatGenerator {
    pub fn input_len(&self) -> usize {
        self.latent + self.classes
    }

    /// The network input for noise `z` and, for a conditional model, `class`.
    pub fn input(&self, z: &[f32], class: Option<usize>) -> Vec<f32> {
        let mut x = z.to_vec();
        x.resize(self.input_len(), 0.0);
        if let Some(c) = class.filter(|&c| c < self.classes) {
            x[self.latent + c] = 1.0;
        }
        x
    }

    /// Every layer's output for input `x`: post-ReLU activations, and the last layer's logits.
    pub fn activations(&self, x: &[f32]) -> Vec<Vec<f32>> {
        let mut outs = Vec::with_capacity(self.layers.len());
        let mut cur = x.to_vec();
        for (k, layer) in self.layers.iter().enumerate() {
            let mut y: Vec<f32> = layer.forward(&cur).into_iter().map(|v| v as f32).collect();
            if k + 1 < self.layers.len() {
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            outs.push(y.clone());
            cur = y;
        }
        outs
    }

    /// Pixels in [0, 1].
    pub fn image(&self, x: &[f32]) -> Vec<f32> {
        let logits = self.activations(x).pop().unwrap_or_default();
        logits.iter().map(|&l| sigmoid(l)).collect()
    }
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
