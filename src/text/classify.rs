//! Text classification data: a corpus split into training and test texts, a
//! tokenizer trained on the training texts (or loaded), and every text cut or
//! padded to the task's length, labelled at its last step.
//!
//! Padding and truncation follow the paper (Keras' `pad_sequences`): a text keeps
//! its last `seq_len` tokens, and a shorter one is padded in front, so the label is
//! read right after the text's last token.

use super::corpus::{self, Corpus, Document, Split, keep_sample};
use super::tokenizer::TextTokenizer;
use crate::data::Dataset;
use crate::train::config::{RunConfig, TextConfig};
use crate::train::derive_seed;
use anyhow::{Result, anyhow, bail};

/// Everything a text classification run reads.
pub struct TextData {
    /// The tokenizer (trained on the training texts, or loaded).
    pub tokenizer: TextTokenizer,
    /// Training texts, tokenised and padded.
    pub train: Dataset,
    /// Test texts, tokenised and padded.
    pub test: Dataset,
    /// The first `rsl` tokens of the first `rbs` training texts (padded in front
    /// when shorter): the realisation inputs' `prefixes` option.
    pub prefixes: Dataset,
    /// Class names; class `i` is `labels[i]`.
    pub labels: Vec<String>,
    /// What was read, for the log: one line.
    pub summary: String,
}

/// Reads, splits and tokenises a text task's corpus. `tokenizer` is the one to use
/// (a resumed run's); without it the task's tokenizer is trained or loaded.
pub fn prepare(config: &RunConfig, tokenizer: Option<TextTokenizer>) -> Result<TextData> {
    let text = config
        .text
        .as_ref()
        .ok_or_else(|| anyhow!("task {} reads no corpus", config.task.name()))?;
    let started = std::time::Instant::now();
    let (mut train, mut test, replaced) = split_corpus(text, config.seed)?;
    let read_s = started.elapsed().as_secs_f64();
    keep_sample(&mut train, config.train_size, derive_seed(config.seed, 6));
    keep_sample(&mut test, config.test_size, derive_seed(config.seed, 7));
    if train.len() < config.batch {
        bail!(
            "{}: {} training texts, fewer than one minibatch ({})",
            text.corpus,
            train.len(),
            config.batch
        );
    }
    if test.is_empty() {
        bail!(
            "{}: no test texts",
            text.test_corpus.as_ref().unwrap_or(&text.corpus)
        );
    }
    let labels = class_names(&train, &text.corpus, text.classes)?;
    let train_texts: Vec<&str> = train.iter().map(|d| d.text.as_str()).collect();
    let tokenizer = match tokenizer {
        Some(t) => t,
        None => TextTokenizer::train_or_load(&text.tokenizer, text.vocab, &train_texts)?,
    };
    let pad = tokenizer.padding_id();
    let encode = |docs: &[Document], source: &str| -> Result<(Vec<Vec<u32>>, Vec<u32>)> {
        let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
        let ids = tokenizer.encode_batch(&texts)?;
        let classes = docs
            .iter()
            .map(|d| class_of(d, &labels, source))
            .collect::<Result<_>>()?;
        Ok((ids, classes))
    };
    let (train_ids, train_labels) = encode(&train, &text.corpus)?;
    let (test_ids, test_labels) =
        encode(&test, text.test_corpus.as_deref().unwrap_or(&text.corpus))?;
    let len = config.seq_len;
    let padded = |ids: &[Vec<u32>]| -> Vec<Vec<u32>> {
        ids.iter().map(|s| pad_front(s, len, pad)).collect()
    };
    let heads: Vec<Vec<u32>> = train_ids
        .iter()
        .take(config.rbs)
        .map(|s| pad_front(&s[..s.len().min(config.rsl)], config.rsl, pad))
        .collect();
    let tokenise_s = started.elapsed().as_secs_f64() - read_s;
    let mean_tokens =
        train_ids.iter().map(Vec::len).sum::<usize>() as f64 / train_ids.len().max(1) as f64;
    let summary = format!(
        "{}: {} training and {} test texts, classes {:?}, {}, {:.0} tokens a text on average{}; read in {read_s:.1} s, tokenised in {tokenise_s:.1} s",
        text.corpus,
        train.len(),
        test.len(),
        labels,
        tokenizer.describe(),
        mean_tokens,
        if replaced > 0 {
            format!(", {replaced} bytes not UTF-8 decoded as Latin-1")
        } else {
            String::new()
        }
    );
    Ok(TextData {
        train: Dataset::from_tokens(&padded(&train_ids), &train_labels, len),
        test: Dataset::from_tokens(&padded(&test_ids), &test_labels, len),
        prefixes: Dataset::from_tokens(&heads, &vec![0; heads.len()], config.rsl),
        tokenizer,
        labels,
        summary,
    })
}

/// The last `len` tokens of `ids`, padded in front with `pad` when shorter.
pub fn pad_front(ids: &[u32], len: usize, pad: u32) -> Vec<u32> {
    let kept = &ids[ids.len().saturating_sub(len)..];
    let mut out = vec![pad; len - kept.len()];
    out.extend_from_slice(kept);
    out
}

/// Training and test documents: the test corpus if one is named, else the corpus's
/// own splits, else a seeded split of `test_fraction`. Also the bytes decoded by
/// the Latin-1 fallback.
fn split_corpus(text: &TextConfig, seed: u64) -> Result<(Vec<Document>, Vec<Document>, usize)> {
    let wanted = [Split::Train, Split::Test];
    let corpus = Corpus::read_splits(&text.corpus, &wanted)?;
    let mut replaced = corpus.replaced_bytes;
    let in_train = |d: &Document| matches!(d.split, None | Some(Split::Train));
    if let Some(spec) = &text.test_corpus {
        let tests = Corpus::read_splits(spec, &wanted)?;
        replaced += tests.replaced_bytes;
        let train = corpus.documents.into_iter().filter(in_train).collect();
        let test = tests
            .documents
            .into_iter()
            .filter(|d| matches!(d.split, None | Some(Split::Test)))
            .collect();
        return Ok((train, test, replaced));
    }
    if corpus.has_splits() {
        let (train, test) = corpus
            .documents
            .into_iter()
            .filter(|d| d.split != Some(Split::Unsup))
            .partition(in_train);
        return Ok((train, test, replaced));
    }
    let (train_idx, _, test_idx) = corpus::split_indices(
        corpus.documents.len(),
        0.0,
        text.test_fraction,
        derive_seed(seed, 5),
    )?;
    let pick = |idx: &[usize]| -> Vec<Document> {
        idx.iter().map(|&i| corpus.documents[i].clone()).collect()
    };
    Ok((pick(&train_idx), pick(&test_idx), replaced))
}

/// The sorted label names of the training texts, checked against `classes`.
fn class_names(train: &[Document], source: &str, classes: usize) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for (i, d) in train.iter().enumerate() {
        let Some(label) = &d.label else {
            bail!(
                "{source}: text {} has no label (classify needs labelled texts)",
                i + 1
            );
        };
        if !names.contains(label) {
            names.push(label.clone());
        }
    }
    names.sort();
    if names.len() != classes {
        bail!(
            "{source}: the training texts carry {} labels {:?}, the task has classes = {classes}",
            names.len(),
            names
        );
    }
    Ok(names)
}

fn class_of(d: &Document, labels: &[String], source: &str) -> Result<u32> {
    let label = d
        .label
        .as_ref()
        .ok_or_else(|| anyhow!("{source}: a text has no label (classify needs labelled texts)"))?;
    labels
        .iter()
        .position(|l| l == label)
        .map(|i| i as u32)
        .ok_or_else(|| {
            anyhow!("{source}: label `{label}` is not among the training labels {labels:?}")
        })
}
