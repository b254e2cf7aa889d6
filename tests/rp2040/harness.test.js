// The harness's own failure modes, each on a few hand-assembled Thumb instructions or bytes
// (`node --test`, run by the Rust test `the_harness_fails_loudly`): a run that should fail
// must fail, with a message that says why.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from './run.js';
import { FLASH_BASE } from './elf.js';
import { StandInRom, boot2Crc, checkBoot2 } from './rom.js';
import { Ssd1306 } from './ssd1306.js';

const PROGRAM = FLASH_BASE + 0x200;
const PANIC = FLASH_BASE + 0x300;

/** An image: a boot stage that passes the CRC check, a vector table, `code` (halfwords, then
 *  `words` 4-byte aligned after it) at 0x10000200, and a panic handler symbol. */
function image(code, words = []) {
  const bytes = new Uint8Array(0x400);
  const view = new DataView(bytes.buffer);
  view.setUint32(252, boot2Crc(bytes), true);
  view.setUint32(0x100, 0x20040000, true);
  view.setUint32(0x104, PROGRAM | 1, true);
  code.forEach((h, i) => view.setUint16(0x200 + 2 * i, h, true));
  const at = 0x200 + ((2 * code.length + 3) & ~3);
  words.forEach((w, i) => view.setUint32(at + 4 * i, w, true));
  view.setUint16(PANIC - FLASH_BASE, 0xe7fe, true); // b .
  return {
    path: 'test image',
    segments: [{ paddr: FLASH_BASE, bytes }],
    symbols: new Map([['_RNvCs0_7___rustc17rust_begin_unwind', { address: PANIC, size: 2 }]]),
  };
}

function fails(code, words, steps, message) {
  const board = new Board({ limit_ms: 100, steps }, image(code, words), () => {});
  assert.throws(() => steps.forEach((s) => board.step(s)), message);
}

const B_SELF = 0xe7fe; // b .
const LDR_R0_PC4 = 0x4801; // ldr r0, [pc, #4]: the first word after two more halfwords

test('a loop that never lights the LED runs into the time limit of its step', () => {
  fails([B_SELF], [], [{ until: 'led_on', within_ms: 5 }], /no led_on within 5 ms/);
});

test('steps past the script limit are refused', () => {
  fails([B_SELF], [], [{ run_ms: 200 }], /past its limit/);
});

test('a jump into the ROM outside the stand-in entries fails', () => {
  // ldr r0, =0x301; bx r0
  fails([LDR_R0_PC4, 0x4700, 0, 0], [0x301], [{ run_ms: 1 }], /ROM address 0x00000300/);
});

test('a read of an unimplemented peripheral (the ROSC) fails', () => {
  // ldr r0, =0x40060000; ldr r1, [r0]; b .
  fails([LDR_R0_PC4, 0x6801, B_SELF, 0], [0x40060000], [{ run_ms: 1 }], /ROSC/);
});

test('a BKPT in the firmware fails', () => {
  fails([0xbe07, B_SELF], [], [{ run_ms: 1 }], /BKPT #7/);
});

test('reaching the panic handler fails', () => {
  // ldr r0, =PANIC | 1; bx r0
  fails([LDR_R0_PC4, 0x4700, 0, 0], [PANIC | 1], [{ run_ms: 1 }], /panicked/);
});

test('a clean loop runs its time and reports it', () => {
  const events = [];
  const board = new Board({ limit_ms: 10, steps: [] }, image([B_SELF]), (e) => events.push(e));
  board.step({ run_ms: 2 });
  board.end();
  const end = events.at(-1);
  assert.equal(end.event, 'end');
  assert.ok(end.ns >= 2e6 && end.ns < 2e6 + 100, `${end.ns} ns`);
  assert.equal(end.cycles, Math.round(end.ns / 8));
});

test('a boot stage with a bad CRC is refused', () => {
  const flash = new Uint8Array(256);
  assert.throws(() => checkBoot2(flash), /would not boot/);
  new DataView(flash.buffer).setUint32(252, boot2Crc(flash), true);
  checkBoot2(flash);
});

/** Calls a ROM routine through the stand-in's BKPT handler on a minimal core. */
function romCall(rom, address, args) {
  const registers = new Uint32Array(16);
  args.forEach((a, i) => (registers[i] = a));
  const core = { registers, cycles: 0 };
  rom.handlers.get(address & ~1).handler(core);
  return registers[0];
}

test('the ROM tables answer the codes the firmware uses and refuse the rest', () => {
  const rom = new StandInRom();
  const view = new DataView(rom.bytes.buffer);
  const [funcs, data, lookup] = [view.getUint16(0x14, true), view.getUint16(0x16, true), view.getUint16(0x18, true)];
  assert.deepEqual([...rom.bytes.subarray(0x10, 0x13)], [0x4d, 0x75, 0x01]);
  const code = (s) => s.charCodeAt(0) | (s.charCodeAt(1) << 8);
  const popcount = romCall(rom, lookup, [funcs, code('P3')]);
  assert.equal(popcount & 1, 1, 'Thumb bit');
  assert.equal(romCall(rom, popcount, [0xf0f0_0001]), 9);
  assert.equal(romCall(rom, romCall(rom, lookup, [funcs, code('L3')]), [0x0001_0000]), 15);
  assert.equal(romCall(rom, romCall(rom, lookup, [funcs, code('T3')]), [0]), 32);
  assert.equal(romCall(rom, romCall(rom, lookup, [funcs, code('R3')]), [1]), 0x8000_0000);
  assert.throws(() => romCall(rom, lookup, [funcs, code('UB')]), /function code 'UB'/);
  assert.throws(() => romCall(rom, lookup, [data, code('CR')]), /data code 'CR'/);
  const sf = romCall(rom, lookup, [data, code('SF')]);
  assert.throws(() => romCall(rom, view.getUint32(sf, true), []), /float helper SF\+0x00000000/);
});

test('the display model refuses commands it does not know and reads', () => {
  const oled = new Ssd1306(0x3c);
  oled.transaction = { control: null };
  oled.write(0x00);
  assert.throws(() => oled.write(0x2f), /not modelled|unknown/); // activate scrolling
  assert.throws(() => oled.write(0xad), /unknown command 0xad/);
  const i2c = { completeStart() {}, completeConnect() {}, completeWrite() {}, completeStop() {} };
  oled.attach(i2c, true);
  assert.throws(() => i2c.onConnect(0x3c, 1), /read/);
});

test('the display model fills its window and shows it upright with remap and reversed COM scan', () => {
  const oled = new Ssd1306(0x3c);
  let frames = 0;
  oled.onFrame = () => frames++;
  oled.transaction = { control: null };
  // Horizontal addressing, window columns 0..1 and pages 0..0, remap, reversed COM scan, on.
  for (const b of [0x00, 0x20, 0x00, 0x21, 0, 1, 0x22, 0, 0, 0xa1, 0xc8, 0x8d, 0x14, 0xaf]) oled.write(b);
  oled.transaction = { control: null };
  for (const b of [0x40, 0x01, 0x80]) oled.write(b);
  assert.equal(frames, 1);
  const { lit, pages } = oled.screen();
  assert.ok(lit);
  assert.equal(pages[0], 0x01); // (0, 0)
  assert.equal(pages[1], 0x80); // (1, 7)
  assert.equal(pages.reduce((a, b) => a + b, 0), 0x81);
});
