//! The integer engine for hosts: the same arithmetic as `firmware::engine`, bit
//! for bit, with the weights unpacked once into rows of 16-bit values so that each output is a
//! contiguous dot product, which compilers vectorize (16-bit multiplies widened to 32-bit lanes;
//! `smlal` on AArch64). The blob's layout is made for the Cortex-M3; a host with wide registers
//! wants rows. Export's verification, the simulator and the benchmarks use this.
//!
//! The x86-64 baseline has only SSE2; the `multiversion` crate compiles the layer's products a
//! second time for AVX2 and picks that at run time when the CPU has it (2.7× on the seed's
//! largest layer), so the binaries still run on any x86-64.

use firmware::engine::{Stats, store_channel};
use firmware::format::{Dense, Error, Model, Storage};

/// One layer unpacked: `outputs` rows of `inputs` weights each, and each row's decoded
/// `(bias, multiplier, shift)` (decoding them from the blob per output cost a sixth of the time).
struct Rows {
    inputs: usize,
    outputs: usize,
    weights: Vec<i16>,
    channels: Vec<(i32, i32, i8)>,
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
                    channels: (0..outputs).map(|o| l.channel(o)).collect(),
                }
            })
            .collect();
        HostModel { model, layers }
    }

    /// As `firmware::engine::forward`: one int8 `input` ([`Model::input_len`] values) to the last
    /// layer's stored bytes in `out` ([`Model::pixels`] bytes).
    pub fn forward(&self, input: &[i8], out: &mut [u8]) -> Result<Stats, Error> {
        if input.len() != self.model.input_len() {
            return Err(Error::Input);
        }
        if out.len() < self.model.pixels() {
            return Err(Error::BufferTooSmall);
        }
        let mut x: Vec<i16> = input.iter().map(|&v| v as i16).collect();
        let (mut acc, mut stored) = (Vec::new(), Vec::new());
        let last = self.layers.len().saturating_sub(1);
        for (k, (rows, layer)) in self.layers.iter().zip(self.model.layers()).enumerate() {
            layer_forward(rows, layer, &x, &mut acc, &mut stored);
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

/// One layer: every row's `Σ wᵢ·xᵢ` with 32-bit wrapping sums, as the device kernels compute
/// them (wrapping addition is associative, so any order gives the same bits), requantized into
/// `stored`. The dot product is a plain reduction, which LLVM vectorizes into multiply-add-pairs
/// (`pmaddwd`); the dispatch is per layer, not per row, so that it inlines (dispatching per row
/// cost a third of the time on 192-wide rows).
#[multiversion::multiversion(targets("x86_64+avx2"))]
fn layer_forward<'b>(
    rows: &Rows,
    layer: &Dense<'b>,
    x: &[i16],
    acc: &mut Vec<i32>,
    stored: &mut Vec<u8>,
) {
    // Two loops: with the requantization in the dot products' loop LLVM no longer vectorized
    // them (2.2× slower).
    acc.clear();
    acc.resize(rows.outputs, 0);
    for (a, row) in acc.iter_mut().zip(rows.weights.chunks_exact(rows.inputs)) {
        *a = dot(row, x);
    }
    stored.clear();
    stored.extend(
        acc.iter()
            .zip(&rows.channels)
            .map(|(&a, &c)| store_channel(layer, c, a)),
    );
}

#[inline(always)]
fn dot(w: &[i16], x: &[i16]) -> i32 {
    w.iter()
        .zip(x)
        .fold(0i32, |s, (&w, &x)| s.wrapping_add(w as i32 * x as i32))
}
