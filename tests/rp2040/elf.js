// The firmware's ELF as the RP2040 sees it: the PT_LOAD segments written into flash at their
// physical (load) addresses, as a UF2 or a debug probe would, and the symbols the harness watches.

import { readFileSync } from 'node:fs';

const PT_LOAD = 1;
const SHT_SYMTAB = 2;
const EM_ARM = 40;

export const FLASH_BASE = 0x10000000;
/** The Pico's QSPI flash: 2 MiB. */
export const FLASH_SIZE = 2 * 1024 * 1024;
export const SRAM_BASE = 0x20000000;

/** Parses a 32-bit little-endian ARM ELF: its loadable segments and its symbol table. */
export function readElf(path) {
  const buf = readFileSync(path);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const fail = (what) => {
    throw new Error(`${path}: ${what}`);
  };
  if (buf.length < 52 || view.getUint32(0, false) !== 0x7f454c46) fail('not an ELF file');
  if (buf[4] !== 1 || buf[5] !== 1) fail('not a 32-bit little-endian ELF');
  if (view.getUint16(18, true) !== EM_ARM) fail('not an ARM ELF');
  const u16 = (at) => view.getUint16(at, true);
  const u32 = (at) => view.getUint32(at, true);

  const segments = [];
  const [phoff, phentsize, phnum] = [u32(28), u16(42), u16(44)];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (u32(at) !== PT_LOAD) continue;
    const [offset, vaddr, paddr, filesz, memsz] = [u32(at + 4), u32(at + 8), u32(at + 12), u32(at + 16), u32(at + 20)];
    if (offset + filesz > buf.length) fail(`segment at ${hex(paddr)} runs past the end of the file`);
    segments.push({ vaddr, paddr, memsz, bytes: buf.subarray(offset, offset + filesz) });
  }

  const symbols = new Map();
  const [shoff, shentsize, shnum] = [u32(32), u16(46), u16(48)];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    if (u32(at + 4) !== SHT_SYMTAB) continue;
    const [symOffset, symSize, link] = [u32(at + 16), u32(at + 20), u32(at + 24)];
    const strOffset = u32(shoff + link * shentsize + 16);
    for (let s = symOffset; s + 16 <= symOffset + symSize; s += 16) {
      let end = strOffset + u32(s);
      while (buf[end] !== 0) end++;
      const name = buf.toString('latin1', strOffset + u32(s), end);
      if (name) symbols.set(name, { address: u32(s + 4), size: u32(s + 8) });
    }
  }
  return { path, segments, symbols };
}

/** Writes the image into the emulator's flash; refuses what a Pico's 2 MiB of flash cannot hold. */
export function loadIntoFlash(elf, rp2040) {
  let loaded = 0;
  for (const { paddr, bytes } of elf.segments) {
    if (bytes.length === 0) continue; // .bss and friends: zeroed by the firmware's start-up
    if (paddr < FLASH_BASE || paddr + bytes.length > FLASH_BASE + FLASH_SIZE) {
      throw new Error(
        `${elf.path}: a segment of ${bytes.length} bytes loads at ${hex(paddr)}, outside the Pico's 2 MiB of flash`,
      );
    }
    rp2040.flash.set(bytes, paddr - FLASH_BASE);
    loaded += bytes.length;
  }
  if (loaded === 0) throw new Error(`${elf.path}: nothing to load into flash`);
  return loaded;
}

/** The address of the one symbol whose name contains `part` (Rust mangles the rest). */
export function symbolContaining(elf, part) {
  const found = [...elf.symbols].filter(([name]) => name.includes(part));
  if (found.length !== 1) {
    throw new Error(`${elf.path}: expected one symbol containing ${part}, found ${found.length}`);
  }
  return found[0][1].address & ~1;
}

export function hex(n) {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}
