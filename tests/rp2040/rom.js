// The project's own stand-in for the RP2040 boot ROM: the genuine image is not available here
// (and its float code is licensed for Pico hardware only). It holds what rp2040-hal reads at run
// time: the magic and version at 0x10, the 16-bit pointers to the function table, the data table
// and the lookup routine at 0x14/0x16/0x18, and the functions the firmware calls. Each entry is
// `bkpt #0xa5; bx lr`; the BKPT hands the call to JavaScript, which does the work on the core's
// registers and memory and charges an estimate of the cycles. Anything else fails the run: a code
// the tables do not hold, a float helper (the firmware uses none), or the core reaching a ROM
// address that is not an entry.

import { hex, SRAM_BASE, FLASH_BASE, FLASH_SIZE } from './elf.js';

export const ROM_SIZE = 16 * 1024;
const BKPT_IMM = 0xa5;
const SRAM_END = SRAM_BASE + 264 * 1024;
/** Cycles charged per call on top of one per byte: call, table walk and loop set-up. The genuine
 *  ROM copies words at under one cycle per byte and bytes at a little over two; one per byte is
 *  the middle, and the firmware copies only a few KiB per digit next to millions of MACs. */
const CALL_CYCLES = 12;

const FUNC_TABLE = 0x0400;
const DATA_TABLE = 0x0480;
const FLOAT_TABLES = 0x0500; // SF then SD, 32 entries each
const FLOAT_ENTRIES = 32;
const STUBS = 0x0800;

const code = (s) => s.charCodeAt(0) | (s.charCodeAt(1) << 8);
const name = (c) => String.fromCharCode(c & 0xff, c >> 8);

export class StandInRom {
  constructor() {
    this.bytes = new Uint8Array(ROM_SIZE);
    this.view = new DataView(this.bytes.buffer);
    /** ROM addresses the core may execute: each stub's BKPT and its BX LR. */
    this.executable = new Uint8Array(ROM_SIZE);
    this.handlers = new Map();
    this.nextStub = STUBS;
    this.calls = 0;
    this.bytesMoved = 0;

    const fail = (what) => () => {
      throw new Error(`the core reached the stand-in ROM's ${what}, which it does not provide`);
    };
    this.view.setUint32(0, SRAM_END - 0x1000, true);
    this.view.setUint32(4, this.stub('reset vector', fail('reset vector')), true);
    this.bytes.set([0x4d, 0x75, 0x01, 0x03], 0x10); // 'M' 'u' 0x01, version 3 (the B2 chip's)
    this.view.setUint16(0x14, FUNC_TABLE, true);
    this.view.setUint16(0x16, DATA_TABLE, true);
    this.view.setUint16(0x18, this.stub('table lookup', (core) => this.lookup(core)), true);

    const funcs = [
      ['P3', 'popcount32', (r) => popcount(r[0])],
      ['L3', 'clz32', (r) => Math.clz32(r[0])],
      ['T3', 'ctz32', (r) => (r[0] === 0 ? 32 : 31 - Math.clz32(r[0] & -r[0]))],
      ['R3', 'reverse32', (r) => reverse(r[0])],
      ['MC', 'memcpy', (r, core) => this.memcpy(core, r[0], r[1], r[2], 1)],
      ['C4', 'memcpy44', (r, core) => this.memcpy(core, r[0], r[1], r[2], 4)],
      ['MS', 'memset', (r, core) => this.memset(core, r[0], r[1] & 0xff, r[2], 1)],
      ['S4', 'memset4', (r, core) => this.memset(core, r[0], r[1] & 0xff, r[2], 4)],
    ];
    let at = FUNC_TABLE;
    for (const [c, fnName, work] of funcs) {
      const entry = this.stub(fnName, (core) => {
        core.registers[0] = work(core.registers, core) >>> 0;
      });
      this.view.setUint16(at, code(c), true);
      this.view.setUint16(at + 2, entry, true);
      at += 4;
    }
    this.view.setUint16(at, 0, true);

    // The float tables: every entry present, each failing with its name, so a float operation
    // the firmware starts to use shows up as such instead of as a jump to address 0.
    at = DATA_TABLE;
    ['SF', 'SD'].forEach((table, t) => {
      const base = FLOAT_TABLES + t * FLOAT_ENTRIES * 4;
      for (let i = 0; i < FLOAT_ENTRIES; i++) {
        const what = `float helper ${table}+${hex(i * 4)}`;
        this.view.setUint32(base + i * 4, this.stub(what, fail(what)), true);
      }
      this.view.setUint16(at, code(table), true);
      this.view.setUint16(at + 2, base, true);
      at += 4;
    });
    this.view.setUint16(at, 0, true);
  }

  /** The ROM image for `RP2040.loadBootrom`. */
  words() {
    return new Uint32Array(this.bytes.buffer);
  }

  /** Adds an entry; returns its address with the Thumb bit, as the tables hold it. */
  stub(what, handler) {
    const at = this.nextStub;
    if (at + 4 > ROM_SIZE) throw new Error('the stand-in ROM is full');
    this.view.setUint16(at, 0xbe00 | BKPT_IMM, true); // bkpt #0xa5
    this.view.setUint16(at + 2, 0x4770, true); // bx lr
    this.executable[at] = this.executable[at + 2] = 1;
    this.handlers.set(at, { what, handler });
    this.nextStub += 4;
    return at | 1;
  }

  /** Wires the ROM into `rp2040`: its BKPTs to the handlers, every other BKPT or UDF to a failure. */
  attach(rp2040) {
    rp2040.loadBootrom(this.words());
    const core = rp2040.core;
    rp2040.onBreak = (imm) => {
      // Both BKPT and UDF get here with PC just past their first halfword.
      const at = (core.PC - 2) >>> 0;
      const opcode = rp2040.readUint16(at);
      const entry = this.handlers.get(at);
      if (opcode === (0xbe00 | BKPT_IMM) && entry) {
        entry.handler(core);
        return;
      }
      const kind = opcode >> 8 === 0xbe ? 'BKPT' : 'UDF';
      throw new Error(`the firmware executed ${kind} #${imm} at ${hex(at)}`);
    };
  }

  /** Whether the core may execute at `pc` (only meaningful below ROM_SIZE). */
  allows(pc) {
    return this.executable[pc] === 1;
  }

  lookup(core) {
    const [table, wanted] = [core.registers[0], core.registers[1] & 0xffff];
    const which = table === FUNC_TABLE ? 'function' : table === DATA_TABLE ? 'data' : null;
    if (!which) throw new Error(`ROM table lookup in ${hex(table)}, which is no table of the stand-in ROM`);
    for (let at = table; ; at += 4) {
      const c = this.view.getUint16(at, true);
      if (c === 0) {
        throw new Error(
          `the firmware looked up ROM ${which} code '${name(wanted)}', which the stand-in ROM does not provide`,
        );
      }
      if (c === wanted) {
        core.registers[0] = this.view.getUint16(at + 2, true);
        return;
      }
    }
  }

  charge(core, bytes) {
    this.calls += 1;
    this.bytesMoved += bytes;
    core.cycles += CALL_CYCLES + bytes;
  }

  memcpy(core, dest, src, n, align) {
    checkAligned('memcpy44', [dest, src], align);
    checkRange('memcpy destination', dest, n, true);
    checkRange('memcpy source', src, n, false);
    const rp = core.rp2040;
    for (let i = 0; i < n; i++) rp.writeUint8(dest + i, rp.readUint8(src + i));
    this.charge(core, n);
    return dest;
  }

  memset(core, dest, value, n, align) {
    checkAligned('memset4', [dest], align);
    checkRange('memset destination', dest, n, true);
    const rp = core.rp2040;
    for (let i = 0; i < n; i++) rp.writeUint8(dest + i, value);
    this.charge(core, n);
    return dest;
  }
}

function checkAligned(what, addresses, align) {
  for (const a of addresses) {
    if (a % align !== 0) throw new Error(`${what} called with ${hex(a)}, not ${align}-byte aligned`);
  }
}

function checkRange(what, start, n, write) {
  const inSram = start >= SRAM_BASE && start + n <= SRAM_END;
  const inFlash = start >= FLASH_BASE && start + n <= FLASH_BASE + FLASH_SIZE;
  if (!(inSram || (!write && inFlash))) {
    throw new Error(`${what} ${hex(start)}..+${n} is outside ${write ? 'SRAM' : 'SRAM and flash'}`);
  }
}

function popcount(x) {
  let n = 0;
  for (let v = x >>> 0; v; v &= v - 1) n++;
  return n;
}

function reverse(x) {
  let r = 0;
  for (let i = 0; i < 32; i++) r = (r << 1) | ((x >>> i) & 1);
  return r >>> 0;
}

/** The CRC-32 the boot ROM checks the boot stage with: polynomial 0x04c11db7, MSB first,
 *  initial 0xffffffff, no final XOR, over the stage's first 252 bytes. */
export function boot2Crc(bytes) {
  let crc = 0xffffffff;
  for (let i = 0; i < 252; i++) {
    crc ^= bytes[i] << 24;
    for (let b = 0; b < 8; b++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1;
  }
  return crc >>> 0;
}

/** The boot ROM runs the flash's first 256 bytes only when their last word is their CRC. */
export function checkBoot2(flash) {
  const crc = boot2Crc(flash);
  const stored = (flash[252] | (flash[253] << 8) | (flash[254] << 16) | (flash[255] << 24)) >>> 0;
  if (crc !== stored) {
    throw new Error(
      `the boot stage (flash 0..256) has CRC ${hex(stored)}, expected ${hex(crc)}: a real RP2040 would not boot it`,
    );
  }
}
