//! At boot, with logs on: run the model once with each of the engine's kernels, log the ticks
//! each took (instructions per MAC under QEMU's `-icount`) and check that both give the same
//! image: a power-on check of the fast kernel against the definition, on the real model.

use firmware::engine::{Kernel, forward};
use firmware::format::{MAX_CLASSES, MAX_LATENT, MAX_SIDE, Model};
use firmware::noise::{Choice, draw, model_input};

use crate::log::log;
use crate::timing::Clock;

/// Ticks and MACs of one forward pass.
struct Run {
    ticks: u64,
    macs: u32,
}

/// Activation buffers and both kernels' images: a static (counted by `cargo xtask size`), so
/// the stack stays as deep as the app alone makes it.
pub struct Scratch<const W: usize> {
    a: [u8; W],
    b: [u8; W],
    outputs: [[u8; MAX_SIDE * MAX_SIDE]; 2],
}

impl<const W: usize> Scratch<W> {
    pub const fn new() -> Self {
        Scratch {
            a: [0; W],
            b: [0; W],
            outputs: [[0; MAX_SIDE * MAX_SIDE]; 2],
        }
    }
}

/// Logs one line per kernel and whether their outputs agree.
pub fn kernels<const W: usize>(model: &Model<'_>, clock: &Clock, scratch: &mut Scratch<W>) {
    let (mut z, mut dir) = ([0i32; MAX_LATENT], [0i32; MAX_LATENT]);
    let latent = usize::from(model.header.latent).min(MAX_LATENT);
    let classes = usize::from(model.header.classes);
    let class = draw(
        0,
        classes,
        Choice::Any,
        &mut z[..latent],
        &mut dir[..latent],
    );
    let mut input = [0i8; MAX_LATENT + MAX_CLASSES];
    let Some(input) = input.get_mut(..model.input_len()) else {
        log!("mcugan: selftest error=input");
        return;
    };
    if model_input(model, &z, &dir, 0, class, input).is_err() {
        log!("mcugan: selftest error=input");
        return;
    }
    let Scratch { a, b, outputs } = scratch;
    let mut runs = [Run { ticks: 0, macs: 0 }, Run { ticks: 0, macs: 0 }];
    for ((kernel, out), run) in [Kernel::Reference, Kernel::Fast]
        .into_iter()
        .zip(outputs.iter_mut())
        .zip(runs.iter_mut())
    {
        let Some(out) = out.get_mut(..model.pixels()) else {
            log!("mcugan: selftest error=image");
            return;
        };
        let start = clock.ticks();
        let result = forward(model, kernel, input, a, b, out);
        run.ticks = clock.ticks() - start;
        match result {
            Ok(stats) => run.macs = stats.macs,
            Err(e) => {
                log!(
                    "mcugan: selftest kernel={:?} error={:?}",
                    kernel,
                    e.as_str()
                );
                return;
            }
        }
        log!(
            "mcugan: selftest kernel={:?} ticks={} macs={}",
            kernel,
            run.ticks,
            run.macs
        );
    }
    let agree = outputs[0] == outputs[1];
    log!("mcugan: selftest kernels_agree={}", agree);
}
