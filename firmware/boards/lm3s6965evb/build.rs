//! The board's memory map for the linker, and the model blob for `firmware::include_model!`:
//! the file `MCUGAN_MODEL` names, or else the committed default model
//! (`models/lm3s6965/model.bin`).

fn main() {
    boards::build::link_memory_x(include_bytes!("memory.x"));
    boards::build::embed_model("models/lm3s6965/model.bin");
}
