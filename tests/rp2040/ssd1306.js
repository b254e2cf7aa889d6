// An SSD1306 128×64 OLED on I²C, as a target device of rp2040js's I2C0: the control bytes, the
// command set the `ssd1306` crate sends (the init sequence, addressing modes, column and page
// windows) and the data stream into the 128×8-page display memory. A command outside that set,
// a read, or a state the capture does not model fails the run.

const WIDTH = 128;
const PAGES = 8;

/** Commands with the number of argument bytes each takes (from the SSD1306 datasheet's command
 *  table), for those the model accepts without acting on the picture. */
const INERT = new Map([
  [0x81, 1], // contrast
  [0xd5, 1], // clock divide ratio / oscillator
  [0xd9, 1], // pre-charge period
  [0xdb, 1], // VCOMH deselect level
  [0xe3, 0], // no-op
  [0x2e, 0], // deactivate scrolling
]);

export class Ssd1306 {
  constructor(address) {
    this.address = address;
    this.ram = new Uint8Array(WIDTH * PAGES);
    // Power-on state (datasheet: page addressing, full windows, display off).
    this.mode = 2;
    this.col = 0;
    this.page = 0;
    this.window = { c0: 0, c1: WIDTH - 1, p0: 0, p1: PAGES - 1 };
    this.on = false;
    this.chargePump = false;
    this.invert = false;
    this.allOn = false;
    this.segRemap = false;
    this.comRemap = false;
    this.mux = 63;
    this.offset = 0;
    this.startLine = 0;
    this.comPins = 0x12;
    this.pending = null; // { op, need, args }
    this.transaction = null; // { control: null | number, bytes }
    /** Bytes on the bus (address bytes included) and transactions since the last frame. */
    this.busBytes = 0;
    this.transactions = 0;
    this.onFrame = () => {};
  }

  /** Hooks the model to an `RPI2C`; with `present` false nothing answers (every address NACKs). */
  attach(i2c, present) {
    i2c.onStart = () => i2c.completeStart();
    i2c.onConnect = (address, mode) => {
      if (!present || address !== this.address) {
        i2c.completeConnect(false);
        return;
      }
      if (mode !== 0) throw new Error('the firmware read from the SSD1306, which the model does not answer');
      this.transaction = { control: null };
      this.transactions += 1;
      this.busBytes += 1;
      i2c.completeConnect(true);
    };
    i2c.onWriteByte = (byte) => {
      this.busBytes += 1;
      this.write(byte);
      i2c.completeWrite(true);
    };
    i2c.onReadByte = () => {
      throw new Error('the firmware read from the I2C bus, where only the SSD1306 model (write-only) sits');
    };
    i2c.onStop = () => {
      this.transaction = null;
      i2c.completeStop();
    };
  }

  /** One byte of a write transaction: the control byte (Co, D/C#), then commands or data. */
  write(byte) {
    const t = this.transaction;
    if (t.control === null) {
      if ((byte & 0x3f) !== 0) throw new Error(`SSD1306: control byte 0x${byte.toString(16)} has its low six bits set`);
      t.control = byte;
      return;
    }
    if (t.control & 0x40) this.data(byte);
    else this.command(byte);
    // Co = 1: one byte, then another control byte.
    if (t.control & 0x80) t.control = null;
  }

  command(byte) {
    if (this.pending) {
      this.pending.args.push(byte);
      if (this.pending.args.length === this.pending.need) {
        const { op, args } = this.pending;
        this.pending = null;
        this.apply(op, args);
      }
      return;
    }
    const need = argCount(byte);
    if (need === null) throw new Error(`SSD1306: unknown command 0x${byte.toString(16).padStart(2, '0')}`);
    if (need === 0) this.apply(byte, []);
    else this.pending = { op: byte, need, args: [] };
  }

  apply(op, args) {
    const w = this.window;
    if (INERT.has(op)) return;
    if (op === 0xae || op === 0xaf) this.on = op === 0xaf;
    else if (op === 0xa4 || op === 0xa5) this.allOn = op === 0xa5;
    else if (op === 0xa6 || op === 0xa7) this.invert = op === 0xa7;
    else if (op === 0xa0 || op === 0xa1) this.segRemap = op === 0xa1;
    else if (op === 0xc0 || op === 0xc8) this.comRemap = op === 0xc8;
    else if (op >= 0x40 && op <= 0x7f) this.startLine = op & 0x3f;
    else if (op === 0xa8) this.mux = args[0] & 0x3f;
    else if (op === 0xd3) this.offset = args[0] & 0x3f;
    else if (op === 0xda) this.comPins = args[0];
    else if (op === 0x8d) this.chargePump = (args[0] & 0x04) !== 0;
    else if (op === 0x20) {
      if ((args[0] & 3) === 3) throw new Error('SSD1306: addressing mode 3 is invalid');
      this.mode = args[0] & 3;
    } else if (op === 0x21) {
      [w.c0, w.c1] = [args[0] & 0x7f, args[1] & 0x7f];
      this.col = w.c0;
    } else if (op === 0x22) {
      [w.p0, w.p1] = [args[0] & 7, args[1] & 7];
      this.page = w.p0;
    } else if (op >= 0xb0 && op <= 0xb7) this.page = op & 7;
    else if (op <= 0x0f) this.col = (this.col & 0xf0) | op;
    else if (op <= 0x1f) this.col = (this.col & 0x0f) | ((op & 7) << 4);
    else throw new Error(`SSD1306: command 0x${op.toString(16)} is not modelled`);
  }

  /** A data byte at the address pointer, which then moves as the addressing mode says. */
  data(byte) {
    const w = this.window;
    this.ram[this.page * WIDTH + this.col] = byte;
    if (this.mode === 2) {
      this.col = this.col === WIDTH - 1 ? 0 : this.col + 1;
      return;
    }
    let wrapped = false;
    if (this.mode === 0) {
      if (this.col < w.c1) this.col += 1;
      else {
        this.col = w.c0;
        if (this.page < w.p1) this.page += 1;
        else [this.page, wrapped] = [w.p0, true];
      }
    } else {
      if (this.page < w.p1) this.page += 1;
      else {
        this.page = w.p0;
        if (this.col < w.c1) this.col += 1;
        else [this.col, wrapped] = [w.c0, true];
      }
    }
    // The whole window written: one frame (the crate sets a window for each flush).
    if (wrapped) {
      this.onFrame({ busBytes: this.busBytes, transactions: this.transactions });
      this.busBytes = 0;
      this.transactions = 0;
    }
  }

  /** What the panel shows, one bit per pixel in the page layout (byte (y / 8)·128 + x, bit y % 8),
   *  for a module whose glass reads upright with segment remap and reversed COM scan, as the
   *  common 0.96" modules are built and the crate's `Rotate0` sets. */
  screen() {
    if (!this.on || !this.chargePump) return { lit: false, pages: new Uint8Array(WIDTH * PAGES) };
    const unsupported = [];
    if (this.mux !== 63) unsupported.push(`multiplex ratio ${this.mux + 1}`);
    if (this.offset !== 0) unsupported.push(`display offset ${this.offset}`);
    if (this.startLine !== 0) unsupported.push(`start line ${this.startLine}`);
    if (this.comPins !== 0x12) unsupported.push(`COM pins 0x${this.comPins.toString(16)} (a 128×64 panel needs 0x12)`);
    if (unsupported.length) throw new Error(`SSD1306: the capture does not model ${unsupported.join(', ')}`);
    const out = new Uint8Array(WIDTH * PAGES);
    for (let y = 0; y < 64; y++) {
      const row = this.comRemap ? y : 63 - y;
      for (let x = 0; x < WIDTH; x++) {
        const col = this.segRemap ? x : WIDTH - 1 - x;
        let bit = (this.ram[(row >> 3) * WIDTH + col] >> (row & 7)) & 1;
        if (this.invert) bit ^= 1;
        if (this.allOn) bit = 1;
        if (bit) out[(y >> 3) * WIDTH + x] |= 1 << (y & 7);
      }
    }
    return { lit: true, pages: out };
  }
}

function argCount(op) {
  if (INERT.has(op)) return INERT.get(op);
  if ([0xa8, 0xd3, 0xda, 0x8d, 0x20].includes(op)) return 1;
  if (op === 0x21 || op === 0x22) return 2;
  if (op >= 0xa4 && op <= 0xa7) return 0;
  if (op === 0xae || op === 0xaf || op === 0xa0 || op === 0xa1 || op === 0xc0 || op === 0xc8) return 0;
  if ((op >= 0x40 && op <= 0x7f) || (op >= 0xb0 && op <= 0xb7) || op <= 0x1f) return 0;
  return null;
}
