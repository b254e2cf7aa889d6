// Drives the web page in headless Chromium for `cargo xtask test` (xtask/src/web.rs, which
// compares the results with the host app): for each scenario of the plan, a fresh page, the
// board and model it names, the presses (keys or on-screen buttons), and the canvas after boot
// and after each press. Usage: node browser.mjs URL CHROMIUM PLAN.json RESULTS.json
import { chromium } from 'playwright-core';
import { readFileSync, writeFileSync } from 'node:fs';

const [url, executablePath, planPath, resultsPath] = process.argv.slice(2);
if (!resultsPath) {
  console.error('usage: node browser.mjs URL CHROMIUM PLAN.json RESULTS.json');
  process.exit(2);
}
const plan = JSON.parse(readFileSync(planPath, 'utf8'));
const KEYS = { up: 'ArrowUp', down: 'ArrowDown', left: 'ArrowLeft', right: 'ArrowRight', select: 'Enter' };
const WAIT = { timeout: 30_000 };

// Everything the page's console, network and scripts report as going wrong.
const problems = [];

async function booted(page, n) {
  await page.waitForSelector(`body[data-boots="${n}"]`, WAIT);
}

async function capture(page) {
  return page.evaluate(() => {
    // Read through a copy made for reading (1:1, so exact), leaving the page's canvas as it is.
    const canvas = document.getElementById('screen');
    const copy = document.createElement('canvas');
    [copy.width, copy.height] = [canvas.width, canvas.height];
    const reader = copy.getContext('2d', { willReadFrequently: true });
    reader.drawImage(canvas, 0, 0);
    const pixels = reader.getImageData(0, 0, canvas.width, canvas.height).data;
    return {
      width: canvas.width,
      height: canvas.height,
      rgba: Array.from(pixels),
      micros: Number(document.getElementById('timing').dataset.micros),
    };
  });
}

// Whether the canvas is shown at a whole multiple of its pixels, without smoothing.
async function scaling(page) {
  return page.evaluate(() => {
    const canvas = document.getElementById('screen');
    const style = getComputedStyle(canvas);
    const [w, h] = [parseFloat(style.width), parseFloat(style.height)];
    return {
      imageRendering: style.imageRendering,
      width: w,
      height: h,
      pixelated: style.imageRendering === 'pixelated' && w % canvas.width === 0
        && h % canvas.height === 0 && w / canvas.width === h / canvas.height,
    };
  });
}

const browser = await chromium.launch({ executablePath, headless: true });
const results = [];
try {
  for (const scenario of plan) {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const where = scenario.name;
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') {
        problems.push(`${where}: console ${m.type()}: ${m.text()}`);
      }
    });
    page.on('pageerror', (e) => problems.push(`${where}: page error: ${e.message}`));
    page.on('crash', () => problems.push(`${where}: the page crashed`));
    page.on('requestfailed', (r) => problems.push(`${where}: request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => {
      if (r.status() >= 400) {
        problems.push(`${where}: HTTP ${r.status()} for ${r.url()}`);
      }
    });
    await page.goto(url);
    let boots = 1;
    await booted(page, boots);
    if (scenario.board !== 0) {
      await page.check(`input[name="board"][value="${scenario.board}"]`);
      await booted(page, ++boots);
    }
    if (scenario.model) {
      await page.setInputFiles('#model', scenario.model);
      await booted(page, ++boots);
    }
    const captures = [await capture(page)];
    for (const { button, key } of scenario.presses) {
      if (key) {
        await page.keyboard.press(KEYS[button]);
      } else {
        await page.click(`#pad button[data-button="${button}"]`);
      }
      captures.push(await capture(page));
    }
    const scale = await scaling(page);
    results.push({
      name: scenario.name,
      status: await page.textContent('#status'),
      notice: await page.textContent('#notice'),
      pixelated: scale.pixelated,
      scaling: scale,
      captures,
    });
    await page.close();
  }
} finally {
  await browser.close();
}
writeFileSync(resultsPath, JSON.stringify({ problems, results }));
