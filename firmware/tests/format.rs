//! The model blob: round trip through the builder, and refusal (never a panic) of damaged,
//! truncated, foreign or future blobs.

mod common;

use export::blob::BuildError;
use firmware::crc::crc32;
use firmware::engine::{Kernel, forward};
use firmware::format::{Error, FORMAT_VERSION, Model, Storage, WeightKind};
use proptest::prelude::*;

fn sample_blob() -> Vec<u8> {
    common::model(
        11,
        12,
        10,
        &[24, 9, 16],
        &[WeightKind::Int8, WeightKind::Int4],
        false,
    )
    .to_bytes()
    .expect("valid")
}

/// Rewrites the trailing CRC so that only the later checks can catch a change.
fn reseal(blob: &mut [u8]) {
    let n = blob.len() - 4;
    let crc = crc32(&blob[..n]);
    blob[n..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn round_trip_keeps_every_tensor() {
    let spec = common::model(
        4,
        20,
        10,
        &[17, 40, 9],
        &[WeightKind::Int4, WeightKind::Int8],
        false,
    );
    let blob = spec.to_bytes().unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    let h = model.header;
    assert_eq!(
        (h.latent, h.classes, h.one_hot_level, h.width, h.height),
        (20, 10, 32, 9, 1)
    );
    assert_eq!(
        (h.noise_multiplier, h.noise_shift),
        (spec.noise_multiplier, spec.noise_shift)
    );
    assert_eq!(model.layers().len(), 3);
    assert_eq!(model.max_width(), 40);
    for (layer, l) in model.layers().iter().zip(&spec.layers) {
        assert_eq!(
            (layer.inputs as usize, layer.outputs as usize),
            (l.inputs, l.outputs)
        );
        assert_eq!((layer.kind, layer.output), (l.kind, l.output));
        for o in 0..l.outputs {
            assert_eq!(layer.channel(o), (l.bias[o], l.multiplier[o], l.shift[o]));
            for i in 0..l.inputs {
                assert_eq!(layer.weight(o, i), l.weights[o * l.inputs + i] as i32);
            }
        }
    }
    for b in 0..=255u8 {
        assert_eq!(model.grey(b), spec.lut[b as usize]);
    }
}

#[test]
fn version_magic_and_crc_are_reported_as_such() {
    let good = sample_blob();
    let mut blob = good.clone();
    blob[4..6].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    reseal(&mut blob);
    let err = Model::from_bytes(&blob).unwrap_err();
    assert_eq!(
        err,
        Error::Version {
            found: FORMAT_VERSION + 1
        }
    );
    assert_eq!(err.as_str(), "model version differs");
    assert!(
        err.to_string().contains(&format!(
            "version {}, this firmware reads version {FORMAT_VERSION}",
            FORMAT_VERSION + 1
        )),
        "{err}"
    );

    let mut blob = good.clone();
    blob[0] = b'X';
    assert_eq!(Model::from_bytes(&blob).unwrap_err(), Error::BadMagic);

    let mut blob = good.clone();
    let mid = blob.len() / 2;
    blob[mid] ^= 0x10;
    assert_eq!(Model::from_bytes(&blob).unwrap_err(), Error::BadCrc);

    assert_eq!(Model::from_bytes(&good[..5]).unwrap_err(), Error::TooShort);
    let mut long = good.clone();
    long.insert(long.len() - 4, 0);
    reseal(&mut long);
    assert_eq!(Model::from_bytes(&long).unwrap_err(), Error::TrailingBytes);
}

#[test]
fn screen_texts_fit_the_screen() {
    let all = [
        Error::TooShort,
        Error::BadMagic,
        Error::Version { found: 9 },
        Error::BadCrc,
        Error::Malformed,
        Error::TrailingBytes,
        Error::LayerCount,
        Error::Shape,
        Error::Length,
        Error::Requant,
        Error::Clamp,
        Error::Overflow {
            layer: 7,
            channel: 2047,
        },
        Error::Input,
        Error::Image,
        Error::Lut,
        Error::BufferTooSmall,
    ];
    for e in all {
        assert!(e.as_str().len() <= 21, "{e:?}");
    }
}

#[test]
fn builder_refuses_what_the_firmware_would_refuse() {
    let base = common::model(5, 8, 0, &[16, 9], &[WeightKind::Int8], false);
    let mut spec = base.clone();
    spec.layers[0].bias[3] = i32::MAX - 10;
    assert_eq!(
        spec.to_bytes().unwrap_err(),
        BuildError::Rejected(Error::Overflow {
            layer: 0,
            channel: 3
        })
    );

    let mut spec = base.clone();
    spec.layers[1].kind = WeightKind::Int4;
    assert!(matches!(
        spec.to_bytes().unwrap_err(),
        BuildError::Tensor { layer: 1, .. }
    ));

    let mut spec = base.clone();
    spec.layers[0].shift[0] = 31;
    assert_eq!(
        spec.to_bytes().unwrap_err(),
        BuildError::Rejected(Error::Requant)
    );

    let mut spec = base.clone();
    spec.layers[0].clamp_max = 300;
    assert_eq!(
        spec.to_bytes().unwrap_err(),
        BuildError::Rejected(Error::Clamp)
    );

    let mut spec = base.clone();
    spec.layers[0].output = Storage::I8;
    spec.layers[0].clamp_max = 200;
    assert_eq!(
        spec.to_bytes().unwrap_err(),
        BuildError::Rejected(Error::Clamp)
    );

    let mut spec = base.clone();
    spec.width = 4;
    assert_eq!(
        spec.to_bytes().unwrap_err(),
        BuildError::Rejected(Error::Image)
    );

    let mut spec = base;
    spec.layers[1].weights.pop();
    assert!(matches!(
        spec.to_bytes().unwrap_err(),
        BuildError::Tensor { layer: 1, .. }
    ));
}

/// Whatever decodes must also run: the engine never panics on an accepted blob.
fn decode_and_run(blob: &[u8]) -> Result<(), Error> {
    let model = Model::from_bytes(blob)?;
    let w = model.max_width();
    let (mut a, mut b) = (vec![0u8; w], vec![0u8; w]);
    let mut out = vec![0u8; model.pixels()];
    let input = vec![-127i8; model.input_len()];
    forward(&model, Kernel::Fast, &input, &mut a, &mut b, &mut out)?;
    forward(&model, Kernel::Reference, &input, &mut a, &mut b, &mut out)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn truncations_are_refused(cut in 0usize..10_000) {
        let blob = sample_blob();
        let cut = cut % blob.len();
        prop_assert!(decode_and_run(&blob[..cut]).is_err());
    }

    #[test]
    fn bit_flips_are_refused(bit in 0usize..100_000) {
        let mut blob = sample_blob();
        let bit = bit % (blob.len() * 8);
        blob[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(decode_and_run(&blob).is_err());
    }

    /// With the CRC recomputed, only validation stands between a change and the engine: it may
    /// accept (a changed weight is still a model) but must never panic.
    #[test]
    fn resealed_corruptions_never_panic(
        edits in proptest::collection::vec((0usize..100_000, any::<u8>()), 1..4)
    ) {
        let mut blob = sample_blob();
        for (at, value) in edits {
            let n = blob.len() - 4;
            blob[at % n] = value;
        }
        reseal(&mut blob);
        let _ = decode_and_run(&blob);
    }

    #[test]
    fn resealed_truncations_never_panic(cut in 6usize..10_000) {
        let mut blob = sample_blob();
        let cut = cut % (blob.len() - 4);
        blob.truncate(cut);
        blob.extend_from_slice(&[0; 4]);
        reseal(&mut blob);
        prop_assert!(decode_and_run(&blob).is_err());
    }
}

/// Postcard bytes of one value.
fn encoded<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut buf = vec![0; 1 << 16];
    postcard::to_slice(value, &mut buf).unwrap().to_vec()
}

/// A valid blob re-encoded by hand (not by `format::write`), each layer's pad from `layer_pad`
/// (given the layer's index and its pad) and the end pad from `end_pad` (given the blob's end
/// pad), and resealed.
fn with_pads(
    blob: &[u8],
    layer_pad: impl Fn(usize, &[u8]) -> Vec<u8>,
    end_pad: impl Fn(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    use firmware::format::{Dense, Header};
    let (header, mut rest) = postcard::take_from_bytes::<Header>(&blob[6..]).unwrap();
    let mut out = blob[..6].to_vec();
    out.extend(encoded(&header));
    for k in 0..header.layers as usize {
        let (layer, r) = postcard::take_from_bytes::<Dense>(rest).unwrap();
        let pad = layer_pad(k, layer.pad);
        out.extend(encoded(&Dense { pad: &pad, ..layer }));
        rest = r;
    }
    let (lut, rest) = postcard::take_from_bytes::<&[u8]>(rest).unwrap();
    let (end, _) = postcard::take_from_bytes::<&[u8]>(rest).unwrap();
    out.extend(encoded(lut));
    out.extend(encoded(&end_pad(end)[..]));
    out.extend([0; 4]);
    reseal(&mut out);
    out
}

#[test]
fn the_writer_puts_every_layers_weights_and_the_end_on_a_word_boundary() {
    for seed in 0..40usize {
        let widths = [1 + seed % 7, 8 + seed * 3 % 29, 16];
        let kinds = [WeightKind::Int4, WeightKind::Int8];
        let spec = common::model(seed as u64, 3 + seed % 5, seed % 11, &widths, &kinds, false);
        let blob = spec.to_bytes().unwrap();
        assert!(blob.len().is_multiple_of(4), "length {}", blob.len());
        let model = Model::from_bytes(&blob).unwrap();
        for layer in model.layers() {
            let at = layer.weights.as_ptr().addr() - blob.as_ptr().addr();
            assert!(at.is_multiple_of(4), "seed {seed}: weights at byte {at}");
            assert!(layer.pad.len() <= 3 && layer.pad.iter().all(|&b| b == 0));
        }
    }
}

#[test]
fn a_pad_that_is_not_zero_too_long_or_off_the_boundary_is_refused() {
    let good = sample_blob();
    let same = |_: usize, p: &[u8]| p.to_vec();
    let end = |p: &[u8]| p.to_vec();
    // The hand encoding with the writer's own pads gives the writer's blob back.
    assert_eq!(with_pads(&good, same, end), good);
    let model = Model::from_bytes(&good).unwrap();
    let padded = model.layers().iter().position(|l| !l.pad.is_empty());
    let padded = padded.expect("the sample has a layer whose weights needed a pad");
    let at = |k: usize, f: fn(&[u8]) -> Vec<u8>| {
        move |i: usize, p: &[u8]| if i == k { f(p) } else { p.to_vec() }
    };
    let cases = [
        (
            "a pad byte that is not zero",
            with_pads(&good, at(padded, |p| vec![1; p.len()]), end),
        ),
        (
            "a pad of more than 3 bytes",
            with_pads(&good, at(padded, |p| [p, &[0; 4]].concat()), end),
        ),
        (
            "weights off the boundary",
            with_pads(&good, at(0, |p| [p, &[0]].concat()), end),
        ),
        (
            "a length off the boundary",
            with_pads(&good, same, |p: &[u8]| {
                if p.len() < 3 {
                    [p, &[0]].concat()
                } else {
                    p[1..].to_vec()
                }
            }),
        ),
    ];
    for (what, blob) in cases {
        assert_eq!(
            Model::from_bytes(&blob).err(),
            Some(Error::Alignment),
            "{what}"
        );
    }
}
