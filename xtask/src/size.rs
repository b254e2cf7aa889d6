//! `cargo xtask size`: flash and RAM of each board's firmware, read from the ELF's section
//! headers, against the chip's budgets (LM3S6965: 256 KiB flash, 64 KiB RAM; Pico: 2 MiB flash,
//! 256 KiB RAM; RAM with a stack reserve), for every model each board can embed; and the web
//! page's WebAssembly module against its own budget.

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSection, ObjectSymbol, SectionFlags, SectionKind};
use std::path::Path;

use crate::board::{self, Board, BoardCrate};
use crate::{util, web};

/// The web page's module, the default model included: what a visitor downloads before the
/// first digit. The model may take the 200 KiB its board leaves it (170 KiB today), the app
/// about 60 KiB.
pub const WASM_BUDGET: u64 = 260 * 1024;

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
    pub fn of_elf(path: &Path, board: &Board) -> Result<Self> {
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
            if board.flash.contains(&addr) {
                fp.flash += size;
            } else if board.ram.contains(&addr) {
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
            .filter(|s| s.name().is_ok_and(|n| n.contains(boards::MODEL_SYMBOL)))
            .map(|s| s.size())
            .sum();
        Ok(fp)
    }

    /// One line per budget; errors when either is exceeded.
    pub fn check(&self, board: &Board) -> Result<Vec<String>> {
        let flash_budget = board.flash.end - board.flash.start;
        let ram_budget = board.ram.end - board.ram.start;
        let ram_total = self.ram + board.stack_reserve;
        let lines = vec![
            format!(
                "flash {} of {} ({:.1}%{}), margin {}; model {} ({:.1}% of the image)",
                kib(self.flash),
                kib(flash_budget),
                percent(self.flash, flash_budget),
                board.flash_note,
                signed_kib(flash_budget as i64 - self.flash as i64),
                kib(self.model),
                percent(self.model, self.flash.max(1)),
            ),
            format!(
                "RAM   {} statics + {} stack reserve = {} of {} ({:.1}%), margin {}",
                kib(self.ram),
                kib(board.stack_reserve),
                kib(ram_total),
                kib(ram_budget),
                percent(ram_total, ram_budget),
                signed_kib(ram_budget as i64 - ram_total as i64),
            ),
        ];
        if self.flash > flash_budget {
            bail!(
                "firmware too big for the {}'s flash: {}",
                board.name,
                lines[0]
            );
        }
        if ram_total > ram_budget {
            bail!(
                "firmware needs more than the {}'s RAM: {}",
                board.name,
                lines[1]
            );
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

/// `cargo xtask size`: build every board with every model it can embed, measure, check.
pub fn run() -> Result<()> {
    for board in board::ALL {
        for (label, features) in board.builds {
            board.build(features)?;
            let elf = board.elf();
            let fp = Footprint::of_elf(&elf, board)?;
            util::step(&format!("size of {} ({label})", elf.display()));
            for line in fp.check(board)? {
                println!("    {line}");
            }
        }
    }
    let wasm = web::build_wasm()?;
    let bytes = std::fs::metadata(&wasm)
        .with_context(|| format!("cannot read {}", wasm.display()))?
        .len();
    util::step(&format!(
        "size of {} (the built-in model, {}, included)",
        wasm.display(),
        kib(web::default_model_len()?)
    ));
    println!("    {}", check_wasm(bytes)?);
    Ok(())
}

/// One line on the web page's module against [`WASM_BUDGET`]; errors when it is exceeded.
pub fn check_wasm(bytes: u64) -> Result<String> {
    let line = format!(
        "{} {} of {} ({:.1}%), margin {}",
        web::WASM,
        kib(bytes),
        kib(WASM_BUDGET),
        percent(bytes, WASM_BUDGET),
        signed_kib(WASM_BUDGET as i64 - bytes as i64)
    );
    if bytes > WASM_BUDGET {
        bail!("the web page's module is over its budget: {line}");
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_pass_at_the_limit_and_fail_beyond() {
        for (board, flash, ram) in [
            (&board::LM3S6965, 256 * 1024, 64 * 1024),
            (&boards::PICO, 2048 * 1024, 256 * 1024),
        ] {
            let at_limit = Footprint {
                flash,
                ram: ram - board.stack_reserve,
                model: 1000,
            };
            let lines = at_limit.check(board).unwrap();
            assert!(lines[0].contains("margin 0.0 KiB"), "{lines:?}");
            assert!(lines[1].contains("margin 0.0 KiB"), "{lines:?}");
            let big_flash = Footprint {
                flash: flash + 1,
                ..at_limit
            };
            let error = big_flash.check(board).unwrap_err().to_string();
            assert!(
                error.contains("flash") && error.contains(board.name),
                "{error}"
            );
            let big_ram = Footprint {
                ram: ram - board.stack_reserve + 4,
                flash: 10,
                model: 0,
            };
            assert!(
                big_ram
                    .check(board)
                    .unwrap_err()
                    .to_string()
                    .contains("RAM")
            );
        }
    }

    #[test]
    fn the_wasm_budget_passes_at_the_limit_and_fails_beyond() {
        assert!(check_wasm(WASM_BUDGET).unwrap().contains("margin 0.0 KiB"));
        let error = check_wasm(WASM_BUDGET + 1).unwrap_err().to_string();
        assert!(
            error.contains("web page") && error.contains("budget"),
            "{error}"
        );
    }

    #[test]
    fn rejects_a_file_that_is_not_an_elf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not.elf");
        std::fs::write(&path, b"hello").unwrap();
        assert!(Footprint::of_elf(&path, &board::LM3S6965).is_err());
    }
}
