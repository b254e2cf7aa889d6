//! Memory-mapped register access: the only `unsafe` in the board crate.
//!
//! Every peripheral register of the LM3S6965 is reached through `read`/`write` at a fixed
//! address below; the addresses come from the LM3S6965 datasheet.

/// System control (clock gating, clock configuration).
pub mod sysctl {
    pub const BASE: u32 = 0x400F_E000;
    /// Run-mode clock configuration (SYSDIV sets the core clock).
    pub const RCC: u32 = BASE + 0x060;
    /// Run-mode clock gating 1: SSI0 is bit 4.
    pub const RCGC1: u32 = BASE + 0x104;
    /// Run-mode clock gating 2: GPIO ports A..G are bits 0..6.
    pub const RCGC2: u32 = BASE + 0x108;
}

/// GPIO ports (PL061 with Stellaris extensions), one base per port.
pub mod gpio {
    pub const PORT_A: u32 = 0x4000_4000;
    pub const PORT_C: u32 = 0x4000_6000;
    pub const PORT_D: u32 = 0x4000_7000;
    pub const PORT_E: u32 = 0x4002_4000;
    pub const PORT_F: u32 = 0x4002_5000;
    /// Data: address bits 9:2 mask which pins a read or write touches.
    pub const DATA: u32 = 0x000;
    pub const DIR: u32 = 0x400;
    pub const AFSEL: u32 = 0x420;
    pub const DR8R: u32 = 0x508;
    pub const PUR: u32 = 0x510;
    pub const DEN: u32 = 0x51C;
}

/// SSI0, an ARM PL022.
pub mod ssi0 {
    pub const BASE: u32 = 0x4000_8000;
    pub const CR0: u32 = BASE;
    pub const CR1: u32 = BASE + 0x004;
    pub const DR: u32 = BASE + 0x008;
    pub const SR: u32 = BASE + 0x00C;
    pub const CPSR: u32 = BASE + 0x010;
    /// Status: transmit FIFO not full.
    pub const SR_TNF: u32 = 1 << 1;
    /// Status: receive FIFO not empty.
    pub const SR_RNE: u32 = 1 << 2;
    /// Control 1: port enable.
    pub const CR1_SSE: u32 = 1 << 1;
}

/// SysTick's control and status register (the timer itself belongs to `cortex_m::SYST`; the
/// panic handler polls this one without owning it).
pub mod systick {
    pub const CSR: u32 = 0xE000_E010;
    pub const CSR_ENABLE: u32 = 1 << 0;
    /// Set when the counter wrapped since the last read; reading clears it.
    pub const CSR_COUNTFLAG: u32 = 1 << 16;
}

/// Reads the 32-bit register at `addr`.
#[inline(always)]
pub fn read(addr: u32) -> u32 {
    // SAFETY: callers pass the addresses above, which are valid, aligned device registers or
    // SRAM words on this chip; volatile access has no side effects Rust can observe.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Writes the 32-bit register at `addr`.
#[inline(always)]
pub fn write(addr: u32, value: u32) {
    // SAFETY: as for `read`; these registers hold no Rust-visible memory.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// Sets `bits` in the register at `addr` (read-modify-write).
#[inline(always)]
pub fn set_bits(addr: u32, bits: u32) {
    write(addr, read(addr) | bits);
}

/// The stack region cortex-m-rt leaves between the end of the statics and the top of RAM.
pub mod stack {
    unsafe extern "C" {
        /// First word after `.bss`/`.uninit` (cortex-m-rt's heap start; nothing uses a heap).
        static mut __sheap: u32;
        /// Initial stack pointer: the top of RAM.
        static _stack_start: u32;
    }

    const PAINT: u32 = 0xC0DE_CAFE;

    fn bounds() -> (u32, u32) {
        (
            core::ptr::addr_of!(__sheap) as u32,
            core::ptr::addr_of!(_stack_start) as u32,
        )
    }

    /// Bytes between the statics and the top of RAM: the most the stack can grow.
    pub fn capacity() -> u32 {
        let (lo, hi) = bounds();
        hi - lo
    }

    /// Fills the unused stack below `sp - guard` with a pattern, so `used` can find the
    /// deepest point the stack ever reached.
    pub fn paint(guard: u32) {
        let (lo, _) = bounds();
        let sp = cortex_m::register::msp::read();
        let mut addr = lo;
        while addr + 4 <= sp - guard {
            super::write(addr, PAINT);
            addr += 4;
        }
    }

    /// The deepest stack use so far, in bytes: the top of RAM minus the lowest word that lost
    /// the pattern `paint` left.
    pub fn used() -> u32 {
        let (lo, hi) = bounds();
        let mut addr = lo;
        while addr < hi && super::read(addr) == PAINT {
            addr += 4;
        }
        hi - addr
    }
}
