//! The model blob: one integer-only generator, decoded zero-copy from flash.
//!
//! # Wire format, version 3
//!
//! Integers inside the postcard parts use postcard's encoding (unsigned varints, zigzag varints
//! for signed types wider than a byte, `u8`/`i8` as one raw byte, byte slices as a varint length
//! followed by the bytes, enums as a varint variant index). Everything else is little-endian.
//!
//! | part     | encoding                                   | meaning                              |
//! |----------|--------------------------------------------|--------------------------------------|
//! | magic    | 4 raw bytes `MGAN`                         | refuses anything that is not a model |
//! | version  | `u16` little-endian, raw                   | [`FORMAT_VERSION`]                   |
//! | header   | postcard [`Header`]                        | input, image size, layer count       |
//! | layers   | `header.layers` × postcard [`Dense`]       | in order, input to output            |
//! | lut      | postcard byte slice, exactly 256 bytes     | last layer's stored byte → grey 0–255 |
//! | pad      | postcard byte slice, 0–3 zero bytes        | makes the blob's length a multiple of 4 |
//! | crc      | `u32` little-endian, raw                   | CRC-32 of every byte before it       |
//!
//! Decoding checks, in order: length, magic, version (so an old or new blob says "version"
//! rather than "CRC"), CRC, then every field; nothing is used before all of it has passed.
//!
//! ## Alignment
//! Each layer's `weights` start at a multiple of 4 bytes from the blob's first byte (its `pad`,
//! 0–3 zero bytes, puts them there), and the blob's length is a multiple of 4. A board keeps the
//! blob in a word-aligned static ([`crate::include_model!`]), so that a kernel reads a column's
//! weights as aligned words: the Cortex-M0+ has no unaligned loads, and assembling a word from
//! four byte loads cost it more than the multiplies. [`write`] places the pads.
//!
//! ## Input
//! The generator's input is `latent + classes` int8 values with zero point 0: the latent noise,
//! `z / s_in` rounded and clamped to ±127, followed (conditional models, `classes > 0`) by a
//! one-hot vector whose chosen entry is `one_hot_level` (`round(1 / s_in)`, clamped to 127) and
//! whose other entries are 0, so the one-hot shares the noise's scale `s_in`. The device draws
//! `z` as a Q12 integer (value × 4096); `noise` is the requantization (below) from Q12 to the
//! int8 input, i.e. its real ratio is `1 / (4096 · s_in)`.
//!
//! ## Dense layers
//! `out[o] = clamp(output_offset + requant(bias[o] + Σ_i w[o][i] · x[i], multiplier[o], shift[o]),
//! clamp_min, clamp_max)`, stored as `u8` or `i8` ([`Storage`]); the next layer reads those
//! values with zero point 0 (export folds any input offset into the bias). A ReLU layer has
//! `output_offset = 0`, `clamp_min = 0`.
//!
//! * `bias`: `outputs` × `i32` little-endian; `multiplier`: `outputs` × `i32` little-endian
//!   (Q31, ≥ 0); `shift`: `outputs` × `i8`, the power-of-two exponent: the real ratio is
//!   `multiplier · 2^(shift − 31)`, with `1 ≤ 31 − shift ≤ 62`.
//! * `requant(acc, m, s) = ⌊acc · m / 2^(31−s) + 1/2⌋` (one rounding, half up, as CMSIS-NN's
//!   single-rounding `arm_nn_requantize`), computed exactly in 64 bits.
//! * `weights`: rows are grouped in blocks of [`BLOCK`] (8) output channels; `outputs` is padded
//!   up to a multiple of 8 with rows the engine computes and discards (export writes zeros).
//!   Inside a block the layout is column-major, so the engine loads one activation and updates
//!   eight accumulators from consecutive bytes. Int8: weight `(o, i)` is byte
//!   `((o / 8) · inputs + i) · 8 + o % 8`. Int4 (offset binary: the nibble is `w + 8`, so
//!   0..15 stands for −8..7): byte `((o / 8) · inputs + i) · 4 + (o % 8) / 2`, low nibble for
//!   even `o`, high nibble for odd; a column's eight nibbles are one little-endian word.
//!   Offset binary lets the Cortex-M kernel multiply two unsigned nibbles by an activation in one
//!   32-bit `MLA` (16-bit lanes) and then subtract `8 · Σx` from each row.
//! * Load refuses a layer unless `|bias| + Σ|w| · max|x| < 2^31` for every channel, so no
//!   accumulator can overflow whatever the input.
//!
//! Version 2 had no pads; version 1 also stored the int4 nibbles in two's complement.

use crate::crc::crc32;
use serde::{Deserialize, Serialize};

/// The four bytes every model blob starts with.
pub const MAGIC: [u8; 4] = *b"MGAN";
/// The wire format this firmware reads; bumped on any incompatible change.
pub const FORMAT_VERSION: u16 = 3;
/// Output channels per weight block (see the module doc).
pub const BLOCK: usize = 8;
/// Most layers a model may have (the decoded layer list lives on the stack).
pub const MAX_LAYERS: usize = 8;
/// Widest layer (inputs or outputs) a model may have.
pub const MAX_WIDTH: usize = 2048;
/// Longest latent vector the device keeps (and walks) in RAM.
pub const MAX_LATENT: usize = 128;
/// Most classes: the app labels them 0–9.
pub const MAX_CLASSES: usize = 10;
/// Largest image side: the 2× scaled image must fit the 64-pixel-high screen.
pub const MAX_SIDE: usize = 32;
/// Bytes before the postcard header: magic and version.
const PREFIX: usize = 6;

/// Everything that can be wrong with a blob or with how the engine is called, with a short text
/// that fits the 128-pixel screen (21 characters of the 6×10 font). Non-exhaustive: a later
/// format may find new faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Shorter than magic, version and CRC.
    TooShort,
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// Written in another wire format than [`FORMAT_VERSION`].
    Version { found: u16 },
    /// The CRC does not match the bytes: truncated or corrupted.
    BadCrc,
    /// A postcard part does not decode.
    Malformed,
    /// Bytes left between the grey table and the CRC.
    TrailingBytes,
    /// No layers, or more than [`MAX_LAYERS`].
    LayerCount,
    /// A layer's inputs differ from the previous outputs, or a width is 0 or over [`MAX_WIDTH`].
    Shape,
    /// A tensor's byte length does not match its layer's shape.
    Length,
    /// A multiplier is negative or a shift outside `1 ≤ 31 − shift ≤ 62`.
    Requant,
    /// An output clamp is empty or outside its storage's range.
    Clamp,
    /// Channel `channel` of layer `layer` could overflow its i32 accumulator on some input.
    Overflow { layer: u8, channel: u16 },
    /// The latent length, class count, one-hot level or noise requantization is out of range.
    Input,
    /// The image is empty, over [`MAX_SIDE`], or not the last layer's output count.
    Image,
    /// The grey table is not 256 bytes.
    Lut,
    /// A pad is longer than 3 bytes or not zero, or leaves weights or the blob's end off a
    /// 4-byte boundary (see the module doc).
    Alignment,
    /// The caller's input or buffers are shorter than the model needs.
    BufferTooSmall,
}

impl Error {
    /// Short text for the device's error screen.
    pub fn as_str(&self) -> &'static str {
        match self {
            Error::TooShort => "model too short",
            Error::BadMagic => "not a model (magic)",
            Error::Version { .. } => "model version differs",
            Error::BadCrc => "model CRC mismatch",
            Error::Malformed => "model malformed",
            Error::TrailingBytes => "model trailing bytes",
            Error::LayerCount => "bad layer count",
            Error::Shape => "bad layer shape",
            Error::Length => "bad tensor length",
            Error::Requant => "bad requantization",
            Error::Clamp => "bad output clamp",
            Error::Overflow { .. } => "accumulator overflow",
            Error::Input => "bad input spec",
            Error::Image => "bad image size",
            Error::Lut => "bad output table",
            Error::Alignment => "model misaligned",
            Error::BufferTooSmall => "buffers too small",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Version { found } => write!(
                f,
                "model format version {found}, this firmware reads version {FORMAT_VERSION}"
            ),
            e => f.write_str(e.as_str()),
        }
    }
}

impl core::error::Error for Error {}

/// Weight precision of one layer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightKind {
    Int8,
    /// Offset-binary nibbles (`w + 8`), two per byte.
    Int4,
}

/// How a layer stores its outputs (and so how the next layer reads them).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    U8,
    I8,
}

impl Storage {
    /// The range of values this storage holds.
    pub const fn range(self) -> (i32, i32) {
        match self {
            Storage::U8 => (0, 255),
            Storage::I8 => (-128, 127),
        }
    }
}

/// The fixed part after magic and version.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Length of the noise vector.
    pub latent: u16,
    /// Number of classes of a conditional model; 0 for an unconditional one.
    pub classes: u8,
    /// The int8 value of the chosen one-hot entry (see the module doc).
    pub one_hot_level: i8,
    /// Q31 multiplier from Q12 noise to the int8 input.
    pub noise_multiplier: i32,
    /// Power-of-two exponent of that requantization.
    pub noise_shift: i8,
    /// Image width and height; `width · height` is the last layer's output count.
    pub width: u8,
    pub height: u8,
    /// Number of [`Dense`] records that follow.
    pub layers: u8,
}

/// One fully connected layer; the byte slices borrow the blob (weights stay in flash).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dense<'a> {
    pub inputs: u16,
    pub outputs: u16,
    pub kind: WeightKind,
    pub output: Storage,
    pub output_offset: i16,
    pub clamp_min: i16,
    pub clamp_max: i16,
    /// 0–3 zero bytes that put `weights` on a 4-byte boundary of the blob; [`write`] sets it.
    pub pad: &'a [u8],
    pub weights: &'a [u8],
    pub bias: &'a [u8],
    pub multiplier: &'a [u8],
    pub shift: &'a [u8],
}

/// Rows after padding the output count up to a whole number of blocks.
pub const fn padded_rows(outputs: usize) -> usize {
    outputs.div_ceil(BLOCK) * BLOCK
}

/// Bytes of weights a layer of this shape and kind holds.
pub const fn weight_bytes(inputs: usize, outputs: usize, kind: WeightKind) -> usize {
    match kind {
        WeightKind::Int8 => padded_rows(outputs) * inputs,
        WeightKind::Int4 => padded_rows(outputs) * inputs / 2,
    }
}

impl Dense<'_> {
    /// Weight `(o, i)`; `o < outputs` and `i < inputs` are the caller's to respect.
    pub fn weight(&self, o: usize, i: usize) -> i32 {
        let base = (o / BLOCK) * self.inputs as usize + i;
        match self.kind {
            WeightKind::Int8 => self.weights[base * BLOCK + o % BLOCK] as i8 as i32,
            WeightKind::Int4 => {
                let byte = self.weights[base * (BLOCK / 2) + (o % BLOCK) / 2];
                let nibble = if o.is_multiple_of(2) {
                    byte & 0x0F
                } else {
                    byte >> 4
                };
                nibble as i32 - 8
            }
        }
    }

    /// Bias, multiplier and shift of channel `o < outputs`.
    pub fn channel(&self, o: usize) -> (i32, i32, i8) {
        let word =
            |s: &[u8]| i32::from_le_bytes([s[4 * o], s[4 * o + 1], s[4 * o + 2], s[4 * o + 3]]);
        (word(self.bias), word(self.multiplier), self.shift[o] as i8)
    }

    /// Multiply-accumulates of one pass through this layer.
    pub fn macs(&self) -> u32 {
        self.inputs as u32 * self.outputs as u32
    }
}

/// A decoded and fully validated model.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    pub header: Header,
    layers: heapless::Vec<Dense<'a>, MAX_LAYERS>,
    lut: &'a [u8; 256],
}

fn valid_pad(pad: &[u8]) -> bool {
    pad.len() <= 3 && pad.iter().all(|&b| b == 0)
}

fn requant_ok(multiplier: i32, shift: i8) -> bool {
    let t = 31 - shift as i32;
    multiplier >= 0 && (1..=62).contains(&t)
}

impl<'a> Model<'a> {
    /// Decodes and validates a blob; on success every later use is within bounds.
    pub fn from_bytes(blob: &'a [u8]) -> Result<Self, Error> {
        if blob.len() < PREFIX + 4 {
            return Err(Error::TooShort);
        }
        let (prefix, rest) = blob.split_at(PREFIX);
        if prefix[..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        let found = u16::from_le_bytes([prefix[4], prefix[5]]);
        if found != FORMAT_VERSION {
            return Err(Error::Version { found });
        }
        let (body, crc) = rest.split_at(rest.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32(&blob[..blob.len() - 4]) != stored {
            return Err(Error::BadCrc);
        }
        let (header, mut body) =
            postcard::take_from_bytes::<Header>(body).map_err(|_| Error::Malformed)?;
        let count = header.layers as usize;
        if count == 0 || count > MAX_LAYERS {
            return Err(Error::LayerCount);
        }
        let mut layers = heapless::Vec::new();
        for _ in 0..count {
            let (layer, rest) =
                postcard::take_from_bytes::<Dense<'a>>(body).map_err(|_| Error::Malformed)?;
            layers.push(layer).map_err(|_| Error::LayerCount)?;
            body = rest;
        }
        let (lut, body) =
            postcard::take_from_bytes::<&'a [u8]>(body).map_err(|_| Error::Malformed)?;
        let (pad, rest) =
            postcard::take_from_bytes::<&'a [u8]>(body).map_err(|_| Error::Malformed)?;
        if !rest.is_empty() {
            return Err(Error::TrailingBytes);
        }
        let offset = |s: &[u8]| s.as_ptr().addr().wrapping_sub(blob.as_ptr().addr());
        let aligned = blob.len().is_multiple_of(4)
            && valid_pad(pad)
            && layers
                .iter()
                .all(|l| valid_pad(l.pad) && offset(l.weights).is_multiple_of(4));
        if !aligned {
            return Err(Error::Alignment);
        }
        let lut: &'a [u8; 256] = lut.try_into().map_err(|_| Error::Lut)?;
        let model = Model {
            header,
            layers,
            lut,
        };
        model.validate()?;
        Ok(model)
    }

    fn validate(&self) -> Result<(), Error> {
        let h = &self.header;
        let latent = h.latent as usize;
        if latent == 0
            || latent > MAX_LATENT
            || h.classes as usize > MAX_CLASSES
            || (h.classes > 0 && h.one_hot_level <= 0)
            || !requant_ok(h.noise_multiplier, h.noise_shift)
        {
            return Err(Error::Input);
        }
        let (w, ht) = (h.width as usize, h.height as usize);
        if w == 0 || ht == 0 || w > MAX_SIDE || ht > MAX_SIDE {
            return Err(Error::Image);
        }
        let mut width = self.input_len();
        // The first layer reads int8 noise clamped to ±127 and a one-hot level ≤ 127.
        let mut max_in: u64 = 127;
        for (index, layer) in self.layers.iter().enumerate() {
            let (inputs, outputs) = (layer.inputs as usize, layer.outputs as usize);
            if inputs != width || inputs == 0 || outputs == 0 || outputs > MAX_WIDTH {
                return Err(Error::Shape);
            }
            if layer.weights.len() != weight_bytes(inputs, outputs, layer.kind)
                || layer.bias.len() != 4 * outputs
                || layer.multiplier.len() != 4 * outputs
                || layer.shift.len() != outputs
            {
                return Err(Error::Length);
            }
            let (lo, hi) = layer.output.range();
            let (min, max) = (layer.clamp_min as i32, layer.clamp_max as i32);
            if min > max || min < lo || max > hi {
                return Err(Error::Clamp);
            }
            let mut sums = [0u64; BLOCK];
            for o in 0..outputs {
                let (bias, m, s) = layer.channel(o);
                if !requant_ok(m, s) {
                    return Err(Error::Requant);
                }
                if o.is_multiple_of(BLOCK) {
                    for (r, sum) in sums.iter_mut().enumerate() {
                        *sum = if o + r < outputs {
                            (0..inputs)
                                .map(|i| layer.weight(o + r, i).unsigned_abs() as u64)
                                .sum()
                        } else {
                            0
                        };
                    }
                }
                if bias.unsigned_abs() as u64 + sums[o % BLOCK] * max_in >= 1 << 31 {
                    return Err(Error::Overflow {
                        layer: index as u8,
                        channel: o as u16,
                    });
                }
            }
            max_in = min.unsigned_abs().max(max.unsigned_abs()) as u64;
            width = outputs;
        }
        if width != w * ht {
            return Err(Error::Image);
        }
        Ok(())
    }

    /// The layers, input to output.
    pub fn layers(&self) -> &[Dense<'a>] {
        &self.layers
    }

    /// Length of the engine's input: latent noise then the one-hot.
    pub fn input_len(&self) -> usize {
        self.header.latent as usize + self.header.classes as usize
    }

    /// Pixels of one generated image.
    pub fn pixels(&self) -> usize {
        self.header.width as usize * self.header.height as usize
    }

    /// The widest activation vector (input included): each ping-pong buffer needs this many bytes.
    pub fn max_width(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.outputs as usize)
            .fold(self.input_len(), usize::max)
    }

    /// Dense multiply-accumulates of one generated image (Σ inputs × outputs).
    pub fn macs(&self) -> u32 {
        self.layers.iter().map(Dense::macs).sum()
    }

    /// Grey level 0–255 of one stored output byte.
    pub fn grey(&self, stored: u8) -> u8 {
        self.lut[stored as usize]
    }
}

/// Bytes [`write`] needs at most for these parts.
pub fn encoded_len_bound(layers: &[Dense<'_>], lut: &[u8]) -> usize {
    // Postcard's varints: a header under 32 bytes, a layer's fixed fields and length prefixes
    // under 40, a pad under 4.
    let layer =
        |l: &Dense<'_>| 44 + l.weights.len() + l.bias.len() + l.multiplier.len() + l.shift.len();
    PREFIX + 32 + layers.iter().map(layer).sum::<usize>() + 8 + lut.len() + 4 + 4
}

/// Encodes a blob into `out` and returns its length: the one writer of this format, which sets
/// every pad (each layer's `pad` is ignored) and the CRC. It checks nothing else, so that tests
/// can write faulty blobs too; [`Model::from_bytes`] says whether the result is a valid model.
pub fn write(
    header: &Header,
    layers: &[Dense<'_>],
    lut: &[u8],
    out: &mut [u8],
) -> Result<usize, Error> {
    const ZEROS: [u8; 3] = [0; 3];
    fn put<T: Serialize + ?Sized>(value: &T, out: &mut [u8], at: usize) -> Result<usize, Error> {
        let rest = out.get_mut(at..).ok_or(Error::BufferTooSmall)?;
        let written = postcard::to_slice(value, rest).map_err(|_| Error::BufferTooSmall)?;
        Ok(at + written.len())
    }
    let head = out.get_mut(..PREFIX).ok_or(Error::BufferTooSmall)?;
    head[..4].copy_from_slice(&MAGIC);
    head[4..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let mut n = put(header, out, PREFIX)?;
    for layer in layers {
        let mut layer = Dense { pad: &[], ..*layer };
        let end = put(&layer, out, n)?;
        // Where the weights landed, read back from the encoding itself.
        let (decoded, _) =
            postcard::take_from_bytes::<Dense<'_>>(&out[n..end]).map_err(|_| Error::Malformed)?;
        let at = decoded.weights.as_ptr().addr() - out.as_ptr().addr();
        let pad = (4 - at % 4) % 4;
        layer.pad = &ZEROS[..pad];
        n = put(&layer, out, n)?;
    }
    n = put(lut, out, n)?;
    // The pad's one-byte length, its bytes and the CRC end on a 4-byte boundary.
    let pad = (4 - (n + 1 + 4) % 4) % 4;
    n = put(&ZEROS[..pad], out, n)?;
    let crc = crc32(&out[..n]);
    out.get_mut(n..n + 4)
        .ok_or(Error::BufferTooSmall)?
        .copy_from_slice(&crc.to_le_bytes());
    Ok(n + 4)
}
