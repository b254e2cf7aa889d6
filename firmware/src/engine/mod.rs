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
/// `all-kernels` feature only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kernel {
    /// One output at a time from the format's definition: the yardstick the others are
    /// tested against.
    Reference,
    /// The block kernel for the core this is compiled for: [`Kernel::CortexM3`] on Thumb-2
    /// targets, [`Kernel::CortexM0Plus`] on `thumbv6m`, [`Kernel::Portable`] elsewhere.
    Fast,
    /// Two passes of four rows per block for int8 (Thumb-2: `MLA`, immediate-offset signed
    /// loads); int4 layers take the lane kernel on every core.
    /// The kernels by name exist on the host only (feature `all-kernels`), where the tests check each
    /// against the reference; a device build keeps only its own, to save flash.
    #[cfg(feature = "all-kernels")]
    CortexM3,
    /// One pass of eight rows, the activation loaded once per eight (Thumb-1: `MULS`, `ADD`).
    #[cfg(feature = "all-kernels")]
    CortexM0Plus,
    /// Eight rows in 16-bit products, which a host compiler vectorizes.
    #[cfg(feature = "all-kernels")]
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
    match requantize_usual(acc, multiplier, shift) {
        Some(q) => q,
        None => requantize_rare(acc, multiplier, shift),
    }
}

/// [`requantize`] in 64 bits, for the exponents [`requantize_usual`] leaves; out of line, so
/// that the usual path keeps its registers.
#[cold]
#[inline(never)]
fn requantize_rare(acc: i32, multiplier: i32, shift: i8) -> i32 {
    let product = acc as i64 * multiplier as i64;
    let e = 31 - shift as i32;
    let t = e.clamp(1, 62) as u32;
    let rounded = (product + (1i64 << (t - 1))) >> t;
    rounded.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// [`requantize`] for the usual exponents, `33 ≤ 31 − shift ≤ 62` (a ratio below 2⁻¹), in
/// 32-bit steps: `|acc · multiplier| < 2⁶²`, so `q = ⌊product / 2^(e−1)⌋` is the high word
/// shifted and fits i32, and `⌊(q + 1) / 2⌋ = ⌊(product + 2^(e−1)) / 2^e⌋` without overflow.
#[inline(always)]
fn requantize_usual(acc: i32, multiplier: i32, shift: i8) -> Option<i32> {
    // `e − 33` for `e = 31 − shift`; one unsigned compare tests `33 ≤ e ≤ 62`.
    let k = (-2 - shift as i32) as u32;
    if k > 29 {
        return None;
    }
    let q = mul_high(acc, multiplier) >> k;
    Some((q >> 1) + (q & 1))
}

/// [`requantize`] for the exponents [`requantize_usual`] leaves, `1 ≤ e = 31 − shift ≤ 32` (a
/// ratio of at least 2⁻¹, as in an output layer), in 32-bit words: `⌊product / 2^(e−1)⌋` from the
/// product's high and low words. Exact while the result is below 2³⁰ in magnitude; beyond, it
/// saturates at ±2³⁰, which every output clamp maps as it maps the exact value. Out of line: on
/// the Cortex-M0+ the 64-bit routine it replaces cost a tenth of a digit with the LM3S6965 model.
#[inline(never)]
fn requantize_wide(acc: i32, multiplier: i32, shift: i8) -> i32 {
    const LIMIT: i32 = 1 << 30;
    // `e − 1`, in 0..=31 for the exponents that reach here (the format guarantees 1 ≤ e ≤ 62).
    let k = (30 - shift as i32).clamp(0, 31) as u32;
    let high = mul_high(acc, multiplier);
    let low = (acc as u32).wrapping_mul(multiplier as u32);
    let (q, top) = match k {
        0 => (low as i32, high),
        _ => (((low >> k) | ((high as u32) << (32 - k))) as i32, high >> k),
    };
    if top != q >> 31 {
        return if high < 0 { -LIMIT } else { LIMIT };
    }
    (q >> 1) + (q & 1)
}

/// `⌊a · b / 2³²⌋`, the high word of the exact product. Thumb-2 and hosts have a 32 × 32 → 64
/// multiply; the Cortex-M0+ has not, and LLVM calls a 64 × 64 routine for it (about a tenth of a
/// digit's time on the Pico), so there the product is taken in 16-bit halves.
#[inline(always)]
fn mul_high(a: i32, b: i32) -> i32 {
    if cfg!(mcugan_armv6m) {
        mul_high_halves(a, b)
    } else {
        ((a as i64 * b as i64) >> 32) as i32
    }
}

/// [`mul_high`] from four 16 × 16 → 32 products: `a = ah · 2¹⁶ + al` with `al` unsigned,
/// likewise `b`; each partial product fits 32 bits, and the carries out of the low word are
/// added back exactly.
#[inline(always)]
pub fn mul_high_halves(a: i32, b: i32) -> i32 {
    let (ah, al) = (a >> 16, a & 0xFFFF);
    let (bh, bl) = (b >> 16, b & 0xFFFF);
    let low = (al as u32).wrapping_mul(bl as u32);
    // |ah · bl| and |al · bh| are below 2³¹: 2¹⁵ · (2¹⁶ − 1).
    let (m1, m2) = (ah.wrapping_mul(bl), al.wrapping_mul(bh));
    let carry = (low >> 16) as i32 + (m1 & 0xFFFF) + (m2 & 0xFFFF);
    ah.wrapping_mul(bh)
        .wrapping_add(m1 >> 16)
        .wrapping_add(m2 >> 16)
        .wrapping_add(carry >> 16)
}

/// Requantizes one accumulator of channel `o` and stores it in the layer's output type.
#[inline]
pub(crate) fn store(layer: &Dense<'_>, o: usize, acc: i32) -> u8 {
    store_channel(layer, layer.channel(o), acc)
}

/// [`store`] with the channel's `(bias, multiplier, shift)` already decoded (export's host
/// engine decodes them once per model).
#[inline]
pub fn store_channel(layer: &Dense<'_>, channel: (i32, i32, i8), acc: i32) -> u8 {
    Stored::of(layer).store(channel, acc)
}

/// A layer's output offset and clamp, read once per block rather than once per row.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stored {
    offset: i32,
    min: i32,
    max: i32,
}

impl Stored {
    const RELU: Stored = Stored {
        offset: 0,
        min: 0,
        max: 255,
    };
    /// A ReLU read by an int4 layer (`--weights fast` stores those in 7 bits).
    const RELU7: Stored = Stored {
        offset: 0,
        min: 0,
        max: 127,
    };
    const LOGITS: Stored = Stored {
        offset: 0,
        min: -127,
        max: 127,
    };

    #[inline(always)]
    fn of(layer: &Dense<'_>) -> Self {
        Stored {
            offset: layer.output_offset as i32,
            min: layer.clamp_min as i32,
            max: layer.clamp_max as i32,
        }
    }

    /// [`requantize`] plus offset and clamp. Both paths give results small enough to add the
    /// offset without saturating (`|q| ≤ 2³⁰`, `|offset| < 2¹⁵`).
    #[inline(always)]
    fn store(self, (bias, multiplier, shift): (i32, i32, i8), acc: i32) -> u8 {
        let acc = acc.wrapping_add(bias);
        let q = match requantize_usual(acc, multiplier, shift) {
            Some(q) => q,
            None => requantize_wide(acc, multiplier, shift),
        };
        let value = q + self.offset;
        // Not `clamp`, whose check for `min > max` would be a panic path; the model's clamps
        // were validated.
        value.max(self.min).min(self.max) as u8
    }

    /// [`Stored::store`] from the blob's little-endian channel bytes.
    #[inline(always)]
    fn store_row(self, bias: [u8; 4], multiplier: [u8; 4], shift: u8, acc: i32) -> u8 {
        let channel = (
            i32::from_le_bytes(bias),
            i32::from_le_bytes(multiplier),
            shift as i8,
        );
        self.store(channel, acc)
    }
}

/// How a layer reads its stored input bytes.
trait Activation {
    const SIGNED: bool;
    fn value(stored: u8) -> i32;
}
struct Unsigned;
struct Signed;
impl Activation for Unsigned {
    const SIGNED: bool = false;
    #[inline(always)]
    fn value(stored: u8) -> i32 {
        stored as i32
    }
}
impl Activation for Signed {
    const SIGNED: bool = true;
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

/// Requantizes and stores a block's accumulators into its (up to eight) output rows. The
/// channels' words are read whole from slices checked once per block, and a full block is
/// written out straight (decoding each row through [`Dense::channel`] cost ~50 instructions a
/// row; now ~20).
#[inline]
fn finish(layer: &Dense<'_>, block: usize, acc: &[i32; BLOCK], rows: &mut [u8]) {
    let (first, n) = (block * BLOCK, rows.len());
    let (Some(bias), Some(multiplier), Some(shift)) = (
        layer.bias.get(4 * first..4 * (first + n)),
        layer.multiplier.get(4 * first..4 * (first + n)),
        layer.shift.get(first..first + n),
    ) else {
        return; // the model was validated: every channel is there
    };
    let (bias, multiplier) = (bias.as_chunks::<4>().0, multiplier.as_chunks::<4>().0);
    let stored = Stored::of(layer);
    if let (Ok(rows), Ok(bias), Ok(multiplier), Ok(shift)) = (
        <&mut [u8; BLOCK]>::try_from(&mut *rows),
        <&[[u8; 4]; BLOCK]>::try_from(bias),
        <&[[u8; 4]; BLOCK]>::try_from(multiplier),
        <&[u8; BLOCK]>::try_from(shift),
    ) {
        let channels = (bias, multiplier, shift);
        // The exporter's kinds of layer, with their clamps as constants: one `USAT` for a
        // ReLU instead of two compares.
        match stored {
            Stored::RELU => full_block(Stored::RELU, channels, acc, rows),
            Stored::RELU7 => full_block(Stored::RELU7, channels, acc, rows),
            Stored::LOGITS => full_block(Stored::LOGITS, channels, acc, rows),
            _ => full_block(stored, channels, acc, rows),
        }
    } else {
        let channels = bias.iter().zip(multiplier).zip(shift);
        for ((slot, &a), ((&b, &m), &s)) in rows.iter_mut().zip(acc).zip(channels) {
            *slot = stored.store_row(b, m, s, a);
        }
    }
}

/// [`finish`] for a full block, its channels as arrays.
#[inline(always)]
fn full_block(
    stored: Stored,
    (bias, multiplier, shift): (&[[u8; 4]; BLOCK], &[[u8; 4]; BLOCK], &[u8; BLOCK]),
    acc: &[i32; BLOCK],
    rows: &mut [u8; BLOCK],
) {
    for r in 0..BLOCK {
        rows[r] = stored.store_row(bias[r], multiplier[r], shift[r], acc[r]);
    }
}

fn dense(kernel: Kernel, layer: &Dense<'_>, signed_input: bool, input: &[u8], out: &mut [u8]) {
    let core = match kernel {
        Kernel::Reference if signed_input => {
            return dense_reference::<Signed>(layer, input, out);
        }
        Kernel::Reference => return dense_reference::<Unsigned>(layer, input, out),
        Kernel::Fast => Core::NATIVE,
        #[cfg(feature = "all-kernels")]
        Kernel::CortexM3 => Core::CortexM3,
        #[cfg(feature = "all-kernels")]
        Kernel::CortexM0Plus => Core::CortexM0Plus,
        #[cfg(feature = "all-kernels")]
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
