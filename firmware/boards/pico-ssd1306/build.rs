//! The board's memory map for the linker, and the model blob for `firmware::include_model!`:
//! the file `MCUGAN_MODEL` names, else the committed Pico model (`models/pico/model.bin`, the
//! seed-size generator), or with the `lm3s6965-model` feature the committed LM3S6965 model.

fn main() {
    boards::build::link_memory_x(include_bytes!("memory.x"));
    let which = if std::env::var_os("CARGO_FEATURE_LM3S6965_MODEL").is_some() {
        "lm3s6965"
    } else {
        "pico"
    };
    boards::build::embed_model(&format!("models/{which}/model.bin"));
}
