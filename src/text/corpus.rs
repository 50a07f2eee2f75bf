//! Corpus readers: one spec names a corpus, and a small adapter per source turns
//! it into [`Document`]s in a deterministic order.
//!
//! A spec is one of:
//!
//! 1. `hf://datasets/OWNER/NAME/PATH` (or `hf://OWNER/NAME/PATH` for a model
//!    repository, either with an optional `@REVISION` after the name): a file on
//!    the Hugging Face Hub, taken from the standard cache or downloaded into it
//!    (see [`crate::text::hub`]), then read by the rules below by its file name.
//! 2. A path with one `{a,b,...}` brace group, e.g.
//!    `corpora/rt-polarity/rt-polarity.{pos,neg}`: one file per label, the label
//!    being the alternative; every non-blank line of each file is a document.
//!    Documents come in label order as written, then line order; no split. The
//!    expanded names may themselves be `hf://` specs.
//! 3. A path ending in `.jsonl`: JSON lines, each an object with a string
//!    `text`, optionally a `label` (a string, integer or bool, kept as its string
//!    form) and optionally a `split` (`"train"`, `"test"` or `"unsup"`); other
//!    fields are ignored and blank lines skipped.
//! 4. A path ending in `.tar.gz` or `.tgz`: the IMDB archive (`aclImdb_v1.tar.gz`)
//!    streamed without extracting. Reviews are the entries
//!    `[aclImdb/]{train,test}/{pos,neg}/ID_RATING.txt` and
//!    `[aclImdb/]train/unsup/ID_RATING.txt`, labelled `pos`, `neg` or (unsup) none,
//!    with the split their directory names. Other entries are ignored.
//! 5. A directory in the IMDB layout (it has `train/pos`, `test/pos` or
//!    `aclImdb/train/pos`): the same documents as the archive.
//! 6. Any other directory: every `*.txt` file below it, sorted by path, one
//!    document each, with no label and no split.
//! 7. Any other path: a plain text file, read whole as one document.
//!
//! IMDB documents are ordered by split (train, test, unsup), label, the numeric
//! review id, then file name, so that neither archive order nor directory listing
//! order matters. Text is UTF-8; a byte that is not valid UTF-8 is read as
//! Latin-1 (see [`decode`]) and counted in [`Corpus::replaced_bytes`], because
//! older corpora such as rt-polarity are Latin-1. Every error names the file.

use crate::text::hub::{self, HubFile};
use anyhow::{Result, anyhow, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde_json::Value;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

/// Which part of a corpus a document belongs to, when the corpus says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training data.
    Train,
    /// Held-out test data.
    Test,
    /// Unlabelled data (IMDB's 50,000 `unsup` reviews).
    Unsup,
}

/// Every split, in the order IMDB documents are sorted by.
const ALL_SPLITS: [Split; 3] = [Split::Train, Split::Test, Split::Unsup];

impl Split {
    fn parse(name: &str) -> Option<Split> {
        match name {
            "train" => Some(Split::Train),
            "test" => Some(Split::Test),
            "unsup" => Some(Split::Unsup),
            _ => None,
        }
    }

    fn rank(self) -> u8 {
        self as u8
    }
}

/// One text, with its label when the source gives one.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The text itself.
    pub text: String,
    /// The label, in its string form (`"pos"`, `"1"`, ...), if the source has one.
    pub label: Option<String>,
    /// The split, if the source has one.
    pub split: Option<Split>,
}

/// The documents of a corpus, in a deterministic order.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// The documents, in source order (see the module docs).
    pub documents: Vec<Document>,
    /// Bytes that were not valid UTF-8 and were decoded by the Latin-1 fallback.
    pub replaced_bytes: usize,
    /// The spec it was read from (for messages).
    pub spec: String,
}

impl Corpus {
    /// Reads the corpus a spec names (see the module docs for the forms).
    pub fn read(spec: &str) -> Result<Corpus> {
        Corpus::read_splits(spec, &[])
    }

    /// As `read`, but an IMDB source reads only these splits (skipping e.g. the
    /// 50,000 `unsup` reviews); other sources ignore `splits`. No splits means all.
    pub fn read_splits(spec: &str, splits: &[Split]) -> Result<Corpus> {
        read_with_cache(spec, splits, &hub::cache(), hub::offline())
    }

    /// The documents of one split (documents with `split == Some(which)`).
    pub fn split(&self, which: Split) -> Vec<&Document> {
        self.documents
            .iter()
            .filter(|d| d.split == Some(which))
            .collect()
    }

    /// Whether any document carries a split.
    pub fn has_splits(&self) -> bool {
        self.documents.iter().any(|d| d.split.is_some())
    }
}

/// As [`Corpus::read_splits`], with the Hub cache and offline mode given rather
/// than taken from the environment (so tests need not set variables).
pub fn read_with_cache(
    spec: &str,
    splits: &[Split],
    cache: &hf_hub::Cache,
    offline: bool,
) -> Result<Corpus> {
    let splits = if splits.is_empty() {
        &ALL_SPLITS[..]
    } else {
        splits
    };
    let hub = HubAccess { cache, offline };
    let (documents, replaced_bytes) = match expand_braces(spec)? {
        Some(files) => read_labelled_files(&files, &hub)?,
        None => read_source(&hub.locate(spec)?, splits)?,
    };
    Ok(Corpus {
        documents,
        replaced_bytes,
        spec: spec.to_string(),
    })
}

/// Decodes bytes as UTF-8; each byte that is not part of valid UTF-8 is read as
/// Latin-1 (ISO-8859-1, so byte 0xE9 becomes 'é'). Returns the text and the count
/// of bytes so decoded.
pub fn decode(bytes: &[u8]) -> (String, usize) {
    let mut text = String::with_capacity(bytes.len());
    let mut replaced = 0;
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        // Latin-1 is the first 256 code points, so a byte is its own char.
        text.extend(chunk.invalid().iter().map(|&b| char::from(b)));
        replaced += chunk.invalid().len();
    }
    (text, replaced)
}

/// A deterministic seeded split of `n` items into (train, validation, test) index
/// lists: a ChaCha8 shuffle of 0..n seeded with `seed`, the first round(n·test) to
/// test, the next round(n·validation) to validation, the rest to train; each list
/// sorted ascending. Errors if fractions are negative or sum to ≥ 1.
pub fn split_indices(
    n: usize,
    validation: f64,
    test: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>, Vec<usize>)> {
    // Written so that NaN fails too.
    if !(validation >= 0.0 && test >= 0.0 && validation + test < 1.0) {
        bail!(
            "validation {validation} and test {test} fractions must be non-negative and sum to less than 1"
        );
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    // Each rounding adds under one half and the fractions sum below 1, so the
    // counts never exceed n; `min` only guards the arithmetic.
    let n_test = ((n as f64 * test).round() as usize).min(n);
    let n_validation = ((n as f64 * validation).round() as usize).min(n - n_test);
    let sorted = |part: &[usize]| {
        let mut part = part.to_vec();
        part.sort_unstable();
        part
    };
    let (test_part, rest) = order.split_at(n_test);
    let (validation_part, train_part) = rest.split_at(n_validation);
    Ok((
        sorted(train_part),
        sorted(validation_part),
        sorted(test_part),
    ))
}

/// Keeps a seeded random `limit` of the documents (all when `limit` is 0 or at
/// least their number), in their original order.
pub fn keep_sample(docs: &mut Vec<Document>, limit: usize, seed: u64) {
    if limit == 0 || limit >= docs.len() {
        return;
    }
    let mut idx: Vec<usize> = (0..docs.len()).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    idx.truncate(limit);
    idx.sort_unstable();
    let kept: Vec<Document> = idx.iter().map(|&i| docs[i].clone()).collect();
    *docs = kept;
}

/// Documents and the count of bytes decoded as Latin-1.
type Documents = (Vec<Document>, usize);

/// A local file or directory, and the name messages call it by (the spec for a
/// Hub file, whose cache path would say little).
struct Source {
    path: PathBuf,
    name: String,
}

/// Where Hub files come from.
struct HubAccess<'a> {
    cache: &'a hf_hub::Cache,
    offline: bool,
}

impl HubAccess<'_> {
    /// The local file or directory a spec (without braces) names.
    fn locate(&self, spec: &str) -> Result<Source> {
        if spec.starts_with("hf://") {
            let path = HubFile::parse(spec)?
                .fetch_in(self.cache, self.offline)
                .map_err(|e| anyhow!("{spec}: {e:#}"))?;
            return Ok(Source {
                path,
                name: spec.to_string(),
            });
        }
        let path = PathBuf::from(spec);
        fs::metadata(&path).map_err(|e| io_error(spec, e))?;
        Ok(Source {
            path,
            name: spec.to_string(),
        })
    }
}

/// An I/O error as a message naming the file, in the words of `ls` for the
/// common case.
fn io_error(name: &str, error: io::Error) -> anyhow::Error {
    if error.kind() == io::ErrorKind::NotFound {
        anyhow!("{name}: no such file or directory")
    } else {
        anyhow!("{name}: {error}")
    }
}

/// The bytes of a file, decoded.
fn read_text(path: &Path, name: &str) -> Result<(String, usize)> {
    let bytes = fs::read(path).map_err(|e| io_error(name, e))?;
    Ok(decode(&bytes))
}

/// Reads a located source by what it is: directory or file, and the file's name.
fn read_source(source: &Source, splits: &[Split]) -> Result<Documents> {
    if source.path.is_dir() {
        return match imdb_base(&source.path) {
            Some(base) => read_imdb_dir(source, &base, splits),
            None => read_txt_dir(source),
        };
    }
    let file_name = source
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if file_name.ends_with(".jsonl") {
        read_jsonl(source)
    } else if file_name.ends_with(".tar.gz") || file_name.ends_with(".tgz") {
        read_imdb_archive(source, splits)
    } else {
        read_plain(source)
    }
}

// ---- Plain files and directories of .txt files -------------------------------

/// A whole file as one document.
fn read_plain(source: &Source) -> Result<Documents> {
    let (text, replaced) = read_text(&source.path, &source.name)?;
    Ok((vec![unlabelled(text)], replaced))
}

fn unlabelled(text: String) -> Document {
    Document {
        text,
        label: None,
        split: None,
    }
}

/// Every `.txt` file below a directory, one document each, in path order.
fn read_txt_dir(source: &Source) -> Result<Documents> {
    let mut files = Vec::new();
    collect_txt_files(&source.path, &mut files)?;
    if files.is_empty() {
        bail!("{}: a directory with no .txt files", source.name);
    }
    files.sort();
    let texts = files
        .par_iter()
        .map(|path| read_text(path, &path.display().to_string()))
        .collect::<Result<Vec<_>>>()?;
    let replaced = texts.iter().map(|(_, r)| r).sum();
    let documents = texts.into_iter().map(|(t, _)| unlabelled(t)).collect();
    Ok((documents, replaced))
}

/// Collects `.txt` files recursively; symlinked directories are not followed, so
/// a link cycle cannot loop.
fn collect_txt_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let name = || dir.display().to_string();
    for entry in fs::read_dir(dir).map_err(|e| io_error(&name(), e))? {
        let entry = entry.map_err(|e| io_error(&name(), e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| io_error(&name(), e))?;
        if kind.is_dir() {
            collect_txt_files(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "txt") && path.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

// ---- One file per label ------------------------------------------------------

/// The specs a single `{a,b,...}` group expands to, each with its alternative
/// (the label); `None` when the spec has no group.
fn expand_braces(spec: &str) -> Result<Option<Vec<(String, String)>>> {
    let Some(open) = spec.find('{') else {
        return Ok(None);
    };
    let Some(close) = spec[open..].find('}').map(|i| open + i) else {
        bail!("{spec}: a '{{' with no closing '}}'");
    };
    let (head, group, tail) = (&spec[..open], &spec[open + 1..close], &spec[close + 1..]);
    if group.contains('{') || tail.contains(['{', '}']) {
        bail!("{spec}: only one {{a,b,...}} group is allowed, not nested");
    }
    let alternatives: Vec<&str> = group.split(',').collect();
    if alternatives.iter().any(|a| a.is_empty()) {
        bail!("{spec}: an empty alternative in {{{group}}}");
    }
    let files = alternatives
        .iter()
        .map(|a| (format!("{head}{a}{tail}"), a.to_string()))
        .collect();
    Ok(Some(files))
}

/// Each file's non-blank lines as documents labelled with the file's alternative.
fn read_labelled_files(files: &[(String, String)], hub: &HubAccess) -> Result<Documents> {
    let mut documents = Vec::new();
    let mut replaced = 0;
    for (spec, label) in files {
        let source = hub.locate(spec)?;
        let (text, r) = read_text(&source.path, &source.name)?;
        replaced += r;
        documents.extend(
            lines(&text)
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(_, line)| Document {
                    text: line.to_string(),
                    label: Some(label.clone()),
                    split: None,
                }),
        );
    }
    Ok((documents, replaced))
}

/// Lines numbered from 1, each without its `\n` or `\r\n`.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .enumerate()
        .map(|(i, line)| (i + 1, line))
}

// ---- JSON lines --------------------------------------------------------------

/// One document per non-blank line; a bad line is an error `FILE:LINE: why`.
fn read_jsonl(source: &Source) -> Result<Documents> {
    let (text, replaced) = read_text(&source.path, &source.name)?;
    let documents = lines(&text)
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            jsonl_document(line).map_err(|why| anyhow!("{}:{number}: {why}", source.name))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((documents, replaced))
}

fn jsonl_document(line: &str) -> std::result::Result<Document, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err("not a JSON object".to_string());
    };
    let Some(Value::String(text)) = object.get("text") else {
        return Err("no string field \"text\"".to_string());
    };
    Ok(Document {
        text: text.clone(),
        label: jsonl_label(object.get("label"))?,
        split: jsonl_split(object.get("split"))?,
    })
}

/// A label in its string form, so `1` and `"1"` are the same label.
fn jsonl_label(value: Option<&Value>) -> std::result::Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(other) => Err(format!(
            "field \"label\" is {other}, not a string, integer or bool"
        )),
    }
}

fn jsonl_split(value: Option<&Value>) -> std::result::Result<Option<Split>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if Split::parse(s).is_some() => Ok(Split::parse(s)),
        Some(other) => Err(format!(
            "field \"split\" is {other}, not \"train\", \"test\" or \"unsup\""
        )),
    }
}

// ---- IMDB --------------------------------------------------------------------

/// The review directories of the IMDB layout, relative to its root.
const IMDB_DIRS: [(&str, &str); 5] = [
    ("train", "pos"),
    ("train", "neg"),
    ("train", "unsup"),
    ("test", "pos"),
    ("test", "neg"),
];

/// Where an IMDB review sits; also its sort key, field by field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ReviewKey {
    split_rank: u8,
    label: Option<String>,
    id: u64,
    file_name: String,
}

/// A review read: its key, split, text and Latin-1 byte count.
struct Review {
    key: ReviewKey,
    split: Split,
    text: String,
    replaced: usize,
}

/// The key and split of a path ending `SPLIT/LABEL/ID_RATING.txt`, with at most
/// one directory (`aclImdb`) above; `None` for anything else in the layout.
fn review_place(path: &Path) -> Option<(ReviewKey, Split)> {
    let parts: Vec<&str> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => part.to_str(),
            _ => None,
        })
        .collect();
    let [split, label, file_name] = match parts.as_slice() {
        [_, s, l, f] | [s, l, f] => [*s, *l, *f],
        _ => return None,
    };
    let (split, label) = match (split, label) {
        ("train" | "test", "pos" | "neg") => (Split::parse(split)?, Some(label.to_string())),
        ("train", "unsup") => (Split::Unsup, None),
        _ => return None,
    };
    let stem = file_name.strip_suffix(".txt")?;
    // Files are ID_RATING.txt; sorting by the number keeps 2 before 10.
    let id = stem
        .split('_')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or(u64::MAX);
    let key = ReviewKey {
        split_rank: split.rank(),
        label,
        id,
        file_name: file_name.to_string(),
    };
    Some((key, split))
}

fn review(key: ReviewKey, split: Split, bytes: &[u8]) -> Review {
    let (text, replaced) = decode(bytes);
    Review {
        key,
        split,
        text,
        replaced,
    }
}

/// Streams the archive once, reading only the requested splits' reviews.
fn read_imdb_archive(source: &Source, splits: &[Split]) -> Result<Documents> {
    let file = File::open(&source.path).map_err(|e| io_error(&source.name, e))?;
    let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, file));
    let mut archive = tar::Archive::new(gz);
    let unreadable = |e: io::Error| anyhow!("{}: not a readable .tar.gz archive: {e}", source.name);
    let mut found = false;
    let mut reviews = Vec::new();
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let Some((key, split)) = review_place(&entry.path().map_err(unreadable)?) else {
            continue;
        };
        found = true;
        if !splits.contains(&split) {
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(unreadable)?;
        reviews.push(review(key, split, &bytes));
    }
    imdb_documents(source, found, reviews, splits)
}

/// The root of an IMDB layout at or just below `dir`, if it is one.
fn imdb_base(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("aclImdb")]
        .into_iter()
        .find(|base| base.join("train/pos").is_dir() || base.join("test/pos").is_dir())
}

/// The requested splits' reviews from an extracted IMDB layout, read in parallel.
fn read_imdb_dir(source: &Source, base: &Path, splits: &[Split]) -> Result<Documents> {
    let mut found = false;
    let mut wanted = Vec::new();
    for (split, label) in IMDB_DIRS {
        let dir = base.join(split).join(label);
        if !dir.is_dir() {
            continue;
        }
        let name = dir.display().to_string();
        for entry in fs::read_dir(&dir).map_err(|e| io_error(&name, e))? {
            let path = entry.map_err(|e| io_error(&name, e))?.path();
            let place = path.strip_prefix(base).ok().and_then(review_place);
            if let Some((key, split)) = place.filter(|_| path.is_file()) {
                found = true;
                if splits.contains(&split) {
                    wanted.push((key, split, path));
                }
            }
        }
    }
    let reviews = wanted
        .into_par_iter()
        .map(|(key, split, path)| {
            let bytes = fs::read(&path).map_err(|e| io_error(&path.display().to_string(), e))?;
            Ok(review(key, split, &bytes))
        })
        .collect::<Result<Vec<_>>>()?;
    imdb_documents(source, found, reviews, splits)
}

/// Reviews as documents in (split, label, id, file name) order.
fn imdb_documents(
    source: &Source,
    found: bool,
    mut reviews: Vec<Review>,
    splits: &[Split],
) -> Result<Documents> {
    if !found {
        bail!(
            "no IMDB reviews (aclImdb/{{train,test}}/{{pos,neg}}/*.txt) in {}",
            source.name
        );
    }
    if reviews.is_empty() {
        bail!(
            "{}: no IMDB reviews in the splits asked for ({splits:?})",
            source.name
        );
    }
    reviews.par_sort_unstable_by(|a, b| a.key.cmp(&b.key));
    let replaced = reviews.iter().map(|r| r.replaced).sum();
    let documents = reviews
        .into_iter()
        .map(|r| Document {
            text: r.text,
            label: r.key.label,
            split: Some(r.split),
        })
        .collect();
    Ok((documents, replaced))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_keeps_utf8_and_reads_other_bytes_as_latin1() {
        assert_eq!(decode("café ☕".as_bytes()), ("café ☕".to_string(), 0));
        assert_eq!(decode(b"caf\xe9!"), ("café!".to_string(), 1));
        // A truncated multi-byte sequence: both bytes fall back.
        assert_eq!(decode(b"a\xe2\x82"), ("a\u{e2}\u{82}".to_string(), 2));
        assert_eq!(
            decode(b"\xff\xfe\xc3\xa9"),
            ("\u{ff}\u{fe}é".to_string(), 2)
        );
        assert_eq!(decode(b""), (String::new(), 0));
    }

    #[test]
    fn braces_expand_to_labelled_specs() {
        let files = expand_braces("a/rt.{pos,neg}.txt").unwrap().unwrap();
        assert_eq!(
            files,
            vec![
                ("a/rt.pos.txt".to_string(), "pos".to_string()),
                ("a/rt.neg.txt".to_string(), "neg".to_string()),
            ]
        );
        assert!(expand_braces("a/plain.txt").unwrap().is_none());
        assert!(expand_braces("a/{x,y}/{p,q}").is_err());
        assert!(expand_braces("a/{x,").is_err());
        assert!(expand_braces("a/{x,}").is_err());
    }

    #[test]
    fn review_paths_give_split_label_and_id() {
        let (key, split) = review_place(Path::new("aclImdb/train/pos/10_7.txt")).unwrap();
        assert_eq!(
            (key.id, key.label.as_deref(), split),
            (10, Some("pos"), Split::Train)
        );
        let (key, split) = review_place(Path::new("./train/unsup/3_0.txt")).unwrap();
        assert_eq!((key.id, key.label, split), (3, None, Split::Unsup));
        assert!(review_place(Path::new("aclImdb/test/unsup/1_0.txt")).is_none());
        assert!(review_place(Path::new("aclImdb/train/urls_pos.txt")).is_none());
        assert!(review_place(Path::new("aclImdb/train/labeledBow.feat")).is_none());
    }
}
