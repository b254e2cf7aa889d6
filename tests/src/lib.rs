//! End-to-end tests of the whole chain, in `tests/`: the board firmware booted in QEMU (the
//! LM3S6965) or rp2040js (the Pico), buttons pressed, the screen captured and compared, and the committed expected outputs they are
//! compared with ([`golden`]). The machinery they drive is the `harness` crate.

pub mod golden;
