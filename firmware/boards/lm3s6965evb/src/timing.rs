//! Time from SysTick: a 1 ms interrupt counts milliseconds, the counter gives the ticks within
//! one. The cycle counter (DWT) is not emulated by QEMU; SysTick is, and under `-icount shift=N`
//! instructions = ticks × period_ns / 2^N (QEMU counts instructions, not cycles).

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::exception;

use crate::regs::{self, sysctl};

static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

/// The running clock; owns SysTick.
pub struct Clock {
    /// Held so nothing else reconfigures SysTick.
    _syst: SYST,
    ticks_per_ms: u32,
    period_ns: u32,
}

impl Clock {
    /// Starts SysTick on the core clock with a 1 ms period.
    pub fn start(mut syst: SYST) -> Self {
        let period_ns = core_clock_period_ns();
        let ticks_per_ms = 1_000_000 / period_ns;
        syst.disable_counter();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(ticks_per_ms - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Clock {
            _syst: syst,
            ticks_per_ms,
            period_ns,
        }
    }

    /// Core clock ticks since `start`.
    pub fn ticks(&self) -> u64 {
        cortex_m::interrupt::free(|_| {
            let mut ms = MILLIS.load(Ordering::Relaxed);
            let mut current = SYST::get_current();
            // The counter wrapped after interrupts were masked: count that millisecond here.
            if SCB::is_pendst_pending() {
                ms = ms.wrapping_add(1);
                current = SYST::get_current();
            }
            let within = self.ticks_per_ms - 1 - current.min(self.ticks_per_ms - 1);
            u64::from(ms) * u64::from(self.ticks_per_ms) + u64::from(within)
        })
    }

    /// Milliseconds since `start`.
    pub fn millis(&self) -> u32 {
        MILLIS.load(Ordering::Relaxed)
    }

    /// The core clock period SysTick counts in.
    pub fn period_ns(&self) -> u32 {
        self.period_ns
    }

    /// Sleeps until the next interrupt (SysTick fires every millisecond).
    pub fn wait(&self) {
        cortex_m::asm::wfi();
    }
}

/// QEMU's model of the clock: 5 ns × (SYSDIV + 1) from RCC, 80 ns (12.5 MHz) at reset, close to
/// a real part's 12 MHz internal oscillator at reset.
fn core_clock_period_ns() -> u32 {
    let sysdiv = (regs::read(sysctl::RCC) >> 23) & 0xF;
    5 * (sysdiv + 1)
}
