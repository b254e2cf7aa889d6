//! The generator's input: a seeded PRNG, integer Gaussian noise, the latent walk, and the
//! quantization of noise and class to the model's int8 input. Integers only, so the board and
//! the host draw bit-identical noise from the same seed.

use crate::engine::requantize;
use crate::format::{Error, Model};

/// SplitMix64: tiny, seedable from any value (zero included), and good enough for noise.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

/// Fractional bits of the device's noise values (value × 4096).
pub const Q: u32 = 12;

/// One standard normal sample in Q12: the sum of twelve 16-bit uniforms minus their mean
/// (Irwin–Hall, variance exactly 1 up to 2⁻³², kurtosis 2.9, tails cut at ±6).
pub fn gaussian_q12(rng: &mut SplitMix64) -> i32 {
    let mut sum: i32 = 0;
    for _ in 0..6 {
        let r = rng.next_u32();
        sum += (r & 0xFFFF) as i32 + (r >> 16) as i32;
    }
    // Twelve uniforms on 0..=65535 have mean 12 · 32767.5; one unit is 2⁻¹⁶, so >> 4 gives Q12.
    (sum - 393_210) >> 4
}

/// Which class a conditional model is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// A random class, drawn from the seed.
    Any,
    Digit(u8),
}

/// Latent steps per unit of the walk direction: UP/DOWN move `z` by `dir / 4`, a quarter σ.
pub const WALK_SHIFT: u32 = 2;

/// Draws what one seed means: the class (for a conditional model), the noise `z` and the walk
/// direction `dir`, each `latent` Q12 values. Same seed, same draw, on every machine.
pub fn draw(
    seed: u32,
    classes: usize,
    choice: Choice,
    z: &mut [i32],
    dir: &mut [i32],
) -> Option<u8> {
    let mut rng = SplitMix64::new(seed as u64);
    let class = match (classes, choice) {
        (0, _) => None,
        (n, Choice::Digit(c)) => Some((c as usize % n) as u8),
        (n, Choice::Any) => Some((rng.next_u32() % n as u32) as u8),
    };
    for v in z.iter_mut() {
        *v = gaussian_q12(&mut rng);
    }
    for v in dir.iter_mut() {
        *v = gaussian_q12(&mut rng);
    }
    class
}

/// The model's int8 input for noise `z` walked `steps` along `dir`, and the class one-hot.
pub fn model_input(
    model: &Model<'_>,
    z: &[i32],
    dir: &[i32],
    steps: i32,
    class: Option<u8>,
    input: &mut [i8],
) -> Result<(), Error> {
    let h = &model.header;
    let latent = h.latent as usize;
    if z.len() < latent || dir.len() < latent || input.len() != model.input_len() {
        return Err(Error::Input);
    }
    let (noise, one_hot) = input.split_at_mut(latent);
    for ((slot, &z), &d) in noise.iter_mut().zip(z).zip(dir) {
        let walked = z.saturating_add(steps.saturating_mul(d) >> WALK_SHIFT);
        *slot = requantize(walked, h.noise_multiplier, h.noise_shift).clamp(-127, 127) as i8;
    }
    for (c, slot) in one_hot.iter_mut().enumerate() {
        *slot = if class == Some(c as u8) {
            h.one_hot_level
        } else {
            0
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_moments_match_irwin_hall() {
        let mut rng = SplitMix64::new(42);
        let n = 200_000;
        let (mut m1, mut m2, mut m4) = (0f64, 0f64, 0f64);
        let mut extreme: i32 = 0;
        for _ in 0..n {
            let z = gaussian_q12(&mut rng);
            extreme = extreme.max(z.abs());
            let x = z as f64 / 4096.0;
            m1 += x;
            m2 += x * x;
            m4 += x * x * x * x;
        }
        let (m1, m2, m4) = (m1 / n as f64, m2 / n as f64, m4 / n as f64);
        // Standard errors at n = 200 000: mean 0.0022, variance 0.0031, fourth moment 0.011.
        assert!(m1.abs() < 0.01, "mean {m1}");
        assert!((m2 - 1.0).abs() < 0.015, "variance {m2}");
        assert!(
            (m4 - 2.9).abs() < 0.06,
            "fourth moment {m4} (Irwin–Hall 12: 2.9)"
        );
        assert!(extreme <= 6 * 4096);
    }

    #[test]
    fn same_seed_same_draw_and_seeds_differ() {
        let (mut z1, mut d1, mut z2, mut d2) = ([0; 16], [0; 16], [0; 16], [0; 16]);
        let c1 = draw(7, 10, Choice::Any, &mut z1, &mut d1);
        let c2 = draw(7, 10, Choice::Any, &mut z2, &mut d2);
        assert_eq!((c1, z1, d1), (c2, z2, d2));
        draw(8, 10, Choice::Any, &mut z2, &mut d2);
        assert_ne!(z1, z2);
        assert_eq!(draw(7, 10, Choice::Digit(3), &mut z1, &mut d1), Some(3));
        assert_eq!(draw(7, 0, Choice::Digit(3), &mut z1, &mut d1), None);
    }

    #[test]
    fn any_class_covers_all_classes() {
        let mut seen = [0u32; 10];
        let (mut z, mut d) = ([0; 4], [0; 4]);
        for seed in 0..2000 {
            let c = draw(seed, 10, Choice::Any, &mut z, &mut d).unwrap();
            seen[c as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (150..250).contains(&n)), "{seen:?}");
    }
}
