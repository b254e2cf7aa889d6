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
        // The format aligns the weights within the blob, and the boards align the blob: there a
        // column is one aligned word. A host blob in an unaligned buffer takes byte loads.
        WeightKind::Int4 => match bytemuck::try_cast_slice::<u8, u32>(layer.weights) {
            Ok(words) => int4_blocks::<A, u32>(layer, words, input, out),
            Err(_) => {
                let columns = layer.weights.as_chunks::<{ BLOCK / 2 }>().0;
                int4_blocks::<A, [u8; BLOCK / 2]>(layer, columns, input, out)
            }
        },
    }
}

/// One column's eight int4 weights: a little-endian word, loaded whole or byte by byte.
trait Column {
    fn word(&self) -> u32;
}

impl Column for u32 {
    #[inline(always)]
    fn word(&self) -> u32 {
        u32::from_le(*self)
    }
}

impl Column for [u8; BLOCK / 2] {
    #[inline(always)]
    fn word(&self) -> u32 {
        u32::from_le_bytes(*self)
    }
}

/// An int4 layer's blocks; `columns` holds one word per column, block after block.
fn int4_blocks<A: Activation, C: Column>(
    layer: &Dense<'_>,
    columns: &[C],
    input: &[u8],
    out: &mut [u8],
) {
    // Unsigned inputs take the lane kernel, which drains where `Drains` says.
    let drains = (!A::SIGNED).then(|| Drains::new(input));
    // `8 · Σx` undoes the nibbles' offset; once per layer, not per row.
    let offset = input
        .iter()
        .fold(0i32, |s, &x| s.wrapping_add(A::value(x)))
        .wrapping_mul(8);
    let blocks = columns.chunks_exact(input.len().max(1));
    for (b, (columns, rows)) in blocks.zip(out.chunks_mut(BLOCK)).enumerate() {
        let acc = match &drains {
            Some(drains) => lanes_int4(input, columns, drains, offset),
            None => block_int4::<A, C>(input, columns, offset),
        };
        finish(layer, b, &acc, rows);
    }
}

/// The hot loop on the Cortex-M3: one block of eight rows in two passes of four. Eight
/// accumulators with the loop's pointers and temporaries need one register more than the
/// M3's 13 free ones, and the spills cost more than a second pass over the activations
/// (measured in QEMU on the all-int8 default model: 3.90 instructions per MAC, against 4.09 for
/// one pass of eight with zero skipping and 5.00 without; testing for zero activations in
/// these passes costs more than it saves, measured again with the int4 model's int8 layers).
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

/// Int4 with signed activations (a first layer, which reads the noise): nibble by nibble.
#[inline(never)]
fn block_int4<A: Activation, C: Column>(input: &[u8], columns: &[C], offset: i32) -> [i32; BLOCK] {
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    let (mut a4, mut a5, mut a6, mut a7) = (0i32, 0i32, 0i32, 0i32);
    for (&x, w) in input.iter().zip(columns) {
        let x = A::value(x);
        if x == 0 {
            continue;
        }
        let word = w.word();
        let m = |r: u32| (((word >> (4 * r)) & 0xF) as i32).wrapping_mul(x);
        a0 = a0.wrapping_add(m(0));
        a1 = a1.wrapping_add(m(1));
        a2 = a2.wrapping_add(m(2));
        a3 = a3.wrapping_add(m(3));
        a4 = a4.wrapping_add(m(4));
        a5 = a5.wrapping_add(m(5));
        a6 = a6.wrapping_add(m(6));
        a7 = a7.wrapping_add(m(7));
    }
    [a0, a1, a2, a3, a4, a5, a6, a7].map(|a| a.wrapping_sub(offset))
}

/// Nibbles rows `k` and `k + 4` of a column word land in the low and high 16-bit lane.
const LANES: u32 = 0x000F_000F;
/// Columns the kernel writes out in one unrolled run.
const RUN: usize = 16;

/// Most runs of [`RUN`] columns a layer has.
const MAX_RUNS: usize = crate::format::MAX_WIDTH / RUN;
/// A lane holds at most `15 · Σx` over the columns since its last drain (15 is the largest
/// nibble); it must stay below 2¹⁶.
const LANE_BUDGET: u32 = u16::MAX as u32 / 15;

/// Where the int4 kernel must drain its lanes, for one layer's input: the whole runs of
/// [`RUN`] columns cut into segments, taken greedily while their activations sum to at most
/// [`LANE_BUDGET`], so that a lane never carries into the next, whatever the weights. ReLU
/// outputs are small and sparse: a 192-wide layer drains once or twice, not every 16 columns.
pub(super) struct Drains {
    /// Whether the lanes are drained after each run (the last run of a segment).
    after: [bool; MAX_RUNS],
    /// Whether they are drained before the columns after the last whole run too, which would
    /// otherwise overfill the last segment's lanes.
    before_rest: bool,
}

impl Drains {
    pub(super) fn new(input: &[u8]) -> Self {
        let mut after = [false; MAX_RUNS];
        let mut total = 0;
        let (runs, rest) = input.as_chunks::<RUN>();
        // Each run alone sums to at most 16 · 255 = 4 080, within the budget.
        for (r, run) in runs.iter().enumerate() {
            let sum = run.iter().map(|&x| x as u32).sum::<u32>();
            if total + sum > LANE_BUDGET
                && let Some(previous) = r.checked_sub(1).and_then(|p| after.get_mut(p))
            {
                *previous = true;
                total = 0;
            }
            total += sum;
        }
        Drains {
            after,
            before_rest: total + rest.iter().map(|&x| x as u32).sum::<u32>() > LANE_BUDGET,
        }
    }
}

/// Int4 × unsigned activations on every core: two rows per 32-bit multiply. `(w >> 4k) & LANES`
/// puts the offset nibbles of rows `k` and `k + 4` in two 16-bit lanes (one `AND` with a shifted
/// operand on Thumb-2), and one `MLA` by the activation adds both products; where [`Drains`]
/// says, the lanes are drained into 32-bit sums before they could carry into each other. On the
/// Cortex-M3, 12 instructions per non-zero column of eight rows (against 18 for int8; one of them
/// LLVM's recomputing the column's address, for want of a register) and 2 per zero column,
/// which ReLU leaves often (44% of the columns in the default model).
#[inline(never)]
fn lanes_int4<C: Column>(
    input: &[u8],
    columns: &[C],
    drains: &Drains,
    offset: i32,
) -> [i32; BLOCK] {
    // Per lane pair: the sum of the drained words and the sum of their high lanes.
    let mut sums = [[0u32; 2]; 4];
    let mut drain = |l: &mut [u32; 4]| {
        for (s, l) in sums.iter_mut().zip(l.iter_mut()) {
            s[0] = s[0].wrapping_add(*l);
            s[1] = s[1].wrapping_add(*l >> 16);
            *l = 0;
        }
    };
    let mut l = [0u32; 4];
    let (xs, x_rest) = input.as_chunks::<RUN>();
    let (ws, w_rest) = columns.as_chunks::<RUN>();
    // One loop over all the runs: on the Cortex-M0+ it measured faster than a loop per segment
    // in a function of its own (4.68 against 4.98 cycles per MAC with the LM3S6965 model).
    for ((x, w), &after) in xs.iter().zip(ws).zip(&drains.after) {
        l = lanes_run(l, x, w);
        if after {
            drain(&mut l);
        }
    }
    if drains.before_rest {
        drain(&mut l);
    }
    for (&x, w) in x_rest.iter().zip(w_rest) {
        lanes_column(&mut l, x, w);
    }
    drain(&mut l);
    let mut acc = [0i32; BLOCK];
    for (k, [packed, high]) in sums.into_iter().enumerate() {
        // packed = Σ low + 2¹⁶ · Σ high (mod 2³²), so the low sum is what remains.
        let low = packed.wrapping_sub(high << 16);
        acc[k] = (low as i32).wrapping_sub(offset);
        acc[k + 4] = (high as i32).wrapping_sub(offset);
    }
    acc
}

/// One run of columns, written out: LLVM keeps each column's loads next to its multiplies
/// because the zero test splits them into blocks (unrolled without it, LLVM loads all the
/// columns first and spills them).
#[inline(always)]
fn lanes_run<C: Column>(mut lanes: [u32; 4], xs: &[u8; RUN], ws: &[C; RUN]) -> [u32; 4] {
    macro_rules! columns {
        ($($j:literal)*) => { $( lanes_column(&mut lanes, xs[$j], &ws[$j]); )* };
    }
    columns!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    lanes
}

#[inline(always)]
fn lanes_column<C: Column>(l: &mut [u32; 4], x: u8, w: &C) {
    let x = x as u32;
    if x == 0 {
        return;
    }
    let w = w.word();
    l[0] = l[0].wrapping_add((w & LANES).wrapping_mul(x));
    l[1] = l[1].wrapping_add(((w >> 4) & LANES).wrapping_mul(x));
    l[2] = l[2].wrapping_add(((w >> 8) & LANES).wrapping_mul(x));
    l[3] = l[3].wrapping_add(((w >> 12) & LANES).wrapping_mul(x));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::MAX_WIDTH;

    /// The largest sums the lanes can meet: every nibble 15 and every activation 255, over
    /// widths with and without columns after the last whole run, against a plain sum.
    #[test]
    fn the_lanes_never_carry_into_each_other() {
        for inputs in [1, 15, 16, 17, 31, 255, 256, 300, 303, 1024, 1039, MAX_WIDTH] {
            for x in [1u8, 127, 255] {
                let input = [x; MAX_WIDTH];
                let input = &input[..inputs];
                let columns = [u32::MAX; MAX_WIDTH];
                let columns = &columns[..inputs];
                let offset = 8 * x as i32 * inputs as i32;
                let acc = lanes_int4(input, columns, &Drains::new(input), offset);
                // Nibble 15 stands for 7.
                assert_eq!(
                    acc,
                    [7 * x as i32 * inputs as i32; BLOCK],
                    "{inputs} inputs of {x}"
                );
            }
        }
    }
}
