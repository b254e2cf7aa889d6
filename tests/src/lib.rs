//! End-to-end tests of the whole chain, in `tests/`: the board firmware booted in QEMU, buttons
//! pressed, the screen captured and compared, and the committed expected outputs they are
//! compared with ([`golden`]). The machinery they drive is the `harness` crate.

pub mod golden;
