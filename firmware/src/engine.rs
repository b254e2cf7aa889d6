//! The integer generator: dense layers (int8 or int4 weights × int8/uint8 activations → i32),
//! requantization to 8 bits, and the output table to grey levels. No floats, no heap.
//!
//! Activations live in two caller-provided ping-pong buffers of [`Model::max_width`] bytes each.
//! Two kernels compute the same thing: [`Kernel::Reference`], one output at a time straight
//! from the format's definition, and [`Kernel::Fast`]: blocks of eight output rows whose
//! weights for one column are consecutive bytes (int4: one word load), so that an activation is
//! loaded once per block (on the Cortex-M3, once per four rows: see `block_int8`).

use crate::format::{BLOCK, Dense, Error, Model, Storage, WeightKind};

/// Which dense kernel computes the layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Reference,
    Fast,
}

/// What one forward pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Dense multiply-accumulates (Σ inputs × outputs over the layers), skipped zeros included.
    pub macs: u32,
}

/// `⌊acc · multiplier / 2^(31 − shift) + 1/2⌋`, exact, saturated to i32; `1 ≤ 31 − shift ≤ 62`
/// (the format guarantees it). One rounding, half up, as CMSIS-NN's single-rounding requantize.
#[inline]
pub fn requantize(acc: i32, multiplier: i32, shift: i8) -> i32 {
    let t = (31 - shift as i32).clamp(1, 62) as u32;
    let product = acc as i64 * multiplier as i64;
    let rounded = (product + (1i64 << (t - 1))) >> t;
    rounded.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Requantizes one accumulator of channel `o` and stores it in the layer's output type.
#[inline]
pub(crate) fn store(layer: &Dense<'_>, o: usize, acc: i32) -> u8 {
    let (bias, multiplier, shift) = layer.channel(o);
    let value = requantize(acc.wrapping_add(bias), multiplier, shift)
        .saturating_add(layer.output_offset as i32)
        .clamp(layer.clamp_min as i32, layer.clamp_max as i32);
    value as u8
}

/// How a layer reads its stored input bytes.
trait Activation {
    fn value(stored: u8) -> i32;
}
struct Unsigned;
struct Signed;
impl Activation for Unsigned {
    #[inline(always)]
    fn value(stored: u8) -> i32 {
        stored as i32
    }
}
impl Activation for Signed {
    #[inline(always)]
    fn value(stored: u8) -> i32 {
        stored as i8 as i32
    }
}

/// One output at a time, each weight through [`Dense::weight`]: the definition, kept simple.
fn dense_reference<A: Activation>(layer: &Dense<'_>, input: &[u8], out: &mut [u8]) {
    for (o, slot) in out.iter_mut().enumerate().take(layer.outputs as usize) {
        let acc = input
            .iter()
            .take(layer.inputs as usize)
            .enumerate()
            .fold(0i32, |acc, (i, &x)| {
                acc.wrapping_add(layer.weight(o, i).wrapping_mul(A::value(x)))
            });
        *slot = store(layer, o, acc);
    }
}

/// Eight rows per pass, activation-major, skipping zero activations.
fn dense_fast<A: Activation>(layer: &Dense<'_>, input: &[u8], out: &mut [u8]) {
    let inputs = layer.inputs as usize;
    let outputs = layer.outputs as usize;
    let (Some(input), Some(out)) = (input.get(..inputs), out.get_mut(..outputs)) else {
        return;
    };
    match layer.kind {
        WeightKind::Int8 => {
            let blocks = layer.weights.chunks_exact(BLOCK * inputs);
            for (b, (block, rows)) in blocks.zip(out.chunks_mut(BLOCK)).enumerate() {
                let acc = block_int8::<A>(input, block.as_chunks::<BLOCK>().0);
                finish(layer, b, &acc, rows);
            }
        }
        WeightKind::Int4 => {
            let blocks = layer.weights.chunks_exact(BLOCK / 2 * inputs);
            for (b, (block, rows)) in blocks.zip(out.chunks_mut(BLOCK)).enumerate() {
                let acc = block_int4::<A>(input, block.as_chunks::<{ BLOCK / 2 }>().0);
                finish(layer, b, &acc, rows);
            }
        }
    }
}

/// The hot loop on the Cortex-M3: one block of eight rows in two passes of four. Eight
/// accumulators with the loop's pointers and temporaries need one register more than the
/// M3's 13 free ones, and the spills cost more than a second pass over the activations
/// (measured in QEMU on the default model: 3.90 instructions per MAC, against 4.09 for one
/// pass of eight with zero skipping and 5.00 without).
#[cfg(target_arch = "arm")]
#[inline(never)]
fn block_int8<A: Activation>(input: &[u8], columns: &[[u8; BLOCK]]) -> [i32; BLOCK] {
    let [a0, a1, a2, a3] = rows4_int8::<A, 0>(input, columns);
    let [a4, a5, a6, a7] = rows4_int8::<A, 4>(input, columns);
    [a0, a1, a2, a3, a4, a5, a6, a7]
}

/// Rows `R..R + 4` of a block. No test for zero activations: three in four are non-zero in
/// the default model, and the branch cost more than it saved (4.64 instructions per MAC).
#[cfg(target_arch = "arm")]
#[inline(never)]
fn rows4_int8<A: Activation, const R: usize>(input: &[u8], columns: &[[u8; BLOCK]]) -> [i32; 4] {
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    let n = input.len().min(columns.len());
    let (input, columns) = (&input[..n], &columns[..n]);
    for (&x, w) in input.iter().zip(columns) {
        let x = A::value(x);
        let m = |w: u8| (w as i8 as i32).wrapping_mul(x);
        a0 = a0.wrapping_add(m(w[R]));
        a1 = a1.wrapping_add(m(w[R + 1]));
        a2 = a2.wrapping_add(m(w[R + 2]));
        a3 = a3.wrapping_add(m(w[R + 3]));
    }
    [a0, a1, a2, a3]
}

/// The hot loop on a host: one block of eight rows over all columns, skipping zero
/// activations, the eight accumulators as plain locals.
#[cfg(not(target_arch = "arm"))]
#[inline(never)]
fn block_int8<A: Activation>(input: &[u8], columns: &[[u8; BLOCK]]) -> [i32; BLOCK] {
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    let (mut a4, mut a5, mut a6, mut a7) = (0i32, 0i32, 0i32, 0i32);
    for (&x, w) in input.iter().zip(columns) {
        let x = A::value(x);
        if x == 0 {
            continue;
        }
        // |i8 · (u8 or i8)| ≤ 32 640 fits i16: 16-bit lanes let the host vectorize (pmullw).
        let x16 = x as i16;
        let m = |w: u8| (w as i8 as i16).wrapping_mul(x16) as i32;
        a0 = a0.wrapping_add(m(w[0]));
        a1 = a1.wrapping_add(m(w[1]));
        a2 = a2.wrapping_add(m(w[2]));
        a3 = a3.wrapping_add(m(w[3]));
        a4 = a4.wrapping_add(m(w[4]));
        a5 = a5.wrapping_add(m(w[5]));
        a6 = a6.wrapping_add(m(w[6]));
        a7 = a7.wrapping_add(m(w[7]));
    }
    [a0, a1, a2, a3, a4, a5, a6, a7]
}

/// As [`block_int8`] for int4: one word load brings the column's eight nibbles.
#[inline(never)]
fn block_int4<A: Activation>(input: &[u8], columns: &[[u8; BLOCK / 2]]) -> [i32; BLOCK] {
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    let (mut a4, mut a5, mut a6, mut a7) = (0i32, 0i32, 0i32, 0i32);
    for (&x, w) in input.iter().zip(columns) {
        let x = A::value(x);
        if x == 0 {
            continue;
        }
        let word = u32::from_le_bytes(*w);
        // Nibble r to the top, then an arithmetic shift sign-extends it (one SBFX).
        let m = |r: u32| (((word << (28 - 4 * r)) as i32) >> 28).wrapping_mul(x);
        a0 = a0.wrapping_add(m(0));
        a1 = a1.wrapping_add(m(1));
        a2 = a2.wrapping_add(m(2));
        a3 = a3.wrapping_add(m(3));
        a4 = a4.wrapping_add(m(4));
        a5 = a5.wrapping_add(m(5));
        a6 = a6.wrapping_add(m(6));
        a7 = a7.wrapping_add(m(7));
    }
    [a0, a1, a2, a3, a4, a5, a6, a7]
}

#[inline]
fn finish(layer: &Dense<'_>, block: usize, acc: &[i32; BLOCK], rows: &mut [u8]) {
    for (r, (slot, &a)) in rows.iter_mut().zip(acc).enumerate() {
        *slot = store(layer, block * BLOCK + r, a);
    }
}

fn dense(kernel: Kernel, layer: &Dense<'_>, signed_input: bool, input: &[u8], out: &mut [u8]) {
    match (kernel, signed_input) {
        (Kernel::Reference, false) => dense_reference::<Unsigned>(layer, input, out),
        (Kernel::Reference, true) => dense_reference::<Signed>(layer, input, out),
        (Kernel::Fast, false) => dense_fast::<Unsigned>(layer, input, out),
        (Kernel::Fast, true) => dense_fast::<Signed>(layer, input, out),
    }
}

/// Runs the generator on one int8 `input` ([`Model::input_len`] values); the last layer's stored
/// bytes go to `out` ([`Model::pixels`] bytes; see [`Model::grey`]). `a` and `b` are the
/// ping-pong buffers, each at least [`Model::max_width`] bytes.
pub fn forward(
    model: &Model<'_>,
    kernel: Kernel,
    input: &[i8],
    a: &mut [u8],
    b: &mut [u8],
    out: &mut [u8],
) -> Result<Stats, Error> {
    let width = model.max_width();
    if input.len() != model.input_len() {
        return Err(Error::Input);
    }
    if a.len() < width || b.len() < width || out.len() < model.pixels() {
        return Err(Error::BufferTooSmall);
    }
    for (slot, &x) in a.iter_mut().zip(input) {
        *slot = x as u8;
    }
    let mut signed = true;
    let layers = model.layers();
    for (k, layer) in layers.iter().enumerate() {
        let (src, dst): (&[u8], &mut [u8]) = if k.is_multiple_of(2) {
            (&*a, &mut *b)
        } else {
            (&*b, &mut *a)
        };
        let dst = if k + 1 == layers.len() {
            &mut *out
        } else {
            dst
        };
        dense(kernel, layer, signed, src, dst);
        signed = layer.output == Storage::I8;
    }
    Ok(Stats { macs: model.macs() })
}
