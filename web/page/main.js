// The board in the page: each boot is a fresh instance of mcugan.wasm (the firmware's app, see
// web/src/lib.rs), as flashing a board restarts it; buttons and keys press its buttons and the
// canvas shows its screen, one canvas pixel per board pixel, scaled by CSS.

const WIDTH = 128;
const HEIGHT = 64;
// firmware::app::Button::ALL, in order: mcugan_press takes the index.
const BUTTONS = ['up', 'down', 'left', 'right', 'select'];
const KEYS = { ArrowUp: 'up', ArrowDown: 'down', ArrowLeft: 'left', ArrowRight: 'right', Enter: 'select' };

const canvas = document.getElementById('screen');
const context = canvas.getContext('2d');
const timing = document.getElementById('timing');
const statusLine = document.getElementById('status');
const notice = document.getElementById('notice');
const fileInput = document.getElementById('model');
const picoHint = document.getElementById('pico-hint');

// Served as it is from any static host (no streaming compile, so no MIME type to get right).
async function load() {
  const response = await fetch('mcugan.wasm');
  if (!response.ok) {
    throw new Error(`mcugan.wasm: HTTP ${response.status}`);
  }
  return WebAssembly.compile(await response.arrayBuffer());
}

let wasm;
try {
  wasm = await load();
} catch (error) {
  statusLine.textContent = `The board cannot start: ${error.message}. The page needs a web server (browsers refuse to load WebAssembly from file://).`;
  throw error;
}
const imports = { mcugan: { now_micros: () => performance.now() * 1000 } };

let board = null; // the running instance's exports
let userModel = null; // bytes of the model file chosen, if any
let boots = 0;

function chosenBoard() {
  return Number(document.querySelector('input[name="board"]:checked').value);
}

function text(exports) {
  const bytes = new Uint8Array(exports.memory.buffer, exports.mcugan_status(), exports.mcugan_status_len());
  return new TextDecoder().decode(bytes);
}

// A new instance, booted with `model` (bytes) or the built-in model; null when it refuses.
async function start(which, model) {
  const { exports } = await WebAssembly.instantiate(wasm, imports);
  if (model) {
    const at = exports.mcugan_stage(model.length);
    new Uint8Array(exports.memory.buffer, at, model.length).set(model);
  }
  if (exports.mcugan_boot(which, model ? 1 : 0)) {
    return { exports, refused: null };
  }
  return { exports: null, refused: text(exports) };
}

async function boot() {
  const which = chosenBoard();
  let { exports, refused } = await start(which, userModel);
  if (!exports) {
    notice.textContent = `${refused}; running the built-in model instead.`;
    userModel = null;
    fileInput.value = '';
    ({ exports } = await start(which, null));
  }
  board = exports;
  picoHint.hidden = which !== 1;
  draw();
  boots += 1;
  document.body.dataset.boots = String(boots);
}

function draw() {
  // A fresh view each time: the instance's memory may have grown.
  const screen = new Uint8Array(board.memory.buffer, board.mcugan_screen(), WIDTH * HEIGHT);
  const image = context.createImageData(WIDTH, HEIGHT);
  for (let i = 0; i < screen.length; i++) {
    image.data.set([screen[i], screen[i], screen[i], 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
  statusLine.textContent = text(board);
  const micros = board.mcugan_micros();
  timing.dataset.micros = String(micros);
  timing.textContent = micros < 0 ? ''
    : `Last digit: ${(micros / 1000).toFixed(1)} ms in your browser, timed by the app as on the board `
      + '(browsers round their clock to 0.1 ms).';
}

function press(name) {
  if (!board) {
    return;
  }
  if (board.mcugan_press(BUTTONS.indexOf(name))) {
    draw();
  }
}

for (const button of document.querySelectorAll('#pad button')) {
  button.addEventListener('click', () => press(button.dataset.button));
}

// The board's keys, whatever has the focus (so arrows never move the board switch instead).
window.addEventListener('keydown', (event) => {
  const name = KEYS[event.key];
  if (!name || event.altKey || event.ctrlKey || event.metaKey || event.target === fileInput) {
    return;
  }
  event.preventDefault();
  if (!event.repeat) {
    press(name);
  }
}, true);

for (const radio of document.querySelectorAll('input[name="board"]')) {
  radio.addEventListener('change', () => {
    notice.textContent = '';
    boot();
  });
}

fileInput.addEventListener('change', async () => {
  const file = fileInput.files[0];
  if (!file) {
    return;
  }
  notice.textContent = '';
  userModel = new Uint8Array(await file.arrayBuffer());
  await boot();
});

document.getElementById('builtin').addEventListener('click', () => {
  notice.textContent = '';
  userModel = null;
  fileInput.value = '';
  boot();
});

await boot();
