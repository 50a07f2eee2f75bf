//! Language-model data: a corpus as one token stream for training and one for
//! validation, each cut into parallel contiguous streams (`batch` of them) that
//! the trainer reads in chunks of `seq_len` tokens, carrying the state from chunk
//! to chunk (truncated backpropagation through time, as char-rnn and AWD-LSTM do).
//!
//! Held-out text: a corpus with splits (IMDB) trains on `train` and `unsup` and
//! validates on `test`; a separate `test_corpus` validates on that; otherwise the
//! corpus is one text (its documents joined by newlines) whose last
//! `test_fraction` of characters is held out, the first part trained on.

use super::corpus::{Corpus, Document, Split, keep_sample};
use super::tokenizer::TextTokenizer;
use crate::train::config::{RunConfig, TextConfig};
use crate::train::derive_seed;
use anyhow::{Result, anyhow, bail};

/// A text as token ids, with the size of the text they encode.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenStream {
    /// The ids, in order.
    pub ids: Vec<u32>,
    /// UTF-8 bytes of the text.
    pub bytes: usize,
}

impl TokenStream {
    /// Tokens per byte of text: what turns a loss per token into one per byte.
    pub fn tokens_per_byte(&self) -> f64 {
        self.ids.len() as f64 / self.bytes.max(1) as f64
    }
}

/// Everything a language-model run reads.
pub struct LmData {
    /// The tokenizer (trained on the training text, or loaded).
    pub tokenizer: TextTokenizer,
    /// The training text.
    pub train: TokenStream,
    /// The held-out text.
    pub valid: TokenStream,
    /// What was read, for the log: one line.
    pub summary: String,
}

/// Reads, splits and tokenises a language-model task's corpus. `tokenizer` is
/// the one to use (a resumed or initialising checkpoint's); without it the task's
/// tokenizer is trained or loaded.
pub fn prepare(config: &RunConfig, tokenizer: Option<TextTokenizer>) -> Result<LmData> {
    let text = config
        .text
        .as_ref()
        .ok_or_else(|| anyhow!("task {} reads no corpus", config.task.name()))?;
    let started = std::time::Instant::now();
    let (train, valid) = split_text(text, config)?;
    if train.is_empty() || valid.is_empty() {
        bail!("{}: the training or held-out text is empty", text.corpus);
    }
    let read_s = started.elapsed().as_secs_f64();
    let train_pieces = pieces(&train);
    let tokenizer = match tokenizer {
        Some(t) => t,
        None => TextTokenizer::train_or_load(&text.tokenizer, text.vocab, &train_pieces)?,
    };
    let train = tokenise(&tokenizer, &train_pieces)?;
    let valid = tokenise(&tokenizer, &pieces(&valid))?;
    let needed = config.batch * 2;
    if train.ids.len() < needed || valid.ids.len() < needed {
        bail!(
            "{}: {} training and {} held-out tokens; {} streams need at least {needed} of each",
            text.corpus,
            train.ids.len(),
            valid.ids.len(),
            config.batch
        );
    }
    let summary = format!(
        "{}: {} training and {} held-out tokens ({} and {} bytes), {}; read in {read_s:.1} s, tokenised in {:.1} s",
        text.corpus,
        train.ids.len(),
        valid.ids.len(),
        train.bytes,
        valid.bytes,
        tokenizer.describe(),
        started.elapsed().as_secs_f64() - read_s,
    );
    Ok(LmData {
        tokenizer,
        train,
        valid,
        summary,
    })
}

/// The whole of a corpus as one held-out stream (what `tsrnn eval --corpus` reads).
pub fn read_stream(spec: &str, tokenizer: &TextTokenizer) -> Result<TokenStream> {
    let corpus = Corpus::read(spec)?;
    tokenise(tokenizer, &pieces(&join(corpus.documents.iter())))
}

/// The training and held-out text of a task.
fn split_text(text: &TextConfig, config: &RunConfig) -> Result<(String, String)> {
    let splits = [Split::Train, Split::Unsup, Split::Test];
    let corpus = Corpus::read_splits(&text.corpus, &splits)?;
    let seed = config.seed;
    if let Some(spec) = &text.test_corpus {
        let held = Corpus::read_splits(spec, &[Split::Test])?;
        let mut train: Vec<Document> = corpus
            .documents
            .into_iter()
            .filter(|d| d.split != Some(Split::Test))
            .collect();
        let mut valid = held.documents;
        keep_sample(&mut train, config.train_size, derive_seed(seed, 6));
        keep_sample(&mut valid, config.test_size, derive_seed(seed, 7));
        return Ok((join(train.iter()), join(valid.iter())));
    }
    if corpus.has_splits() {
        let (mut valid, mut train): (Vec<Document>, Vec<Document>) = corpus
            .documents
            .into_iter()
            .partition(|d| d.split == Some(Split::Test));
        keep_sample(&mut train, config.train_size, derive_seed(seed, 6));
        keep_sample(&mut valid, config.test_size, derive_seed(seed, 7));
        return Ok((join(train.iter()), join(valid.iter())));
    }
    let whole = join(corpus.documents.iter());
    let chars = whole.chars().count();
    let cut = chars - (chars as f64 * text.test_fraction).round() as usize;
    let at = whole
        .char_indices()
        .nth(cut)
        .map_or(whole.len(), |(i, _)| i);
    Ok((whole[..at].to_string(), whole[at..].to_string()))
}

/// Documents as one text, a newline after each that does not end in one.
fn join<'a>(docs: impl Iterator<Item = &'a Document>) -> String {
    let mut text = String::new();
    for d in docs {
        text.push_str(&d.text);
        if !d.text.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

/// A text cut after newlines into pieces of about 64 KiB, so that they can be
/// tokenised in parallel (no tokenizer here merges across a newline).
fn pieces(text: &str) -> Vec<&str> {
    const PIECE: usize = 1 << 16;
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(PIECE);
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        if end < rest.len() {
            end = rest[end..].find('\n').map_or(rest.len(), |i| end + i + 1);
        }
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

/// Token ids of a whole text, given as its [`pieces`].
fn tokenise(tokenizer: &TextTokenizer, pieces: &[&str]) -> Result<TokenStream> {
    Ok(TokenStream {
        ids: tokenizer.encode_batch(pieces)?.concat(),
        bytes: pieces.iter().map(|p| p.len()).sum(),
    })
}
