//! The integer engine for hosts (feature `std`): the same arithmetic as [`crate::engine`], bit
//! for bit, with the weights unpacked once into rows of 16-bit values so that each output is a
//! contiguous dot product, which compilers turn into SIMD multiply-add-pairs (`pmaddwd` on any
//! x86-64, `smlal` on AArch64). The blob's layout is made for the Cortex-M3; a host with wide
//! registers wants rows. Export's verification, the simulator and the benchmarks use this.

use std::vec::Vec;

use crate::engine::{Stats, store};
use crate::format::{Error, Model, Storage};

/// One layer unpacked: `outputs` rows of `inputs` weights each.
struct Rows {
    inputs: usize,
    outputs: usize,
    weights: Vec<i16>,
}

/// A model with its weights unpacked for the host.
pub struct HostModel<'m, 'b> {
    model: &'m Model<'b>,
    layers: Vec<Rows>,
}

impl<'m, 'b> HostModel<'m, 'b> {
    /// Unpacks `model`'s weights (int8 or int4) into rows.
    pub fn new(model: &'m Model<'b>) -> Self {
        let layers = model
            .layers()
            .iter()
            .map(|l| {
                let (inputs, outputs) = (l.inputs as usize, l.outputs as usize);
                let mut weights = Vec::with_capacity(inputs * outputs);
                for o in 0..outputs {
                    weights.extend((0..inputs).map(|i| l.weight(o, i) as i16));
                }
                Rows {
                    inputs,
                    outputs,
                    weights,
                }
            })
            .collect();
        HostModel { model, layers }
    }

    /// As [`crate::engine::forward`]: one int8 `input` ([`Model::input_len`] values) to the last
    /// layer's stored bytes in `out` ([`Model::pixels`] bytes).
    pub fn forward(&self, input: &[i8], out: &mut [u8]) -> Result<Stats, Error> {
        if input.len() != self.model.input_len() {
            return Err(Error::Input);
        }
        if out.len() < self.model.pixels() {
            return Err(Error::BufferTooSmall);
        }
        let mut x: Vec<i16> = input.iter().map(|&v| v as i16).collect();
        let mut stored = Vec::new();
        let last = self.layers.len().saturating_sub(1);
        for (k, (rows, layer)) in self.layers.iter().zip(self.model.layers()).enumerate() {
            stored.clear();
            stored.extend(
                rows.weights
                    .chunks_exact(rows.inputs)
                    .take(rows.outputs)
                    .enumerate()
                    .map(|(o, row)| store(layer, o, dot(row, &x))),
            );
            if k == last {
                out[..stored.len()].copy_from_slice(&stored);
            } else {
                let signed = layer.output == Storage::I8;
                x.clear();
                x.extend(
                    stored
                        .iter()
                        .map(|&b| if signed { b as i8 as i16 } else { b as i16 }),
                );
            }
        }
        Ok(Stats {
            macs: self.model.macs(),
        })
    }
}

/// `Σ wᵢ·xᵢ` with 32-bit wrapping sums, as the device kernels compute it (wrapping addition is
/// associative, so any order gives the same bits). Eight lanes, so that the compiler maps each
/// step onto one multiply-add-pairs over 16-bit values.
#[inline]
fn dot(w: &[i16], x: &[i16]) -> i32 {
    let (wc, wr) = w.as_chunks::<8>();
    let (xc, xr) = x.as_chunks::<8>();
    let mut lanes = [0i32; 8];
    for (a, b) in wc.iter().zip(xc) {
        for k in 0..8 {
            lanes[k] = lanes[k].wrapping_add(a[k] as i32 * b[k] as i32);
        }
    }
    let tail = wr
        .iter()
        .zip(xr)
        .fold(0i32, |acc, (&w, &x)| acc.wrapping_add(w as i32 * x as i32));
    lanes.iter().fold(tail, |acc, &l| acc.wrapping_add(l))
}
