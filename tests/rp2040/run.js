// Boots the Pico firmware's ELF in rp2040js and runs a script against it on simulated time only:
// the clock advances by the cycles the core executes (125 MHz), never by the wall clock, so a run
// is the same on every machine. The board around the chip: the stand-in boot ROM (rom.js), an
// SSD1306 at 0x3C on I2C0 (ssd1306.js), a button from GP15 to ground (the pin's own pull-up is the
// only thing that lifts it), the LED on GP25.
//
//   node run.js < script.json
//
// The script: { "elf": path, "display": bool, "limit_ms": n, "steps": [step…] }, each step one of
//   { "run_ms": n }                          run n simulated milliseconds
//   { "button": "down" | "up" }              press (GP15 to ground) or release the button
//   { "until": "led_on" | "led_off" | "frame", "within_ms": n }
//                                            run until the LED's next edge or the display's next
//                                            complete frame; fail after n ms
//   { "capture": name }                      report what the display shows
// Output: one JSON object a line on stdout (`event`: led, frame, screen, end or error). Any
// warning from the emulator (an unimplemented register or instruction), an exception or a panic
// in the firmware, a ROM address the stand-in does not provide, or a time limit ends the run with
// an `error` line and exit status 1.

import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { RP2040, GPIOPinState } from 'rp2040js';
import { readElf, loadIntoFlash, symbolContaining, hex, FLASH_BASE } from './elf.js';
import { StandInRom, checkBoot2, ROM_SIZE } from './rom.js';
import { Ssd1306 } from './ssd1306.js';

const BUTTON_PIN = 15;
const LED_PIN = 25;
const DISPLAY_ADDRESS = 0x3c;
const VECTOR_TABLE = FLASH_BASE + 0x100;
const TIMER_BASE_KEY = 0x40054;
const TIMELR = 0x0c;
const TIMERAWL = 0x28;
const I2C_FS_SCL_HCNT = 0x1c;
const I2C_SDA_HOLD = 0x7c;
/** Timer reads kept per lit span: the app reads its clock a few times; a delay loop, thousands. */
const MAX_TIMER_READS = 64;

const print = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);

class Failure extends Error {}

function main() {
  let board = null;
  try {
    const script = JSON.parse(readFileSync(0, 'utf8'));
    board = new Board(script, readElf(script.elf), print);
    for (const step of script.steps) board.step(step);
    board.end();
  } catch (e) {
    print({ event: 'error', message: e.message, ...(board ? board.where() : {}) });
    process.exitCode = 1;
  }
}

/** The chip and what is wired to it, running `script`'s steps on `elf` (from `readElf`, or a
 *  test's own segments and symbols); `emit` receives each event. */
export class Board {
  constructor(script, elf, emit) {
    this.emit = emit;
    this.limitNs = (script.limit_ms ?? 10000) * 1e6;
    const fail = (where) => (component, message) => {
      throw new Failure(`${where} from ${component}: ${message}`);
    };
    // Quiet failures in rp2040js become loud: it only logs what it does not implement.
    console.warn = (...args) => {
      throw new Failure(`emulator warning: ${args.join(' ')}`);
    };
    console.error = (...args) => {
      throw new Failure(`emulator error: ${args.join(' ')}`);
    };
    const mcu = new RP2040();
    mcu.logger = { debug() {}, info() {}, warn: fail('emulator warning'), error: fail('emulator error') };
    this.mcu = mcu;
    this.core = mcu.core;
    this.clock = mcu.clock;

    this.rom = new StandInRom();
    this.rom.attach(mcu); // before the flash: loading the ROM resets the chip, which erases flash
    this.elf = elf;
    loadIntoFlash(this.elf, mcu);
    checkBoot2(mcu.flash);
    // The boot stage would set up execute-in-place and then start the image from its vector
    // table; rp2040js needs no XIP set-up, so start there directly.
    this.core.VTOR = VECTOR_TABLE;
    this.core.SP = mcu.readUint32(VECTOR_TABLE);
    this.core.PC = mcu.readUint32(VECTOR_TABLE + 4) & ~1;
    this.panic = symbolContaining(this.elf, 'rust_begin_unwind');
    // The firmware enables no interrupt, so any exception (a fault included) is a failure.
    this.core.exceptionEntry = (n) => {
      throw new Failure(`the core took exception ${n}${n === 3 ? ' (HardFault)' : ''}`);
    };

    this.display = new Ssd1306(DISPLAY_ADDRESS);
    const i2c = mcu.i2c[0];
    this.display.attach(i2c, script.display !== false);
    // SDA hold time is bus timing, which rp2040js does not model (and warns about): keep the
    // value for the report instead.
    this.sdaHold = null;
    const write = i2c.writeUint32.bind(i2c);
    i2c.writeUint32 = (offset, value) => {
      if (offset === I2C_SDA_HOLD) this.sdaHold = value >>> 0;
      else write(offset, value);
    };
    this.display.onFrame = ({ busBytes, transactions }) => {
      this.frames += 1;
      this.emit({ event: 'frame', ...this.now(), bus_bytes: busBytes, transactions });
      this.flag = this.flag || this.waitingFor === 'frame';
    };

    // The button: pressed, the pin is held at ground; released, only its pull-up lifts it.
    this.pressed = false;
    const button = mcu.gpio[BUTTON_PIN];
    Object.defineProperty(button, 'rawInputValue', {
      get: () => !this.pressed && button.pullupEnabled,
      set: () => {},
    });

    // The LED, and the timer values the firmware reads while it is lit (the app's clock).
    this.led = false;
    this.timerReads = [];
    this.timerReadCount = 0;
    this.romMark = { calls: 0, bytes: 0 };
    mcu.gpio[LED_PIN].addListener((state) => {
      const on = state === GPIOPinState.High;
      if (on === this.led) return;
      this.led = on;
      const event = { event: 'led', on, ...this.now() };
      if (on) {
        this.timerReads = [];
        this.timerReadCount = 0;
        this.romMark = { calls: this.rom.calls, bytes: this.rom.bytesMoved };
      } else {
        event.timer_reads = this.timerReads;
        event.timer_read_count = this.timerReadCount;
        event.rom_calls = this.rom.calls - this.romMark.calls;
        event.rom_bytes = this.rom.bytesMoved - this.romMark.bytes;
      }
      this.emit(event);
      this.flag = this.flag || this.waitingFor === (on ? 'led_on' : 'led_off');
    });
    const timer = mcu.peripherals[TIMER_BASE_KEY];
    const read = timer.readUint32.bind(timer);
    timer.readUint32 = (offset) => {
      const value = read(offset);
      if (this.led && (offset === TIMERAWL || offset === TIMELR)) {
        this.timerReadCount += 1;
        if (this.timerReads.length < MAX_TIMER_READS) this.timerReads.push(value >>> 0);
      }
      return value;
    };

    this.frames = 0;
    this.flag = false;
    this.waitingFor = null;
    this.started = Date.now();
  }

  now() {
    return { ns: this.clock.nanos, cycles: this.core.cycles };
  }

  where() {
    return { ...this.now(), pc: hex(this.core.PC) };
  }

  step(step) {
    if ('run_ms' in step) this.runUntil(this.clock.nanos + step.run_ms * 1e6, null);
    else if ('button' in step) this.pressed = step.button === 'down';
    else if ('until' in step) {
      const deadline = this.clock.nanos + step.within_ms * 1e6;
      if (!this.runUntil(deadline, step.until)) {
        throw new Failure(`no ${step.until} within ${step.within_ms} ms`);
      }
    } else if ('capture' in step) {
      const { lit, pages } = this.display.screen();
      this.emit({ event: 'screen', name: step.capture, lit, pages: Array.from(pages), ...this.now() });
    } else throw new Failure(`unknown step ${JSON.stringify(step)}`);
  }

  /** Runs to `deadline` (ns), or until the event `what` happens; returns whether it did. */
  runUntil(deadline, what) {
    this.flag = false;
    this.waitingFor = what;
    const { core, clock, rom, panic } = this;
    const nsPerCycle = 1e9 / this.mcu.clkSys;
    if (deadline > this.limitNs) throw new Failure(`the script runs past its limit of ${this.limitNs / 1e6} ms`);
    while (clock.nanos < deadline && !this.flag) {
      if (core.waiting) {
        const next = clock.nanosToNextAlarm;
        clock.tick(next > 0 ? Math.min(next, deadline - clock.nanos) : deadline - clock.nanos);
        continue;
      }
      const before = core.cycles;
      core.executeInstruction();
      clock.tick((core.cycles - before) * nsPerCycle);
      const pc = core.PC;
      if (pc < ROM_SIZE && !rom.allows(pc)) {
        throw new Failure(`the core reached ROM address ${hex(pc)}, which the stand-in ROM does not provide`);
      }
      if (pc === panic) throw new Failure('the firmware panicked (PC at rust_begin_unwind)');
    }
    this.waitingFor = null;
    return this.flag;
  }

  end() {
    const i2c = this.mcu.i2c[0];
    this.emit({
      event: 'end',
      ...this.now(),
      frames: this.frames,
      clk_sys: this.mcu.clkSys,
      // The I2C block's fast-mode SCL counts: the bus rate the firmware set up.
      i2c_fs_hcnt: i2c.readUint32(I2C_FS_SCL_HCNT),
      i2c_fs_lcnt: i2c.readUint32(I2C_FS_SCL_HCNT + 4),
      i2c_sda_hold: this.sdaHold,
      wall_ms: Date.now() - this.started,
    });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
