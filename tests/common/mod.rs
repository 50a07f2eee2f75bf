//! Helpers the integration tests share.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// A fresh, empty scratch directory for a test, unique to this process.
pub fn scratch(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tsrnn-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the `tsrnn` binary.
pub fn tsrnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tsrnn"))
        .args(args)
        .output()
        .unwrap()
}
