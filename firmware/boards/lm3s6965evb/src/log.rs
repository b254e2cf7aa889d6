//! Log lines over semihosting (QEMU's stdout), compiled out without the `semihosting` feature:
//! on a real board without a debugger a semihosting call would stop the core.

#[cfg(feature = "semihosting")]
macro_rules! log {
    ($($arg:tt)*) => { cortex_m_semihosting::hprintln!($($arg)*) };
}

#[cfg(not(feature = "semihosting"))]
macro_rules! log {
    ($($arg:tt)*) => {{
        let _ = format_args!($($arg)*);
    }};
}

pub(crate) use log;

/// Ends the QEMU run with a failure code; halts on a board without semihosting.
pub fn exit_failure() -> ! {
    #[cfg(feature = "semihosting")]
    cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
