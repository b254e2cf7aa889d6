//! The app's clock on this board: SysTick in microseconds, with every reading's raw ticks kept,
//! so the board can log exactly how many ticks the last generation took.

use firmware::app;

use crate::timing::Clock;

pub struct AppClock<'c> {
    clock: &'c Clock,
    /// Ticks at each `micros` call since `reset`.
    readings: heapless::Vec<u64, 8>,
}

impl<'c> AppClock<'c> {
    pub fn new(clock: &'c Clock) -> Self {
        AppClock {
            clock,
            readings: heapless::Vec::new(),
        }
    }

    /// Forgets the readings (call before each button is handled).
    pub fn reset(&mut self) {
        self.readings.clear();
    }

    /// Ticks between the last two readings: the app reads the clock just before and just after
    /// generating, last thing in `handle`, so after a generation this is its duration.
    pub fn last_interval(&self) -> Option<u64> {
        match self.readings.as_slice() {
            [.., a, b] => Some(b - a),
            _ => None,
        }
    }
}

impl app::Clock for AppClock<'_> {
    fn micros(&mut self) -> Option<u32> {
        let ticks = self.clock.ticks();
        // Full: the oldest readings are not needed, only the last two.
        if self.readings.is_full() {
            self.readings.remove(0);
        }
        let _ = self.readings.push(ticks);
        Some((ticks * u64::from(self.clock.period_ns()) / 1000) as u32)
    }
}
