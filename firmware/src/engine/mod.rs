//! The integer generator: dense layers (int8 or int4 weights × int8/uint8 activations → i32),
//! requantization to 8 bits, and the output table to grey levels. No floats, no heap.
//!
//! Activations live in two caller-provided ping-pong buffers of [`Model::max_width`] bytes each.
//! The kernels all compute the same thing: [`Kernel::Reference`], one output at a time straight
//! from the format's definition, and the block kernels (`kernels`), which take blocks of eight
//! output rows whose weights for one column are consecutive bytes (int4: one word load), so that
//! an activation is loaded once per block or half block, each shaped for one kind of core.

mod kernels;

use crate::format::{BLOCK, Dense, Error, Model, Storage};
use kernels::{Core, dense_blocks};

/// Which dense kernel computes the layers. Non-exhaustive: the named kernels exist with the
/// `std` feature only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kernel {
    /// One output at a time from the format's definition: the yardstick the others are
    /// tested against.
    Reference,
    /// The block kernel for the core this is compiled for: [`Kernel::CortexM3`] on Thumb-2
    /// targets, [`Kernel::CortexM0Plus`] on `thumbv6m`, [`Kernel::Portable`] elsewhere.
    Fast,
    /// Two passes of four rows per block (Thumb-2: `MLA`, immediate-offset signed loads).
    /// The kernels by name exist on the host only (feature `std`), where the tests check each
    /// against the reference; a device build keeps only its own, to save flash.
    #[cfg(feature = "std")]
    CortexM3,
    /// One pass of eight rows, the activation loaded once per eight (Thumb-1: `MULS`, `ADD`).
    #[cfg(feature = "std")]
    CortexM0Plus,
    /// Eight rows in 16-bit products, which a host compiler vectorizes.
    #[cfg(feature = "std")]
    Portable,
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
    store_channel(layer, layer.channel(o), acc)
}

/// [`store`] with the channel's `(bias, multiplier, shift)` already decoded (the host engine
/// decodes them once per model).
#[inline]
pub(crate) fn store_channel(
    layer: &Dense<'_>,
    (bias, multiplier, shift): (i32, i32, i8),
    acc: i32,
) -> u8 {
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

/// Requantizes and stores a block's accumulators into its (up to eight) output rows.
#[inline]
fn finish(layer: &Dense<'_>, block: usize, acc: &[i32; BLOCK], rows: &mut [u8]) {
    for (r, (slot, &a)) in rows.iter_mut().zip(acc).enumerate() {
        *slot = store(layer, block * BLOCK + r, a);
    }
}

fn dense(kernel: Kernel, layer: &Dense<'_>, signed_input: bool, input: &[u8], out: &mut [u8]) {
    let core = match kernel {
        Kernel::Reference if signed_input => {
            return dense_reference::<Signed>(layer, input, out);
        }
        Kernel::Reference => return dense_reference::<Unsigned>(layer, input, out),
        Kernel::Fast => Core::NATIVE,
        #[cfg(feature = "std")]
        Kernel::CortexM3 => Core::CortexM3,
        #[cfg(feature = "std")]
        Kernel::CortexM0Plus => Core::CortexM0Plus,
        #[cfg(feature = "std")]
        Kernel::Portable => Core::Portable,
    };
    if signed_input {
        dense_blocks::<Signed>(core, layer, input, out)
    } else {
        dense_blocks::<Unsigned>(core, layer, input, out)
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
