//! Checkpoints: a directory a run can be stopped into, resumed from, evaluated
//! from and shared.
//!
//! ```text
//! checkpoints/NAME/
//!   model.safetensors      parameters, realised weights, realisation inputs
//!   optimizer.safetensors  Adam's moments
//!   config.json            the resolved task, versions, hashes, the trainer's position
//!   tokenizer.json         the tokenizer of a text task (the `tokenizers` format)
//!   metrics.jsonl          every evaluation, one JSON object a line
//!   best/                  the same files for the best evaluation so far
//! ```
//!
//! Saving is a small journal so that a crash at any moment leaves a whole
//! checkpoint, the previous one or the new one: the new files are written and
//! synced in `.staging/`, a `.complete` marker is synced after them, and only then
//! are they renamed into place. Reading first finishes a marked journal and discards
//! an unmarked one. `config.json` records the SHA-256 of both tensor files, so a
//! truncated or corrupted file is caught on reading.

use super::config::RunConfig;
use anyhow::{Context, Result, anyhow, bail};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The model file.
pub const MODEL_FILE: &str = "model.safetensors";
/// The optimiser file.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The configuration file.
pub const CONFIG_FILE: &str = "config.json";
/// The tokenizer file of a text task.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The metrics file.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The subdirectory holding the best checkpoint so far.
pub const BEST_DIR: &str = "best";
/// The format written into `config.json`; others are refused.
pub const FORMAT: &str = "tsrnn-checkpoint/1";

const STAGING: &str = ".staging";
const COMPLETE: &str = ".complete";

/// Where the trainer is in its shuffled pass over the training set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchOrder {
    /// The current permutation of the training sequences.
    pub order: Vec<u32>,
    /// The next position in it.
    pub cursor: usize,
    /// The shuffling generator's position (a decimal u128).
    pub rng_word_pos: String,
}

/// `config.json`: everything but the tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// [`FORMAT`].
    pub format: String,
    /// The tsrnn version that wrote it.
    pub crate_version: String,
    /// The resolved task.
    pub task: RunConfig,
    /// SHA-256 of the generated training and test data.
    pub data_sha256: String,
    /// Iterations completed.
    pub iteration: usize,
    /// Training seconds so far.
    pub elapsed_s: f64,
    /// Adam's step count.
    pub optimizer_step: u64,
    /// The best test accuracy seen at an evaluation so far.
    pub best_test_accuracy: Option<f64>,
    /// The minibatch order.
    pub batch_order: BatchOrder,
    /// SHA-256 of each tensor file, by file name.
    pub files: BTreeMap<String, String>,
}

/// A checkpoint in memory.
pub struct Checkpoint {
    /// `config.json`.
    pub config: CheckpointConfig,
    /// `model.safetensors`, by tensor name.
    pub model: HashMap<String, Tensor>,
    /// `optimizer.safetensors`, by tensor name.
    pub optimizer: HashMap<String, Tensor>,
}

/// Hex SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn serialize(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let contiguous: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.contiguous()?)))
        .collect::<Result<_>>()?;
    Ok(safetensors::serialize(
        contiguous.iter().map(|(n, t)| (n.as_str(), t)),
        None,
    )?)
}

/// Writes a checkpoint into `dir` atomically (see the module documentation).
pub fn write(
    dir: &Path,
    config: &CheckpointConfig,
    model: &[(String, Tensor)],
    optimizer: &[(String, Tensor)],
    tokenizer: Option<&[u8]>,
) -> Result<()> {
    write_with_failure(dir, config, model, optimizer, tokenizer, None)
}

/// [`write`], stopping with an error after `fail_after` steps: the tests' way of
/// simulating a crash at every point of a save.
#[doc(hidden)]
pub fn write_with_failure(
    dir: &Path,
    config: &CheckpointConfig,
    model: &[(String, Tensor)],
    optimizer: &[(String, Tensor)],
    tokenizer: Option<&[u8]>,
    fail_after: Option<usize>,
) -> Result<()> {
    let model_bytes = serialize(model)?;
    let optimizer_bytes = serialize(optimizer)?;
    let mut files = vec![
        (MODEL_FILE, model_bytes.as_slice()),
        (OPTIMIZER_FILE, optimizer_bytes.as_slice()),
    ];
    files.extend(tokenizer.map(|bytes| (TOKENIZER_FILE, bytes)));
    let mut config = config.clone();
    config.files = files
        .iter()
        .map(|(name, bytes)| (name.to_string(), sha256(bytes)))
        .collect();
    let config_bytes = serde_json::to_vec_pretty(&config)?;
    // config.json last: it names the others, so it is the one renamed at the end.
    files.push((CONFIG_FILE, config_bytes.as_slice()));

    fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the checkpoint directory", dir.display()))?;
    recover(dir)?;
    let mut steps = 0;
    let mut step = || -> Result<()> {
        steps += 1;
        match fail_after {
            Some(n) if steps > n => bail!("simulated failure after {n} steps"),
            _ => Ok(()),
        }
    };
    let staging = dir.join(STAGING);
    fs::create_dir_all(&staging)
        .with_context(|| format!("{}: cannot create", staging.display()))?;
    for &(name, bytes) in &files {
        step()?;
        write_synced(&staging.join(name), bytes)?;
    }
    step()?;
    sync_dir(&staging)?;
    write_synced(&staging.join(COMPLETE), b"")?;
    sync_dir(&staging)?;
    for &(name, _) in &files {
        step()?;
        let target = dir.join(name);
        fs::rename(staging.join(name), &target)
            .with_context(|| format!("{}: cannot move into place", target.display()))?;
    }
    step()?;
    finish(dir)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file =
        File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("{}: cannot write", path.display()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("{}: cannot sync", dir.display()))
}

/// Writes a whole file atomically: a synced temporary beside it, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    write_synced(&tmp, bytes)?;
    fs::rename(&tmp, path)
        .with_context(|| format!("{}: cannot move into place", path.display()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Completes or discards an interrupted save in `dir`.
fn recover(dir: &Path) -> Result<()> {
    let staging = dir.join(STAGING);
    if !staging.exists() {
        return Ok(());
    }
    if staging.join(COMPLETE).exists() {
        // The staged set is whole: finish moving it into place.
        for name in [MODEL_FILE, OPTIMIZER_FILE, TOKENIZER_FILE, CONFIG_FILE] {
            let staged = staging.join(name);
            if staged.exists() {
                fs::rename(&staged, dir.join(name))
                    .with_context(|| format!("{}: cannot recover", staged.display()))?;
            }
        }
        finish(dir)
    } else {
        // Not whole: the files in place are the previous checkpoint, untouched.
        fs::remove_dir_all(&staging)
            .with_context(|| format!("{}: cannot remove", staging.display()))
    }
}

fn finish(dir: &Path) -> Result<()> {
    sync_dir(dir)?;
    let staging = dir.join(STAGING);
    fs::remove_dir_all(&staging)
        .with_context(|| format!("{}: cannot remove", staging.display()))?;
    sync_dir(dir)
}

/// Reads and checks `config.json` of a checkpoint directory.
pub fn read_config(dir: &Path) -> Result<CheckpointConfig> {
    if !dir.is_dir() {
        bail!("{}: no such checkpoint directory", dir.display());
    }
    recover(dir)?;
    let path = dir.join(CONFIG_FILE);
    let bytes = fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    parse_config(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Parses `config.json` bytes, refusing unknown or missing fields and other formats.
pub fn parse_config(bytes: &[u8]) -> Result<CheckpointConfig> {
    let text = std::str::from_utf8(bytes).map_err(|_| anyhow!("not UTF-8 text"))?;
    let config: CheckpointConfig = serde_json::from_str(text)?;
    if config.format != FORMAT {
        bail!("checkpoint format `{}` is not `{FORMAT}`", config.format);
    }
    config.task.validate()?;
    Ok(config)
}

/// Reads a whole checkpoint, checking every file against the hashes in `config.json`.
pub fn read(dir: &Path) -> Result<Checkpoint> {
    let config = read_config(dir)?;
    let load = |name: &str| -> Result<HashMap<String, Tensor>> {
        let path = dir.join(name);
        let bytes = fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        let want = config
            .files
            .get(name)
            .ok_or_else(|| anyhow!("{}: no hash for {name}", dir.join(CONFIG_FILE).display()))?;
        if &sha256(&bytes) != want {
            bail!(
                "{}: contents do not match the hash in config.json (truncated, corrupted, or from another save)",
                path.display()
            );
        }
        parse_tensors(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))
    };
    let model = load(MODEL_FILE)?;
    let optimizer = load(OPTIMIZER_FILE)?;
    if let Some(want) = config.files.get(TOKENIZER_FILE) {
        let path = dir.join(TOKENIZER_FILE);
        let bytes = fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        if &sha256(&bytes) != want {
            bail!(
                "{}: contents do not match the hash in config.json (truncated, corrupted, or from another save)",
                path.display()
            );
        }
    }
    Ok(Checkpoint {
        config,
        model,
        optimizer,
    })
}

/// Parses safetensors bytes into tensors.
pub fn parse_tensors(bytes: &[u8]) -> Result<HashMap<String, Tensor>> {
    Ok(candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?)
}

/// A tensor of a checkpoint file by name, checked against the shape it must have.
pub fn tensor(
    tensors: &HashMap<String, Tensor>,
    file: &Path,
    name: &str,
    shape: &[usize],
) -> Result<Tensor> {
    let t = tensors.get(name).ok_or_else(|| {
        anyhow!(
            "{}: no tensor `{name}` (a checkpoint of another network?)",
            file.display()
        )
    })?;
    if t.dims() != shape {
        bail!(
            "{}: tensor `{name}` has shape {:?}, this network needs {shape:?} (a checkpoint of another network?)",
            file.display(),
            t.dims()
        );
    }
    Ok(t.clone())
}

/// Takes the lock that keeps two runs from writing one checkpoint directory (an
/// advisory file lock, released when the holder ends, however it ends).
pub fn lock(dir: &Path) -> Result<File> {
    fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the checkpoint directory", dir.display()))?;
    let path = dir.join(".lock");
    let file = File::create(&path).with_context(|| format!("{}: cannot create", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => {
            bail!("{}: another run is writing this checkpoint", dir.display())
        }
        Err(fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("{}: cannot lock", path.display()))
        }
    }
}

/// A default checkpoint directory for a run: `checkpoints/TASK-SPACE-YYYYmmdd-HHMMSS`.
pub fn default_dir(config: &RunConfig) -> PathBuf {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    PathBuf::from("checkpoints").join(format!(
        "{}-{}-{stamp}",
        config.task.name(),
        config.space.name()
    ))
}
