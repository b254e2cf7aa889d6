//! The app's clock: the RP2040's 1 MHz timer, so the screen shows each generation's time and
//! seeds mix in the time between presses.

use rp_pico::hal::Timer;

pub struct AppClock(pub Timer);

impl AppClock {
    /// Wrapping milliseconds, for the button's debouncer.
    pub fn millis(&self) -> u32 {
        (self.0.get_counter().ticks() / 1000) as u32
    }
}

impl firmware::app::Clock for AppClock {
    fn micros(&mut self) -> Option<u32> {
        Some(self.0.get_counter_low())
    }
}
