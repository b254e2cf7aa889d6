//! The model blob, built into flash (build.rs picks the file; the app validates it before use).

firmware::include_model!();
