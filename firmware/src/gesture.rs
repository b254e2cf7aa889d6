//! One push button standing in for the app's five, for boards that have a single button (the
//! Pico board): debounced, a short press is SELECT (a new sample of the chosen class) and a long
//! one RIGHT then SELECT (the next class, drawn at once). Pure logic, so the host tests it.

use crate::app::Button;

/// How often a board samples the pin.
pub const SAMPLE_MS: u32 = 5;
/// Consecutive equal samples before a change counts (20 ms: contact bounce is shorter).
const STABLE_SAMPLES: u8 = 4;
/// A press held at least this long is a long press.
pub const LONG_MS: u32 = 600;

/// What a completed press means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gesture {
    Short,
    Long,
}

impl Gesture {
    /// The app buttons this press stands for, in order.
    pub fn buttons(self) -> &'static [Button] {
        match self {
            Gesture::Short => &[Button::Select],
            Gesture::Long => &[Button::Right, Button::Select],
        }
    }
}

/// The debouncer and press timer of one button.
#[derive(Clone, Debug, Default)]
pub struct OneButton {
    /// Debounced state.
    pressed: bool,
    /// Consecutive samples that disagree with `pressed`.
    run: u8,
    /// When the debounced press began (ms).
    since: u32,
}

impl OneButton {
    pub const fn new() -> Self {
        OneButton {
            pressed: false,
            run: 0,
            since: 0,
        }
    }

    /// Feeds one sample (`down`: the pin reads pressed) taken at `now_ms` (wrapping
    /// milliseconds); returns the gesture when a press has just been released.
    pub fn sample(&mut self, down: bool, now_ms: u32) -> Option<Gesture> {
        if down == self.pressed {
            self.run = 0;
            return None;
        }
        self.run += 1;
        if self.run < STABLE_SAMPLES {
            return None;
        }
        self.run = 0;
        self.pressed = down;
        // Date the change from its first stable sample, so bounce does not lengthen presses.
        let at = now_ms.wrapping_sub((STABLE_SAMPLES as u32 - 1) * SAMPLE_MS);
        if down {
            self.since = at;
            return None;
        }
        Some(if at.wrapping_sub(self.since) >= LONG_MS {
            Gesture::Long
        } else {
            Gesture::Short
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    /// Feeds `(down, duration_ms)` segments sampled every SAMPLE_MS; returns the gestures and
    /// the time each was reported.
    fn run(segments: &[(bool, u32)], start: u32) -> std::vec::Vec<(Gesture, u32)> {
        let mut b = OneButton::new();
        let mut now = start;
        let mut out = std::vec::Vec::new();
        for &(down, ms) in segments {
            for _ in 0..ms / SAMPLE_MS {
                if let Some(g) = b.sample(down, now) {
                    out.push((g, now));
                }
                now = now.wrapping_add(SAMPLE_MS);
            }
        }
        out
    }

    #[test]
    fn a_short_press_is_select_once_released() {
        let g = run(&[(false, 50), (true, 200), (false, 100)], 0);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].0, Gesture::Short);
        // Reported 15 ms after the release began (four stable samples).
        assert_eq!(g[0].1, 250 + 15);
        assert_eq!(Gesture::Short.buttons(), &[Button::Select]);
    }

    #[test]
    fn a_long_press_is_next_class_then_select() {
        let g = run(&[(false, 20), (true, LONG_MS + 40), (false, 60)], 0);
        assert_eq!(
            g.iter().map(|x| x.0).collect::<std::vec::Vec<_>>(),
            [Gesture::Long]
        );
        assert_eq!(Gesture::Long.buttons(), &[Button::Right, Button::Select]);
        // Just under the threshold is still short.
        let g = run(&[(false, 20), (true, LONG_MS - 20), (false, 60)], 0);
        assert_eq!(g[0].0, Gesture::Short);
    }

    #[test]
    fn bounce_is_ignored() {
        // Contacts chatter for 10 ms on press and on release: one press, one gesture.
        let chatter = [(true, 5), (false, 5), (true, 5), (false, 5)];
        let mut segments = std::vec![(false, 30)];
        segments.extend(chatter);
        segments.push((true, 150));
        segments.extend(chatter);
        segments.push((false, 100));
        let g = run(&segments, 0);
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!(g[0].0, Gesture::Short);
        // A glitch shorter than the debounce time is no press at all.
        assert!(run(&[(false, 30), (true, 10), (false, 100)], 0).is_empty());
    }

    #[test]
    fn presses_across_the_millisecond_wrap_keep_their_length() {
        let g = run(
            &[(false, 20), (true, LONG_MS + 100), (false, 40)],
            u32::MAX - 300,
        );
        assert_eq!(g[0].0, Gesture::Long);
        let g = run(&[(false, 20), (true, 100), (false, 40)], u32::MAX - 60);
        assert_eq!(g[0].0, Gesture::Short);
    }
}
