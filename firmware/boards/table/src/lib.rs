//! The boards mcugan runs on, in one table: where each board crate lives and what it builds
//! for, its memory map (which its `memory.x` must match; a test checks), the flash a model may
//! take, and the kernel the engine picks on its core. `cargo xtask` builds, lints and
//! size-checks from it, and `mcugan export --target` reads the model budget from it.
#![no_std]

#[cfg(feature = "build")]
extern crate std;

#[cfg(feature = "build")]
pub mod build;

use core::ops::Range;

/// The static that holds the model blob in every board's image (`firmware::include_model!`
/// defines it): `cargo xtask size` and the harness find the blob in an ELF by this name.
pub const MODEL_SYMBOL: &str = "MCUGAN_MODEL_BLOB";

/// One board crate and the budgets its firmware must fit.
#[derive(Debug, PartialEq, Eq)]
pub struct Board {
    /// What people call it.
    pub name: &'static str,
    /// The name `mcugan export --target` takes.
    pub key: &'static str,
    /// The board crate's folder under the workspace root.
    pub folder: &'static str,
    pub target: &'static str,
    /// The binary `cargo build` leaves in `target/<target>/release/`.
    pub bin: &'static str,
    /// Where flash and RAM sit in the address space; their lengths are the budgets.
    pub flash: Range<u64>,
    pub ram: Range<u64>,
    /// RAM held back for the stack on top of the statics.
    pub stack_reserve: u64,
    /// Largest model blob export writes for this board: flash less the firmware's code.
    pub model_budget: usize,
    /// The engine's kernel on this board's core (`firmware::engine::Kernel::Fast` picks it).
    pub kernel: &'static str,
    /// What `flash` includes besides the firmware, in words (shown with the figures).
    pub flash_note: &'static str,
    /// The builds CI checks: (label, cargo features) for each model the board can embed.
    pub builds: &'static [(&'static str, &'static [&'static str])],
}

/// The TI LM3S6965 evaluation board (and QEMU's model of it): 256 KiB flash, 64 KiB SRAM. Its
/// firmware paints its stack and reports the deepest use in its ready line (a few hundred
/// bytes so far): 8 KiB is ample.
pub const LM3S6965: Board = Board {
    name: "LM3S6965",
    key: "lm3s6965",
    folder: "firmware/boards/lm3s6965evb",
    target: "thumbv7m-none-eabi",
    bin: "mcugan-lm3s6965evb",
    flash: 0..256 * 1024,
    ram: 0x2000_0000..0x2000_0000 + 64 * 1024,
    stack_reserve: 8 * 1024,
    model_budget: 200 * 1024,
    kernel: "CortexM3",
    flash_note: "",
    builds: &[("default model", &[])],
};

/// The Raspberry Pi Pico with an SSD1306: 2 MiB of flash whose first 256 bytes are the boot
/// stage (counted in the image), 256 KiB of SRAM (the app's buffers are statics).
pub const PICO: Board = Board {
    name: "Pico",
    key: "pico",
    folder: "firmware/boards/pico-ssd1306",
    target: "thumbv6m-none-eabi",
    bin: "mcugan-pico-ssd1306",
    flash: 0x1000_0000..0x1000_0000 + 2048 * 1024,
    ram: 0x2000_0000..0x2000_0000 + 256 * 1024,
    stack_reserve: 8 * 1024,
    model_budget: 1920 * 1024,
    kernel: "CortexM0Plus",
    flash_note: ", boot stage included",
    builds: &[
        ("seed-size model", &[]),
        ("lm3s6965 model", &["lm3s6965-model"]),
    ],
};

/// Every board, in the order the checks run.
pub const ALL: [&Board; 2] = [&LM3S6965, &PICO];

/// The board `key` names (`lm3s6965`, `pico`).
pub fn by_key(key: &str) -> Option<&'static Board> {
    ALL.into_iter().find(|b| b.key == key)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    /// `(region, origin, length)` of each line `NAME : ORIGIN = a, LENGTH = b` in a `memory.x`.
    fn regions(text: &str) -> Vec<(String, u64, u64)> {
        // `2048K - 0x100`: a length less the boot stage.
        let number = |s: &str| -> u64 {
            let mut parts = s.split('-');
            let first = parse(parts.next().unwrap_or(""));
            parts.fold(first, |v, p| v - parse(p))
        };
        text.lines()
            .filter_map(|l| {
                let (name, rest) = l.split_once(':')?;
                let (o, len) = rest.split_once(',')?;
                let origin = o.split_once('=')?.1;
                let length = len.split_once('=')?.1;
                Some((String::from(name.trim()), number(origin), number(length)))
            })
            .collect()
    }

    /// `0x…`, decimal, or decimal with a `K` (KiB) suffix.
    fn parse(s: &str) -> u64 {
        let s = s.trim();
        let v = match (s.strip_prefix("0x"), s.strip_suffix('K')) {
            (Some(hex), _) => u64::from_str_radix(&hex.replace('_', ""), 16),
            (None, Some(k)) => k.parse::<u64>().map(|k| k * 1024),
            (None, None) => s.parse(),
        };
        v.unwrap_or_else(|_| panic!("not a number: {s:?}"))
    }

    #[test]
    fn every_memory_x_matches_the_table() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
        for board in ALL {
            let path = root.join(board.folder).join("memory.x");
            let text = std::fs::read_to_string(&path).unwrap();
            let regions = regions(&text);
            let find = |name: &str| regions.iter().find(|r| r.0 == name).cloned();
            let ram = find("RAM").unwrap();
            assert_eq!(ram.1..ram.1 + ram.2, board.ram, "{}: RAM", path.display());
            // Flash may be split: a boot stage region before FLASH counts in the board's flash.
            let flash = find("FLASH").unwrap();
            let start = find("BOOT2").map_or(flash.1, |b| b.1);
            assert_eq!(
                start..flash.1 + flash.2,
                board.flash,
                "{}: flash",
                path.display()
            );
            assert!(board.model_budget as u64 <= board.flash.end - board.flash.start);
        }
    }

    #[test]
    fn keys_find_their_boards() {
        assert_eq!(by_key("pico"), Some(&PICO));
        assert_eq!(by_key("lm3s6965"), Some(&LM3S6965));
        assert_eq!(by_key("none"), None);
    }
}
