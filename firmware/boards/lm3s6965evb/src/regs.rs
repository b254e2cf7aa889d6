//! Memory-mapped register access: the only `unsafe` in the board crate.
//!
//! Every peripheral register of the LM3S6965 is a [`Reg`], which only this module can make (at
//! the datasheet's addresses below, or a GPIO [`gpio::Port`]'s registers), so safe code
//! elsewhere reads and writes device registers and cannot reach an arbitrary address.

/// One 32-bit device register at a fixed address of this chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg(u32);

/// System control (clock gating, clock configuration).
pub mod sysctl {
    use super::Reg;
    const BASE: u32 = 0x400F_E000;
    /// Run-mode clock configuration (SYSDIV sets the core clock).
    pub const RCC: Reg = Reg(BASE + 0x060);
    /// Run-mode clock gating 1: SSI0 is bit 4.
    pub const RCGC1: Reg = Reg(BASE + 0x104);
    /// Run-mode clock gating 2: GPIO ports A..G are bits 0..6.
    pub const RCGC2: Reg = Reg(BASE + 0x108);
}

/// GPIO ports (PL061 with Stellaris extensions), one base per port.
pub mod gpio {
    use super::Reg;

    /// One GPIO port's register block.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Port(u32);

    pub const PORT_A: Port = Port(0x4000_4000);
    pub const PORT_C: Port = Port(0x4000_6000);
    pub const PORT_D: Port = Port(0x4000_7000);
    pub const PORT_E: Port = Port(0x4002_4000);
    pub const PORT_F: Port = Port(0x4002_5000);

    /// A register of a port, by its offset in the block.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Offset(u32);

    pub const DIR: Offset = Offset(0x400);
    pub const AFSEL: Offset = Offset(0x420);
    pub const DR8R: Offset = Offset(0x508);
    pub const PUR: Offset = Offset(0x510);
    pub const DEN: Offset = Offset(0x51C);

    impl Port {
        pub const fn reg(self, offset: Offset) -> Reg {
            Reg(self.0 + offset.0)
        }

        /// The DATA register seen through the mask `pins` (address bits 9:2 select which pins
        /// a read or write touches; the mask is 8 bits).
        pub const fn data(self, pins: u8) -> Reg {
            Reg(self.0 + ((pins as u32) << 2))
        }
    }
}

/// SSI0, an ARM PL022.
pub mod ssi0 {
    use super::Reg;
    const BASE: u32 = 0x4000_8000;
    pub const CR0: Reg = Reg(BASE);
    pub const CR1: Reg = Reg(BASE + 0x004);
    pub const DR: Reg = Reg(BASE + 0x008);
    pub const SR: Reg = Reg(BASE + 0x00C);
    pub const CPSR: Reg = Reg(BASE + 0x010);
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
    use super::Reg;
    pub const CSR: Reg = Reg(0xE000_E010);
    pub const CSR_ENABLE: u32 = 1 << 0;
    /// Set when the counter wrapped since the last read; reading clears it.
    pub const CSR_COUNTFLAG: u32 = 1 << 16;
}

/// Reads register `reg`.
#[inline(always)]
pub fn read(reg: Reg) -> u32 {
    // SAFETY: a `Reg` is only made in this module, at a valid, aligned device register of this
    // chip; volatile access has no side effects Rust can observe.
    unsafe { core::ptr::read_volatile(reg.0 as *const u32) }
}

/// Writes register `reg`.
#[inline(always)]
pub fn write(reg: Reg, value: u32) {
    // SAFETY: as for `read`; device registers hold no Rust-visible memory.
    unsafe { core::ptr::write_volatile(reg.0 as *mut u32, value) }
}

/// Sets `bits` in register `reg` (read-modify-write).
#[inline(always)]
pub fn set_bits(reg: Reg, bits: u32) {
    write(reg, read(reg) | bits);
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
            // SAFETY: `addr` is a word of the unused stack between the statics and the stack
            // pointer (less a guard for this function's own frame), which no Rust value holds.
            unsafe { core::ptr::write_volatile(addr as *mut u32, PAINT) };
            addr += 4;
        }
    }

    /// The deepest stack use so far, in bytes: the top of RAM minus the lowest word that lost
    /// the pattern `paint` left.
    pub fn used() -> u32 {
        let (lo, hi) = bounds();
        let mut addr = lo;
        // SAFETY: reads words of RAM between the statics and the top of the stack, all
        // mapped and aligned; volatile, so nothing is assumed about their contents.
        while addr < hi && unsafe { core::ptr::read_volatile(addr as *const u32) } == PAINT {
            addr += 4;
        }
        hi - addr
    }
}
