//! The block kernels: each computes one block of [`BLOCK`] output rows (see the format's weight
//! layout), shaped for one kind of core. All of them compile on every target, so the host tests
//! check each against the reference kernel; [`Kernel::Fast`](super::Kernel::Fast) picks the
//! one for the core being compiled for.

use super::{Activation, finish};
use crate::format::{BLOCK, Dense, WeightKind};

/// Which block kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Core {
    CortexM3,
    CortexM0Plus,
    Portable,
}

impl Core {
    /// The kernel for the core this crate is compiled for (the firmware's build script sets
    /// `mcugan_armv6m` for `thumbv6m-*`).
    pub(super) const NATIVE: Core = if cfg!(mcugan_armv6m) {
        Core::CortexM0Plus
    } else if cfg!(target_arch = "arm") {
        Core::CortexM3
    } else {
        Core::Portable
    };
}

/// Blocks of eight rows, activation-major.
pub(super) fn dense_blocks<A: Activation>(
    core: Core,
    layer: &Dense<'_>,
    input: &[u8],
    out: &mut [u8],
) {
    let inputs = layer.inputs as usize;
    let outputs = layer.outputs as usize;
    let (Some(input), Some(out)) = (input.get(..inputs), out.get_mut(..outputs)) else {
        return;
    };
    match layer.kind {
        WeightKind::Int8 => {
            let blocks = layer.weights.chunks_exact(BLOCK * inputs);
            for (b, (block, rows)) in blocks.zip(out.chunks_mut(BLOCK)).enumerate() {
                let columns = block.as_chunks::<BLOCK>().0;
                let acc = match core {
                    Core::CortexM3 => cortex_m3_int8::<A>(input, columns),
                    Core::CortexM0Plus => cortex_m0plus_int8::<A>(input, columns),
                    Core::Portable => portable_int8::<A>(input, columns),
                };
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
#[inline(never)]
fn cortex_m3_int8<A: Activation>(input: &[u8], columns: &[[u8; BLOCK]]) -> [i32; BLOCK] {
    let [a0, a1, a2, a3] = cortex_m3_rows4::<A, 0>(input, columns);
    let [a4, a5, a6, a7] = cortex_m3_rows4::<A, 4>(input, columns);
    [a0, a1, a2, a3, a4, a5, a6, a7]
}

/// Rows `R..R + 4` of a block. No test for zero activations: three in four are non-zero in
/// the default model, and the branch cost more than it saved (4.64 instructions per MAC).
#[inline(never)]
fn cortex_m3_rows4<A: Activation, const R: usize>(
    input: &[u8],
    columns: &[[u8; BLOCK]],
) -> [i32; 4] {
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

/// The hot loop on the Cortex-M0+ (Thumb-1: no multiply-accumulate, eight low registers, signed
/// byte loads only with a register offset): one pass of eight rows, so that the activation is
/// loaded and tested once per eight rows and a zero (a quarter of the ReLU outputs) skips eight
/// MACs. LLVM keeps two accumulators in registers and spills six (load, add, store): by the
/// disassembly 58 instructions per non-zero column of eight rows and 8 per zero column, about
/// 5.7 per MAC at a quarter zeros, against 6.25 for the Cortex-M3 kernel's passes of four.
#[inline(never)]
fn cortex_m0plus_int8<A: Activation>(input: &[u8], columns: &[[u8; BLOCK]]) -> [i32; BLOCK] {
    let mut acc = [0i32; BLOCK];
    for (&x, w) in input.iter().zip(columns) {
        let x = A::value(x);
        if x == 0 {
            continue;
        }
        for (a, &w) in acc.iter_mut().zip(w) {
            *a = a.wrapping_add((w as i8 as i32).wrapping_mul(x));
        }
    }
    acc
}

/// The hot loop on a host: one block of eight rows over all columns, skipping zero
/// activations, the eight accumulators as plain locals.
#[inline(never)]
fn portable_int8<A: Activation>(input: &[u8], columns: &[[u8; BLOCK]]) -> [i32; BLOCK] {
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

/// Int4 on every core: one word load brings the column's eight nibbles.
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
