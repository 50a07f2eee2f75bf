//! Corpus readers on small fixtures made here: the IMDB archive and directory,
//! Latin-1 label files, JSON lines, a fake Hub cache, plain files and
//! directories, and the seeded split.

use std::path::{Path, PathBuf};
use tsrnn::text::corpus::{self, Corpus, Document, Split};

/// A scratch directory, removed when dropped so a failing test cleans up too.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tsrnn-corpus-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes a file (making its directories) and returns its path.
    fn write(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn spec(&self, relative: &str) -> String {
        self.0.join(relative).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// IMDB-layout files in an order unlike the sorted one, with ids 2 and 10 to
/// tell numeric from text order, and entries that are not reviews.
const IMDB_FILES: [(&str, &[u8]); 10] = [
    ("README", b"Large Movie Review Dataset"),
    ("test/neg/10_2.txt", b"ten awful"),
    ("train/pos/10_9.txt", b"ten great"),
    ("train/unsup/7_0.txt", b"seven unknown"),
    ("test/pos/0_10.txt", b"zero fine"),
    ("train/pos/2_8.txt", b"two good"),
    ("train/urls_pos.txt", b"http://example.com"),
    ("test/neg/9_3.txt", b"nine poor caf\xe9"),
    ("train/neg/5_1.txt", b"five bad"),
    ("imdb.vocab", b"the\nand"),
];

/// The documents IMDB_FILES should give, in order: split, label, numeric id.
fn imdb_expected() -> Vec<Document> {
    let doc = |text: &str, label: Option<&str>, split| Document {
        text: text.to_string(),
        label: label.map(str::to_string),
        split: Some(split),
    };
    vec![
        doc("five bad", Some("neg"), Split::Train),
        doc("two good", Some("pos"), Split::Train),
        doc("ten great", Some("pos"), Split::Train),
        doc("nine poor café", Some("neg"), Split::Test),
        doc("ten awful", Some("neg"), Split::Test),
        doc("zero fine", Some("pos"), Split::Test),
        doc("seven unknown", None, Split::Unsup),
    ]
}

fn write_tar_gz(path: &Path, prefix: &str) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut builder = tar::Builder::new(gz);
    for (name, bytes) in IMDB_FILES {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, format!("{prefix}{name}"), bytes)
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
}

#[test]
fn imdb_archive_gives_labels_splits_and_numeric_order() {
    let scratch = Scratch::new("imdb-archive");
    let archive = scratch.0.join("aclImdb_v1.tar.gz");
    write_tar_gz(&archive, "aclImdb/");
    let corpus = Corpus::read(&archive.display().to_string()).unwrap();
    assert_eq!(corpus.documents, imdb_expected());
    assert_eq!(corpus.replaced_bytes, 1);
    assert!(corpus.has_splits());
    assert_eq!(corpus.split(Split::Train).len(), 3);
    assert_eq!(corpus.split(Split::Unsup).len(), 1);

    let test_only = Corpus::read_splits(&archive.display().to_string(), &[Split::Test]).unwrap();
    let expected_test: Vec<Document> = imdb_expected()
        .into_iter()
        .filter(|d| d.split == Some(Split::Test))
        .collect();
    assert_eq!(test_only.documents, expected_test);
}

#[test]
fn imdb_archive_without_top_directory_reads_the_same() {
    let scratch = Scratch::new("imdb-bare");
    let archive = scratch.0.join("reviews.tgz");
    write_tar_gz(&archive, "");
    let corpus = Corpus::read(&archive.display().to_string()).unwrap();
    assert_eq!(corpus.documents, imdb_expected());
}

#[test]
fn imdb_directory_matches_the_archive() {
    let scratch = Scratch::new("imdb-dir");
    for (name, bytes) in IMDB_FILES {
        scratch.write(&format!("extracted/aclImdb/{name}"), bytes);
    }
    let corpus = Corpus::read(&scratch.spec("extracted")).unwrap();
    assert_eq!(corpus.documents, imdb_expected());
    assert_eq!(corpus.replaced_bytes, 1);
    let train = Corpus::read_splits(&scratch.spec("extracted/aclImdb"), &[Split::Train]).unwrap();
    assert_eq!(train.documents, imdb_expected()[..3]);
}

#[test]
fn archive_without_reviews_is_an_error_naming_it() {
    let scratch = Scratch::new("imdb-empty");
    let archive = scratch.0.join("other.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&archive).unwrap(),
        flate2::Compression::fast(),
    );
    let mut builder = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_cksum();
    builder
        .append_data(&mut header, "notes.txt", &b"hi"[..])
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap();
    let error = Corpus::read(&archive.display().to_string())
        .unwrap_err()
        .to_string();
    assert!(error.contains("no IMDB reviews"), "{error}");
    assert!(error.contains("other.tar.gz"), "{error}");
}

#[test]
fn label_files_decode_latin1() {
    let scratch = Scratch::new("latin1");
    scratch.write("x.pos", b"caf\xe9 au lait\r\n\nsimply good\n");
    scratch.write("x.neg", b"d\xe9j\xe0 vu, dull\n");
    let corpus = Corpus::read(&scratch.spec("x.{pos,neg}")).unwrap();
    let got: Vec<(&str, Option<&str>)> = corpus
        .documents
        .iter()
        .map(|d| (d.text.as_str(), d.label.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("café au lait", Some("pos")),
            ("simply good", Some("pos")),
            ("déjà vu, dull", Some("neg")),
        ]
    );
    assert_eq!(corpus.replaced_bytes, 3);
    assert!(!corpus.has_splits());

    let error = Corpus::read(&scratch.spec("x.{pos,mixed}"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("x.mixed: no such file or directory"),
        "{error}"
    );
}

#[test]
fn jsonl_error_names_file_and_line() {
    let scratch = Scratch::new("jsonl-bad");
    scratch.write(
        "data.jsonl",
        b"{\"text\": \"fine\"}\n\n{\"text\": \"broken\"\n{\"text\": \"later\"}\n",
    );
    let error = Corpus::read(&scratch.spec("data.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("data.jsonl:3: not valid JSON"), "{error}");

    scratch.write("notext.jsonl", b"{\"text\": 1}\n");
    let error = Corpus::read(&scratch.spec("notext.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("notext.jsonl:1: no string field \"text\""),
        "{error}"
    );
}

#[test]
fn jsonl_reads_int_labels_and_splits() {
    let scratch = Scratch::new("jsonl-good");
    scratch.write(
        "data.jsonl",
        b"{\"text\": \"good\", \"label\": 1, \"split\": \"train\", \"id\": 7}\r\n\
          \n\
          {\"text\": \"bad\", \"label\": 0, \"split\": \"test\"}\n\
          {\"text\": \"flag\", \"label\": true}\n\
          {\"text\": \"none\"}\n",
    );
    let corpus = Corpus::read(&scratch.spec("data.jsonl")).unwrap();
    let got: Vec<(&str, Option<&str>, Option<Split>)> = corpus
        .documents
        .iter()
        .map(|d| (d.text.as_str(), d.label.as_deref(), d.split))
        .collect();
    assert_eq!(
        got,
        [
            ("good", Some("1"), Some(Split::Train)),
            ("bad", Some("0"), Some(Split::Test)),
            ("flag", Some("true"), None),
            ("none", None, None),
        ]
    );
    assert_eq!(corpus.split(Split::Test).len(), 1);
}

#[test]
fn hub_spec_reads_from_a_cache() {
    let scratch = Scratch::new("hub");
    let cache_dir = scratch.0.join("cache");
    let repo = "datasets--owner--name";
    // hf-hub reads the ref file verbatim, so no trailing newline.
    scratch.write(&format!("cache/{repo}/refs/main"), b"0123abcd");
    scratch.write(
        &format!("cache/{repo}/snapshots/0123abcd/dir/file.jsonl"),
        b"{\"text\": \"from the hub\", \"label\": \"pos\"}\n",
    );
    let cache = hf_hub::Cache::new(cache_dir);
    let corpus =
        corpus::read_with_cache("hf://datasets/owner/name/dir/file.jsonl", &[], &cache, true)
            .unwrap();
    assert_eq!(corpus.documents.len(), 1);
    assert_eq!(corpus.documents[0].text, "from the hub");
    assert_eq!(corpus.documents[0].label.as_deref(), Some("pos"));
    assert_eq!(corpus.spec, "hf://datasets/owner/name/dir/file.jsonl");

    let error = corpus::read_with_cache(
        "hf://datasets/owner/name/dir/missing.jsonl",
        &[],
        &cache,
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("owner/name"), "{error}");
    assert!(error.contains("dir/missing.jsonl"), "{error}");
}

#[test]
fn split_indices_are_seeded_disjoint_and_sized() {
    let (train, validation, test) = corpus::split_indices(103, 0.1, 0.2, 7).unwrap();
    assert_eq!((train.len(), validation.len(), test.len()), (72, 10, 21));
    let mut all: Vec<usize> = [&train[..], &validation[..], &test[..]].concat();
    all.sort_unstable();
    assert_eq!(all, (0..103).collect::<Vec<_>>());
    for part in [&train, &validation, &test] {
        assert!(part.windows(2).all(|w| w[0] < w[1]));
    }
    assert_eq!(
        corpus::split_indices(103, 0.1, 0.2, 7).unwrap(),
        (train.clone(), validation, test.clone())
    );
    let (other_train, _, _) = corpus::split_indices(103, 0.1, 0.2, 8).unwrap();
    assert_ne!(other_train, train);

    assert_eq!(
        corpus::split_indices(0, 0.1, 0.1, 1).unwrap(),
        (vec![], vec![], vec![])
    );
    assert!(corpus::split_indices(10, -0.1, 0.2, 1).is_err());
    assert!(corpus::split_indices(10, 0.5, 0.5, 1).is_err());
    assert!(corpus::split_indices(10, f64::NAN, 0.1, 1).is_err());
}

#[test]
fn plain_files_and_txt_directories() {
    let scratch = Scratch::new("plain");
    scratch.write("one.text", b"line one\nline two\n");
    let corpus = Corpus::read(&scratch.spec("one.text")).unwrap();
    assert_eq!(corpus.documents.len(), 1);
    assert_eq!(corpus.documents[0].text, "line one\nline two\n");

    scratch.write("docs/b.txt", b"bee");
    scratch.write("docs/a/z.txt", b"zed");
    scratch.write("docs/a.txt", b"ay");
    scratch.write("docs/notes.md", b"ignored");
    let corpus = Corpus::read(&scratch.spec("docs")).unwrap();
    let texts: Vec<&str> = corpus.documents.iter().map(|d| d.text.as_str()).collect();
    // Sorted by path, component by component: docs/a/z.txt before docs/a.txt.
    assert_eq!(texts, ["zed", "ay", "bee"]);
    assert!(
        corpus
            .documents
            .iter()
            .all(|d| d.label.is_none() && d.split.is_none())
    );

    scratch.write("empty/notes.md", b"no text files");
    let error = Corpus::read(&scratch.spec("empty"))
        .unwrap_err()
        .to_string();
    assert!(error.contains(&scratch.spec("empty")), "{error}");

    let missing = scratch.spec("corpora/x.txt");
    let error = Corpus::read(&missing).unwrap_err().to_string();
    assert_eq!(error, format!("{missing}: no such file or directory"));
}
