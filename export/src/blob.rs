//! The model blob from a quantized model: the quantizer fills a [`ModelSpec`] with row-major
//! tensors, which are packed into the layout `firmware::format` specifies and encoded by its
//! writer into the bytes the board reads.

use firmware::format::{
    self, BLOCK, Dense, Error, Header, Model, Storage, WeightKind, padded_rows, weight_bytes,
};

/// One dense layer, tensors in the natural order (`weights[o * inputs + i]`).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    pub inputs: usize,
    pub outputs: usize,
    pub kind: WeightKind,
    /// Row-major weights; int4 layers must keep each weight in −8..=7.
    pub weights: Vec<i8>,
    pub bias: Vec<i32>,
    /// Per output channel, from [`quantize_multiplier`].
    pub multiplier: Vec<i32>,
    pub shift: Vec<i8>,
    pub output: Storage,
    pub output_offset: i16,
    pub clamp_min: i16,
    pub clamp_max: i16,
}

/// A whole model before serialization.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub latent: usize,
    pub classes: usize,
    pub one_hot_level: i8,
    pub noise_multiplier: i32,
    pub noise_shift: i8,
    pub width: usize,
    pub height: usize,
    pub layers: Vec<LayerSpec>,
    /// Grey level of each stored byte of the last layer.
    pub lut: [u8; 256],
}

/// Why a spec cannot be written: a tensor of the wrong length, a value out of its type, or
/// whatever the firmware's own decoder refuses (checked on the written bytes).
#[derive(Debug, PartialEq)]
pub enum BuildError {
    Tensor { layer: usize, what: &'static str },
    Rejected(Error),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Tensor { layer, what } => write!(f, "layer {layer}: {what}"),
            BuildError::Rejected(e) => write!(f, "the firmware would refuse this model: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// `real ≈ multiplier · 2^(shift − 31)` with the multiplier in [2^30, 2^31) (TFLite's
/// `QuantizeMultiplier`); 0 for `real == 0`. Panics on a negative or non-finite `real`.
pub fn quantize_multiplier(real: f64) -> (i32, i8) {
    assert!(real.is_finite() && real >= 0.0, "multiplier {real}");
    if real == 0.0 {
        return (0, 0);
    }
    let mut exp = real.log2().floor() as i32 + 1;
    let mut q = (real * 2f64.powi(31 - exp)).round() as i64;
    if q == 1 << 31 {
        q /= 2;
        exp += 1;
    }
    (q as i32, exp as i8)
}

impl LayerSpec {
    /// Weights in the format's blocked layout (see `firmware::format`).
    fn packed_weights(&self, index: usize) -> Result<Vec<u8>, BuildError> {
        let err = |what| BuildError::Tensor { layer: index, what };
        let (n_in, n_out) = (self.inputs, self.outputs);
        if self.weights.len() != n_in * n_out {
            return Err(err("weights length is not inputs × outputs"));
        }
        let mut packed = vec![0u8; weight_bytes(n_in, n_out, self.kind)];
        for o in 0..padded_rows(n_out) {
            for i in 0..n_in {
                let w = if o < n_out {
                    self.weights[o * n_in + i]
                } else {
                    0
                };
                let base = (o / BLOCK) * n_in + i;
                match self.kind {
                    WeightKind::Int8 => packed[base * BLOCK + o % BLOCK] = w as u8,
                    WeightKind::Int4 => {
                        if !(-8..=7).contains(&w) {
                            return Err(err("int4 weight outside -8..=7"));
                        }
                        let nibble = (w + 8) as u8;
                        packed[base * (BLOCK / 2) + (o % BLOCK) / 2] |= if o.is_multiple_of(2) {
                            nibble
                        } else {
                            nibble << 4
                        };
                    }
                }
            }
        }
        Ok(packed)
    }
}

impl ModelSpec {
    /// Serializes the spec and checks that the firmware's decoder accepts the result.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BuildError> {
        let narrow = |layer, what| BuildError::Tensor { layer, what };
        let header = Header {
            latent: u16::try_from(self.latent).map_err(|_| narrow(0, "latent too long"))?,
            classes: u8::try_from(self.classes).map_err(|_| narrow(0, "too many classes"))?,
            one_hot_level: self.one_hot_level,
            noise_multiplier: self.noise_multiplier,
            noise_shift: self.noise_shift,
            width: u8::try_from(self.width).map_err(|_| narrow(0, "image too wide"))?,
            height: u8::try_from(self.height).map_err(|_| narrow(0, "image too high"))?,
            layers: u8::try_from(self.layers.len()).map_err(|_| narrow(0, "too many layers"))?,
        };
        let mut packed = Vec::with_capacity(self.layers.len());
        for (index, l) in self.layers.iter().enumerate() {
            let n = l.outputs;
            if l.bias.len() != n || l.multiplier.len() != n || l.shift.len() != n {
                return Err(narrow(
                    index,
                    "bias, multiplier or shift length is not outputs",
                ));
            }
            let words = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            let shift: Vec<u8> = l.shift.iter().map(|&s| s as u8).collect();
            packed.push((
                l.packed_weights(index)?,
                words(&l.bias),
                words(&l.multiplier),
                shift,
            ));
        }
        let mut layers = Vec::with_capacity(self.layers.len());
        for (index, (l, (weights, bias, multiplier, shift))) in
            self.layers.iter().zip(&packed).enumerate()
        {
            layers.push(Dense {
                inputs: u16::try_from(l.inputs).map_err(|_| narrow(index, "too many inputs"))?,
                outputs: u16::try_from(l.outputs).map_err(|_| narrow(index, "too many outputs"))?,
                kind: l.kind,
                output: l.output,
                output_offset: l.output_offset,
                clamp_min: l.clamp_min,
                clamp_max: l.clamp_max,
                pad: &[],
                weights,
                bias,
                multiplier,
                shift,
            });
        }
        let mut out = vec![0; format::encoded_len_bound(&layers, &self.lut)];
        let len =
            format::write(&header, &layers, &self.lut, &mut out).map_err(BuildError::Rejected)?;
        out.truncate(len);
        Model::from_bytes(&out).map_err(BuildError::Rejected)?;
        Ok(out)
    }
}
