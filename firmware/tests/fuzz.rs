//! The blob under hostile input: a million mutated blobs (truncations, bit flips, byte edits,
//! header and layer fields at and past their limits, slice lengths that swallow or leave the
//! next part's bytes, layers dropped, doubled and swapped, splices of two models), most with
//! the CRC recomputed so that only validation stands between the mutation and the engine.
//! Every one must be refused with an error or, if accepted, run in every kernel within its
//! buffers, equal to the reference kernel, without a panic and quickly.
//!
//! Each case is drawn from its own index, so a failure names the case and
//! `MCUGAN_FUZZ_CASE=<n> cargo test -p firmware --test fuzz` replays it alone.
//! `MCUGAN_FUZZ_CASES` changes the count (default 1,000,000).
//!
//! The wire format lays every slice out in sequence behind its own length, so slices cannot
//! overlap; the nearest hostile case, a length that claims the next part's bytes, is here.

mod common;

use firmware::crc::crc32;
use firmware::engine::{Kernel, forward};
use firmware::format::{self, Dense, Error, Header, MAX_LAYERS, MAX_WIDTH, Model, WeightKind};
use firmware::noise::SplitMix64;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

const DEFAULT_CASES: u64 = 1_000_000;
/// Far above any case's time (microseconds): only an endless loop comes near it.
const CASE_LIMIT: Duration = Duration::from_secs(2);
const KERNELS: [Kernel; 5] = [
    Kernel::Reference,
    Kernel::Fast,
    Kernel::CortexM3,
    Kernel::CortexM0Plus,
    Kernel::Portable,
];

/// Valid blobs of varied shape to mutate: conditional and not, int8 and int4, signed and
/// unsigned hidden layers, the most layers and (last) the widest layer the format allows.
fn corpus() -> Vec<Vec<u8>> {
    use WeightKind::{Int4, Int8};
    let specs = [
        common::model(1, 12, 10, &[24, 9, 16], &[Int8, Int4], false),
        common::model(2, 5, 0, &[16, 4], &[Int4], false),
        common::model(3, 8, 10, &[40, 32, 36], &[Int4, Int8], true),
        common::model(4, 1, 1, &[8; MAX_LAYERS], &[Int8], false),
        common::model(6, 16, 10, &[64, 49], &[Int8], false),
        common::model(5, 3, 0, &[MAX_WIDTH, 4], &[Int4, Int8], false),
    ];
    specs
        .iter()
        .map(|s| s.to_bytes().expect("a valid corpus model"))
        .collect()
}

fn reseal(blob: &mut [u8]) {
    if blob.len() < 4 {
        return;
    }
    let n = blob.len() - 4;
    let crc = crc32(&blob[..n]);
    blob[n..].copy_from_slice(&crc.to_le_bytes());
}

fn below(rng: &mut SplitMix64, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

/// A value at or past a limit more often than a uniform draw would give one.
fn edge(rng: &mut SplitMix64, limit: i64) -> i64 {
    let picks = [
        0,
        1,
        -1,
        limit - 1,
        limit,
        limit + 1,
        i64::from(i8::MAX),
        i64::from(i8::MIN),
        i64::from(u8::MAX),
        i64::from(u8::MAX) + 1,
        i64::from(i16::MAX),
        i64::from(i16::MIN),
        i64::from(u16::MAX),
        i64::from(i32::MAX),
        i64::from(i32::MIN),
    ];
    if rng.next_u32().is_multiple_of(4) {
        (rng.next_u64() as i64) >> below(rng, 63)
    } else {
        picks[below(rng, picks.len())]
    }
}

/// The parts of a valid blob, as the decoder sees them, and where the body ends.
struct Parts<'a> {
    header: Header,
    layers: Vec<Dense<'a>>,
    lut: &'a [u8],
}

fn parts(blob: &[u8]) -> Parts<'_> {
    let body = &blob[6..blob.len() - 4];
    let (header, mut rest) = postcard::take_from_bytes::<Header>(body).expect("corpus header");
    let mut layers = Vec::new();
    for _ in 0..header.layers {
        let (layer, r) = postcard::take_from_bytes::<Dense>(rest).expect("corpus layer");
        layers.push(layer);
        rest = r;
    }
    let (lut, _) = postcard::take_from_bytes::<&[u8]>(rest).expect("corpus lut");
    Parts {
        header,
        layers,
        lut,
    }
}

/// Encodes parts back into a sealed blob with the format's own writer, which places the pads.
fn encode(header: &Header, layers: &[Dense<'_>], lut: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; format::encoded_len_bound(layers, lut)];
    let len = format::write(header, layers, lut, &mut out).expect("the bound holds the blob");
    out.truncate(len);
    out
}

/// Bytes for a slice of `len`: the real ones where they reach, then a pattern.
fn stretched<'s>(src: &[u8], len: usize, scratch: &'s mut Vec<u8>) -> &'s [u8] {
    scratch.clear();
    scratch.extend((0..len).map(|i| src.get(i).copied().unwrap_or(i as u8 ^ 0x5A)));
    scratch
}

/// One mutant of `base`, drawn from `rng`; returns it and whether it must be refused.
fn mutate(base: &[u8], other: &[u8], rng: &mut SplitMix64) -> (Vec<u8>, bool) {
    let mut blob = base.to_vec();
    let strategy = below(rng, 10);
    match strategy {
        // Truncated as a cut-off transfer leaves it.
        0 => {
            blob.truncate(below(rng, base.len()));
            (blob, true)
        }
        // Truncated, then a CRC written over the new end: only the decoder can tell.
        1 => {
            blob.truncate(6 + below(rng, base.len() - 10));
            blob.extend_from_slice(&[0; 4]);
            reseal(&mut blob);
            (blob, true)
        }
        // One or two flipped bits (two different ones), which CRC-32 always detects.
        2 => {
            let bits = blob.len() * 8;
            let first = below(rng, bits);
            blob[first / 8] ^= 1 << (first % 8);
            if rng.next_u32().is_multiple_of(2) {
                let second = (first + 1 + below(rng, bits - 1)) % bits;
                blob[second / 8] ^= 1 << (second % 8);
            }
            (blob, true)
        }
        // Bytes overwritten with random or limit values, resealed.
        3 => {
            let n = blob.len() - 4;
            for _ in 0..1 + below(rng, 8) {
                let at = if rng.next_u32().is_multiple_of(2) {
                    below(rng, 64.min(n))
                } else {
                    below(rng, n)
                };
                blob[at] = [0, 1, 0x7F, 0x80, 0xFF, rng.next_u32() as u8][below(rng, 6)];
            }
            reseal(&mut blob);
            (blob, false)
        }
        // Bytes inserted or deleted inside the body, resealed.
        4 => {
            let n = blob.len() - 4;
            let at = 6 + below(rng, n - 6);
            if rng.next_u32().is_multiple_of(2) {
                let k = 1 + below(rng, 16.min(n - at));
                blob.drain(at..at + k);
            } else {
                let k = 1 + below(rng, 16);
                for _ in 0..k {
                    blob.insert(at, rng.next_u32() as u8);
                }
            }
            reseal(&mut blob);
            (blob, false)
        }
        // Two models spliced at random points, resealed.
        5 => {
            let cut_a = 6 + below(rng, base.len() - 10);
            let cut_b = 6 + below(rng, other.len() - 10);
            let mut spliced = base[..cut_a].to_vec();
            spliced.extend_from_slice(&other[cut_b..]);
            reseal(&mut spliced);
            (spliced, false)
        }
        // A header field at or past its limit.
        6 => {
            let p = parts(base);
            let mut h = p.header;
            match below(rng, 8) {
                0 => h.latent = edge(rng, 128) as u16,
                1 => h.classes = edge(rng, 10) as u8,
                2 => h.one_hot_level = edge(rng, 127) as i8,
                3 => h.noise_multiplier = edge(rng, i64::from(i32::MAX)) as i32,
                4 => h.noise_shift = edge(rng, 30) as i8,
                5 => h.width = edge(rng, 32) as u8,
                6 => h.height = edge(rng, 32) as u8,
                _ => h.layers = edge(rng, MAX_LAYERS as i64) as u8,
            }
            (encode(&h, &p.layers, p.lut), false)
        }
        // A layer field at or past its limit, or a slice of another length.
        7 => {
            let p = parts(base);
            let mut layers = p.layers.clone();
            let k = below(rng, layers.len());
            let mut scratch = Vec::new();
            let l = &mut layers[k];
            match below(rng, 7) {
                0 => l.inputs = edge(rng, l.inputs as i64) as u16,
                1 => l.outputs = edge(rng, MAX_WIDTH as i64) as u16,
                2 => l.output_offset = edge(rng, 255) as i16,
                3 => l.clamp_min = edge(rng, 0) as i16,
                4 => l.clamp_max = edge(rng, 255) as i16,
                5 => {
                    l.kind = match l.kind {
                        WeightKind::Int8 => WeightKind::Int4,
                        WeightKind::Int4 => WeightKind::Int8,
                    }
                }
                _ => {
                    let slices = [l.weights, l.bias, l.multiplier, l.shift];
                    let which = below(rng, 4);
                    let len = (slices[which].len() as i64 + [-8, -1, 1, 4, 8][below(rng, 5)]).max(0)
                        as usize;
                    let s = stretched(slices[which], len, &mut scratch);
                    match which {
                        0 => l.weights = s,
                        1 => l.bias = s,
                        2 => l.multiplier = s,
                        _ => l.shift = s,
                    }
                    return (encode(&p.header, &layers, p.lut), false);
                }
            }
            (encode(&p.header, &layers, p.lut), false)
        }
        // Layers dropped, doubled or swapped, with or without the header's count following.
        8 => {
            let p = parts(base);
            let mut layers = p.layers.clone();
            let k = below(rng, layers.len());
            match below(rng, 3) {
                0 => {
                    layers.remove(k);
                }
                1 => layers.insert(k, layers[k]),
                _ => {
                    let j = below(rng, layers.len());
                    layers.swap(k, j);
                }
            }
            let mut h = p.header;
            if rng.next_u32().is_multiple_of(2) {
                h.layers = layers.len() as u8;
            }
            (encode(&h, &layers, p.lut), false)
        }
        // A length prefix in place made to claim more or fewer bytes than its slice holds.
        _ => {
            let p = parts(base);
            let body_start = blob.len() - 4 - 2 - p.lut.len();
            // The grey table's length byte(s) sit just before it; the layer slices' are inside.
            let at = if rng.next_u32().is_multiple_of(3) {
                body_start
            } else {
                6 + below(rng, body_start - 6)
            };
            blob[at] = blob[at].wrapping_add([1, 2, 8, 0x7F, 0xFF][below(rng, 5)]);
            reseal(&mut blob);
            (blob, false)
        }
    }
}

/// Decodes and, when accepted, runs every kernel within exact buffers, each against the
/// reference; a short buffer must be refused, not overrun.
fn check(blob: &[u8], must_refuse: bool) -> Result<bool, String> {
    let model = match Model::from_bytes(blob) {
        Ok(_) if must_refuse => return Err("a damaged blob was accepted".into()),
        Ok(model) => model,
        Err(_) => return Ok(false),
    };
    let width = model.max_width();
    let (mut a, mut b) = (vec![0u8; width], vec![0u8; width]);
    let mut want = vec![0u8; model.pixels()];
    let mut got = vec![0u8; model.pixels()];
    let mut rng = SplitMix64::new(blob.len() as u64);
    let input: Vec<i8> = (0..model.input_len())
        .map(|_| ((rng.next_u32() % 255) as i32 - 127) as i8)
        .collect();
    forward(&model, Kernel::Reference, &input, &mut a, &mut b, &mut want)
        .map_err(|e| format!("the reference refused an accepted model: {e:?}"))?;
    for kernel in &KERNELS[1..] {
        forward(&model, *kernel, &input, &mut a, &mut b, &mut got)
            .map_err(|e| format!("{kernel:?} refused an accepted model: {e:?}"))?;
        if got != want {
            return Err(format!("{kernel:?} differs from the reference"));
        }
    }
    let short = forward(
        &model,
        Kernel::Fast,
        &input,
        &mut a[..width - 1],
        &mut b,
        &mut got,
    );
    if short != Err(Error::BufferTooSmall) {
        return Err(format!("a short buffer gave {short:?}"));
    }
    Ok(true)
}

fn run_case(corpus: &[Vec<u8>], case: u64) -> Result<bool, String> {
    let mut rng = SplitMix64::new(case ^ 0x6d63_7567_616e);
    // The widest model (last) is twenty times the others' bytes: one case in 64.
    let pick = |rng: &mut SplitMix64| {
        if rng.next_u32().is_multiple_of(64) {
            corpus.len() - 1
        } else {
            below(rng, corpus.len() - 1)
        }
    };
    let base = &corpus[pick(&mut rng)];
    let other = &corpus[pick(&mut rng)];
    let (blob, must_refuse) = mutate(base, other, &mut rng);
    check(&blob, must_refuse)
}

#[test]
fn a_million_mutated_blobs_are_refused_or_run_safely() {
    let corpus = corpus();
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.parse::<u64>().expect(name))
    };
    let cases: Vec<u64> = match env("MCUGAN_FUZZ_CASE") {
        Some(case) => vec![case],
        None => (0..env("MCUGAN_FUZZ_CASES").unwrap_or(DEFAULT_CASES)).collect(),
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = cases.len().div_ceil(threads);
    let started = Instant::now();
    let accepted: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = cases
            .chunks(chunk)
            .map(|part| {
                let corpus = &corpus;
                scope.spawn(move || {
                    let mut accepted = 0;
                    for &case in part {
                        let t = Instant::now();
                        let outcome = catch_unwind(AssertUnwindSafe(|| run_case(corpus, case)));
                        let fail = |why: String| {
                            panic!("case {case}: {why} (replay: MCUGAN_FUZZ_CASE={case})")
                        };
                        match outcome {
                            Ok(Ok(ran)) => accepted += u64::from(ran),
                            Ok(Err(why)) => fail(why),
                            Err(_) => fail("panicked".into()),
                        }
                        if t.elapsed() > CASE_LIMIT {
                            fail(format!("took {:?}", t.elapsed()));
                        }
                    }
                    accepted
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a worker failed"))
            .sum()
    });
    println!(
        "{} mutated blobs in {:.1} s on {threads} threads: {accepted} accepted and run, the rest refused",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    // The mutations must reach the engine, not only the CRC and the first field checks.
    if cases.len() as u64 == DEFAULT_CASES {
        assert!(
            accepted > DEFAULT_CASES / 100,
            "only {accepted} mutants passed validation"
        );
    }
}
