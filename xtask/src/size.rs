//! `cargo xtask size`: flash and RAM of the LM3S6965 firmware, read from the ELF's section
//! headers, against the chip's budgets (256 KB flash, 64 KB RAM with the stack).

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSection, ObjectSymbol, SectionFlags, SectionKind};
use std::path::Path;

use crate::{board, util};

pub const FLASH_BUDGET: u64 = 256 * 1024;
pub const RAM_BUDGET: u64 = 64 * 1024;
/// RAM held back for the stack on top of the statics. The firmware paints its stack and reports
/// the deepest use in its ready line (a few hundred bytes so far): this leaves ample margin.
pub const STACK_RESERVE: u64 = 8 * 1024;

const FLASH: std::ops::Range<u64> = 0..FLASH_BUDGET;
const RAM: std::ops::Range<u64> = 0x2000_0000..0x2000_0000 + RAM_BUDGET;

/// What the firmware occupies.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Code, read-only data, and the initial values of `.data`.
    pub flash: u64,
    /// Statics: `.data`, `.bss`, `.uninit`.
    pub ram: u64,
    /// The model blob (part of `flash`).
    pub model: u64,
}

impl Footprint {
    pub fn of_elf(path: &Path) -> Result<Self> {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file = object::File::parse(&*data)
            .with_context(|| format!("{} is not an ELF file", path.display()))?;
        let mut fp = Footprint::default();
        for section in file.sections() {
            let SectionFlags::Elf { sh_flags } = section.flags() else {
                continue;
            };
            const SHF_ALLOC: u64 = 0x2;
            if sh_flags & SHF_ALLOC == 0 || section.size() == 0 {
                continue;
            }
            let (addr, size) = (section.address(), section.size());
            let initialised = section.kind() != SectionKind::UninitializedData
                && section.kind() != SectionKind::UninitializedTls;
            if FLASH.contains(&addr) {
                fp.flash += size;
            } else if RAM.contains(&addr) {
                fp.ram += size;
                if initialised {
                    // Its initial values are copied from flash at boot.
                    fp.flash += size;
                }
            } else {
                bail!(
                    "section {} at {addr:#x} is neither in flash nor in RAM",
                    section.name().unwrap_or("?")
                );
            }
        }
        fp.model = file
            .symbols()
            .filter(|s| s.name().is_ok_and(|n| n.contains("MCUGAN_MODEL_BLOB")))
            .map(|s| s.size())
            .sum();
        Ok(fp)
    }

    /// One line per budget; errors when either is exceeded.
    pub fn check(&self) -> Result<Vec<String>> {
        let ram_total = self.ram + STACK_RESERVE;
        let lines = vec![
            format!(
                "flash {} of {} ({:.1}%), margin {}; model {} ({:.1}% of the image)",
                kib(self.flash),
                kib(FLASH_BUDGET),
                percent(self.flash, FLASH_BUDGET),
                signed_kib(FLASH_BUDGET as i64 - self.flash as i64),
                kib(self.model),
                percent(self.model, self.flash.max(1)),
            ),
            format!(
                "RAM   {} statics + {} stack reserve = {} of {} ({:.1}%), margin {}",
                kib(self.ram),
                kib(STACK_RESERVE),
                kib(ram_total),
                kib(RAM_BUDGET),
                percent(ram_total, RAM_BUDGET),
                signed_kib(RAM_BUDGET as i64 - ram_total as i64),
            ),
        ];
        if self.flash > FLASH_BUDGET {
            bail!("firmware too big for the LM3S6965's flash: {}", lines[0]);
        }
        if ram_total > RAM_BUDGET {
            bail!("firmware needs more than the LM3S6965's RAM: {}", lines[1]);
        }
        Ok(lines)
    }
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB ({bytes} B)", bytes as f64 / 1024.0)
}

fn signed_kib(bytes: i64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn percent(part: u64, whole: u64) -> f64 {
    100.0 * part as f64 / whole as f64
}

/// `cargo xtask size`: build, measure, check.
pub fn run() -> Result<()> {
    board::build()?;
    let elf = board::elf();
    let fp = Footprint::of_elf(&elf)?;
    util::step(&format!("size of {}", elf.display()));
    for line in fp.check()? {
        println!("    {line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_pass_at_the_limit_and_fail_beyond() {
        let at_limit = Footprint {
            flash: FLASH_BUDGET,
            ram: RAM_BUDGET - STACK_RESERVE,
            model: 1000,
        };
        let lines = at_limit.check().unwrap();
        assert!(lines[0].contains("margin 0.0 KiB"), "{lines:?}");
        assert!(lines[1].contains("margin 0.0 KiB"), "{lines:?}");
        let big_flash = Footprint {
            flash: FLASH_BUDGET + 1,
            ..at_limit
        };
        assert!(big_flash.check().unwrap_err().to_string().contains("flash"));
        let big_ram = Footprint {
            ram: RAM_BUDGET - STACK_RESERVE + 4,
            flash: 10,
            model: 0,
        };
        assert!(big_ram.check().unwrap_err().to_string().contains("RAM"));
    }

    #[test]
    fn rejects_a_file_that_is_not_an_elf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not.elf");
        std::fs::write(&path, b"hello").unwrap();
        assert!(Footprint::of_elf(&path).is_err());
    }
}
