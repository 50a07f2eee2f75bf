//! Tokenizers: trained on a corpus or loaded, always through the `tokenizers` crate
//! and always saved as a standard `tokenizer.json` (Python's
//! `tokenizers.Tokenizer.from_file` reads it).
//!
//! # Trained tokenizers
//!
//! Every kind starts with the same normalizer step: each HTML line break matching
//! the regex `(?i)<br\s*/?>` (`<br />`, `<br/>`, `<br>`, any case) becomes one
//! space, since IMDB reviews are full of them. Every kind has `[PAD]` at id 0 and
//! `[UNK]` at id 1, as special tokens (skipped when decoding), and `vocab_size`
//! counts them. Training is deterministic: the same texts give the same
//! `tokenizer.json` bytes.
//!
//! - `char`: after the line-break step, every Unicode scalar value (`char`) is a
//!   token, spaces, tabs and newlines included (pre-tokenizer `Split` on `[\s\S]`,
//!   isolated). The vocabulary is `[PAD]`, `[UNK]`, then the characters of the
//!   training texts by descending count, ties by code point, up to `vocab_size`;
//!   any other character encodes to `[UNK]`. Decoding concatenates (a `Fuse`
//!   decoder), so `decode(encode(s)) == s` when every character of `s` is in the
//!   vocabulary and `s` holds no `<br>`.
//! - `word`: after the line-break step the text is lowercased (Unicode lowercase),
//!   then every character that is not a letter (`\p{L}`), combining mark (`\p{M}`),
//!   number (`\p{N}`), ASCII apostrophe `'` or whitespace (`\s`) becomes a space, so
//!   punctuation is dropped; words are the maximal runs of non-whitespace. The
//!   vocabulary is `[PAD]`, `[UNK]`, then the `vocab_size - 2` most frequent words,
//!   ties broken by the word's bytes; any other word encodes to `[UNK]`. Decoding
//!   joins words with single spaces.
//! - `bpe`: byte-level BPE as in GPT-2: the line-break step, then the `ByteLevel`
//!   pre-tokenizer (GPT-2 split regex, no prefix space) and decoder, trained by
//!   `BpeTrainer` with all 256 byte symbols in the initial alphabet, so any text
//!   encodes without `[UNK]` and `decode(encode(s)) == s` for any `s` without
//!   `<br>`. `vocab_size` (at least 258) counts the specials, the 256 byte symbols
//!   and the merges.
//!
//! The specials are matched in input text like any `tokenizers` added token: a
//! literal `[PAD]` or `[UNK]` in a text encodes to that token.
//!
//! # Loaded tokenizers
//!
//! A loaded `tokenizer.json` (a path, or `hf:OWNER/NAME[@REVISION]` from the Hub)
//! is used as it is, except that its padding and truncation settings are dropped:
//! the pipeline wants every text's full id sequence and pads batches itself.

use crate::text::hub::{HubFile, HubKind};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::models::wordlevel::{WordLevel, WordLevelTrainer};
use tokenizers::normalizers::{Lowercase, Replace, Sequence};
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::{
    AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, SplitDelimiterBehavior, Tokenizer,
};

/// How a tokenizer is made from a corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenizerKind {
    /// One token per Unicode character.
    Char,
    /// One token per lowercased word, punctuation dropped.
    Word,
    /// Byte-level byte-pair encoding (GPT-2 style).
    Bpe,
}

impl TokenizerKind {
    /// The kind's name as written in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TokenizerKind::Char => "char",
            TokenizerKind::Word => "word",
            TokenizerKind::Bpe => "bpe",
        }
    }
}

/// The padding token; id 0 in tokenizers we train.
pub const PAD: &str = "[PAD]";
/// The unknown token; id 1 in tokenizers we train.
pub const UNK: &str = "[UNK]";

/// HTML line breaks, case-insensitive since hand-written HTML varies.
const LINE_BREAK: &str = r"(?i)<br\s*/?>";
/// What the word level drops: anything but letters, marks, numbers, `'` and
/// whitespace. Marks are kept so that decomposed accents stay in their word.
const NOT_WORD_CHAR: &str = r"[^\p{L}\p{M}\p{N}'\s]";
/// One character, newlines included (`.` would skip them).
const ANY_CHAR: &str = r"[\s\S]";
/// The byte-level alphabet: 2 specials and 256 byte symbols.
const MIN_BPE_VOCAB: usize = 258;

/// A tokenizer: a `tokenizers::Tokenizer` plus what the pipeline needs to know of it.
#[derive(Clone, Debug)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// Computed once: both need a walk over the vocabulary.
    vocab_size: usize,
    pad_id: Option<u32>,
}

impl TextTokenizer {
    /// Trains a tokenizer of this kind on `texts` (the training split), with at most
    /// `vocab_size` entries including [PAD] and [UNK].
    pub fn train(kind: TokenizerKind, vocab_size: usize, texts: &[&str]) -> Result<Self> {
        if texts.is_empty() {
            bail!("cannot train a {} tokenizer on no texts", kind.name());
        }
        let min = match kind {
            TokenizerKind::Char | TokenizerKind::Word => 3,
            TokenizerKind::Bpe => MIN_BPE_VOCAB,
        };
        if vocab_size < min {
            bail!(
                "a {} tokenizer needs a vocabulary of at least {min} entries, not {vocab_size}",
                kind.name()
            );
        }
        let specials = vec![AddedToken::from(PAD, true), AddedToken::from(UNK, true)];
        let line_break = replace(LINE_BREAK, " ")?;
        let (mut tokenizer, mut trainer) = match kind {
            TokenizerKind::Char | TokenizerKind::Word => {
                let model = WordLevel::builder()
                    .unk_token(UNK.to_string())
                    .build()
                    .map_err(|e| anyhow!("word-level model: {e}"))?;
                let mut t = Tokenizer::new(model);
                if kind == TokenizerKind::Char {
                    t.with_normalizer(Some(line_break))
                        .map_err(|e| anyhow!("{e}"))?;
                    let split = Split::new(
                        SplitPattern::Regex(ANY_CHAR.into()),
                        SplitDelimiterBehavior::Isolated,
                        false,
                    )
                    .map_err(|e| anyhow!("character split: {e}"))?;
                    t.with_pre_tokenizer(Some(split));
                    t.with_decoder(Some(Fuse::new()));
                } else {
                    let steps: Vec<NormalizerWrapper> = vec![
                        line_break.into(),
                        Lowercase.into(),
                        replace(NOT_WORD_CHAR, " ")?.into(),
                    ];
                    t.with_normalizer(Some(Sequence::new(steps)))
                        .map_err(|e| anyhow!("{e}"))?;
                    t.with_pre_tokenizer(Some(WhitespaceSplit));
                    // No decoder: `tokenizers` then joins tokens with single spaces.
                }
                // Its sort is by descending count, then by token: deterministic.
                let trainer = WordLevelTrainer::builder()
                    .vocab_size(vocab_size)
                    .show_progress(false)
                    .special_tokens(specials)
                    .build()
                    .map_err(|e| anyhow!("word-level trainer: {e}"))?;
                (t, TrainerWrapper::WordLevelTrainer(trainer))
            }
            TokenizerKind::Bpe => {
                let mut t = Tokenizer::new(BPE::default());
                t.with_normalizer(Some(line_break))
                    .map_err(|e| anyhow!("{e}"))?;
                let byte_level = ByteLevel::new(false, true, true);
                t.with_pre_tokenizer(Some(byte_level));
                t.with_decoder(Some(byte_level));
                let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
                let trainer = BpeTrainer::builder()
                    .vocab_size(vocab_size)
                    .show_progress(false)
                    .special_tokens(specials)
                    .initial_alphabet(alphabet)
                    .build();
                (t, TrainerWrapper::BpeTrainer(trainer))
            }
        };
        tokenizer
            .train(&mut trainer, texts.iter().copied())
            .map_err(|e| anyhow!("training the {} tokenizer: {e}", kind.name()))?;
        let made = Self::from_inner(tokenizer);
        // The pipeline relies on these ids; a changed `tokenizers` must not move them.
        if made.token_to_id(PAD) != Some(0) || made.token_to_id(UNK) != Some(1) {
            bail!(
                "the trained {} tokenizer lost [PAD]=0, [UNK]=1",
                kind.name()
            );
        }
        Ok(made)
    }

    /// A tokenizer as a task names it: `word`, `char` or `bpe` trained on `texts`
    /// with `vocab_size` entries, or else loaded (see [`TextTokenizer::load`]).
    pub fn train_or_load(spec: &str, vocab_size: usize, texts: &[&str]) -> Result<Self> {
        let kind = match spec {
            "word" => TokenizerKind::Word,
            "char" => TokenizerKind::Char,
            "bpe" => TokenizerKind::Bpe,
            _ => return Self::load(spec),
        };
        Self::train(kind, vocab_size, texts)
    }

    /// Loads `tokenizer.json` from a path, or from the Hub with `hf:OWNER/NAME` or
    /// `hf:NAME` (optionally `@REVISION`), fetching `tokenizer.json` of that model
    /// repo through the hf-hub cache.
    ///
    /// A path that is a directory means its `tokenizer.json`; `hf://OWNER/NAME/PATH`
    /// names any file of a Hub repository (see [`HubFile::parse`]).
    pub fn load(spec: &str) -> Result<Self> {
        Self::load_with_cache(
            spec,
            &crate::text::hub::cache(),
            crate::text::hub::offline(),
        )
    }

    /// `load` with the Hub cache and offline mode given (tests use this).
    pub fn load_with_cache(spec: &str, cache: &hf_hub::Cache, offline: bool) -> Result<Self> {
        match hub_file(spec)? {
            Some(file) => {
                let path = file.fetch_in(cache, offline)?;
                Self::load_file(&path).with_context(|| format!("loading the tokenizer {spec}"))
            }
            None => {
                let mut path = PathBuf::from(spec);
                if path.is_dir() {
                    path.push("tokenizer.json");
                }
                Self::load_file(&path)
            }
        }
    }

    fn load_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("{}: cannot read the tokenizer.json: {e}", path.display()))?;
        let mut inner: Tokenizer = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{}: not a tokenizer.json: {e}", path.display()))?;
        // Read the padding token before dropping the padding settings.
        let padding_token = inner.get_padding().map(|p| (p.pad_token.clone(), p.pad_id));
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let mut made = Self::from_inner(inner);
        if made.pad_id.is_none()
            && let Some((token, id)) = padding_token
        {
            made.pad_id = Some(made.token_to_id(&token).unwrap_or(id));
        }
        if made.pad_id.is_none() {
            made.pad_id = made.token_to_id("<pad>");
        }
        Ok(made)
    }

    fn from_inner(inner: Tokenizer) -> Self {
        // Ids may have holes (or added tokens past the model's range): the embedding
        // needs a row for the largest id.
        let vocab = inner.get_vocab(true);
        let rows = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let vocab_size = rows.max(inner.get_vocab_size(true));
        let pad_id = inner.token_to_id(PAD);
        TextTokenizer {
            inner,
            vocab_size,
            pad_id,
        }
    }

    /// Writes it as `tokenizer.json` at `path`, atomically (write a temp file in the
    /// same dir, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self
            .inner
            .to_string(true)
            .map_err(|e| anyhow!("{}: cannot serialise the tokenizer: {e}", path.display()))?;
        write_atomically(path, json.as_bytes())
    }

    /// Token ids of each text, no special tokens added; in parallel (the
    /// `tokenizers` batch encoder runs on rayon).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encodings = self
            .inner
            .encode_batch(texts.to_vec(), false)
            .map_err(|e| anyhow!("encoding: {e}"))?;
        Ok(encodings
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }

    /// Ids of one text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("encoding: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of ids (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| anyhow!("decoding: {e}"))
    }

    /// Entries of the vocabulary, added tokens included (the embedding's rows): one
    /// more than the largest id.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The padding token's id: [PAD], else the tokenizer's own padding token (e.g. a
    /// loaded BERT's), else `<pad>`; None if it has none.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad_id
    }

    /// Rows an embedding of this tokenizer's ids needs: the vocabulary, and one more
    /// for padding when the tokenizer has no padding token of its own.
    pub fn embedding_rows(&self) -> usize {
        self.vocab_size() + usize::from(self.pad_id.is_none())
    }

    /// The id padding is written with: the padding token, else the extra row
    /// [`TextTokenizer::embedding_rows`] counts.
    pub fn padding_id(&self) -> u32 {
        self.pad_id.unwrap_or(self.vocab_size() as u32)
    }

    /// The id of a token, if in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The tokenizer itself.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// A short description for logs, e.g. "word-level, 5000 entries".
    pub fn describe(&self) -> String {
        // Read off the pipeline, so a saved and reloaded tokenizer reads the same.
        let kind = match self.inner.get_model() {
            ModelWrapper::WordLevel(_) => match self.inner.get_decoder() {
                Some(DecoderWrapper::Fuse(_)) => "character-level",
                _ => "word-level",
            },
            ModelWrapper::BPE(_) => match self.inner.get_decoder() {
                Some(DecoderWrapper::ByteLevel(_)) => "byte-level BPE",
                _ => "BPE",
            },
            ModelWrapper::WordPiece(_) => "WordPiece",
            ModelWrapper::Unigram(_) => "Unigram",
        };
        format!("{kind}, {} entries", self.vocab_size)
    }
}

/// A `Replace` normalizer on a regex.
fn replace(pattern: &str, content: &str) -> Result<Replace> {
    Replace::new(
        tokenizers::normalizers::replace::ReplacePattern::Regex(pattern.into()),
        content,
    )
    .map_err(|e| anyhow!("normalizer regex {pattern}: {e}"))
}

/// The Hub file a spec names, or None for a local path.
fn hub_file(spec: &str) -> Result<Option<HubFile>> {
    if spec.starts_with("hf://") {
        return HubFile::parse(spec).map(Some);
    }
    let Some(rest) = spec.strip_prefix("hf:") else {
        return Ok(None);
    };
    let (repo, revision) = match rest.split_once('@') {
        Some((repo, revision)) => (repo, revision),
        None => (rest, "main"),
    };
    let parts: Vec<&str> = repo.split('/').collect();
    if revision.is_empty() || parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        bail!("{spec}: a Hub tokenizer is written hf:OWNER/NAME or hf:NAME, optionally @REVISION");
    }
    Ok(Some(HubFile {
        kind: HubKind::Model,
        repo: repo.to_string(),
        path: "tokenizer.json".to_string(),
        revision: revision.to_string(),
    }))
}

/// Writes `bytes` to `path` through a temp file in the same directory, so that a
/// reader never sees a half-written file and a crash leaves the old one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        bail!("{}: cannot write: {e}", path.display());
    }
    // Persist the rename itself; not every platform can open a directory, so best effort.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
