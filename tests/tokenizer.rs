//! Tokenizers: training, round trips, saving, loading from a path and from a Hub cache.

use std::path::PathBuf;
use tsrnn::text::tokenizer::{PAD, TextTokenizer, TokenizerKind, UNK};

const KINDS: [TokenizerKind; 3] = [TokenizerKind::Char, TokenizerKind::Word, TokenizerKind::Bpe];

/// A small review-like corpus: punctuation, capitals, HTML breaks, newlines, non-ASCII.
fn corpus() -> Vec<String> {
    let base = [
        "This movie was great! I loved it.<br /><br />The acting, the music: superb.",
        "A terrible film. I didn't like it at all...\nNot recommended.",
        "Great acting<br/>but the plot? Weak. 7/10",
        "Café au lait, naïve résumé — the critics' favourite.",
        "the the the movie movie film\tgreat\n\nend",
        "It's the best movie I've seen in 2024; truly GREAT.",
    ];
    (0..20)
        .flat_map(|i| base.iter().map(move |s| format!("{s} #{i}")))
        .collect()
}

fn train(kind: TokenizerKind, vocab_size: usize) -> TextTokenizer {
    let texts = corpus();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    TextTokenizer::train(kind, vocab_size, &refs).unwrap()
}

/// A fresh directory under the system temp dir, unique to this test and run.
fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "tsrnn-tokenizer-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn kind_names() {
    assert_eq!(TokenizerKind::Char.name(), "char");
    assert_eq!(TokenizerKind::Word.name(), "word");
    assert_eq!(TokenizerKind::Bpe.name(), "bpe");
    let json = serde_json::to_string(&TokenizerKind::Bpe).unwrap();
    assert_eq!(json, "\"bpe\"");
    let back: TokenizerKind = serde_json::from_str("\"word\"").unwrap();
    assert_eq!(back, TokenizerKind::Word);
}

#[test]
fn char_round_trip_is_exact() {
    let tok = train(TokenizerKind::Char, 1000);
    for s in [
        "This movie was great!\nI loved it.",
        "  two  spaces\tand a tab\n\n",
        "Café naïve résumé — 7/10",
        "\n",
    ] {
        let ids = tok.encode(s).unwrap();
        assert_eq!(ids.len(), s.chars().count(), "{s:?}: one id per character");
        assert!(!ids.contains(&1), "{s:?}: no [UNK]");
        assert_eq!(tok.decode(&ids).unwrap(), s);
    }
    // A character never seen in training is [UNK] (and decodes to nothing).
    let ids = tok.encode("a€b").unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[1], 1);
    assert_eq!(tok.decode(&ids).unwrap(), "ab");
    // HTML line breaks become one space each.
    assert_eq!(
        tok.encode("a<br />b<br/>c<BR>d").unwrap(),
        tok.encode("a b c d").unwrap()
    );
}

#[test]
fn char_vocabulary_is_by_frequency() {
    let tok = TextTokenizer::train(TokenizerKind::Char, 5, &["aaab", "bc\n", "a"]).unwrap();
    assert_eq!(tok.vocab_size(), 5);
    // a: 4, b: 2, then c and \n tie at 1 and the lower code point (\n) wins.
    assert_eq!(tok.token_to_id("a"), Some(2));
    assert_eq!(tok.token_to_id("b"), Some(3));
    assert_eq!(tok.token_to_id("\n"), Some(4));
    assert_eq!(tok.token_to_id("c"), None);
    assert_eq!(tok.encode("abc\n").unwrap(), vec![2, 3, 1, 4]);
}

#[test]
fn word_round_trip_gives_normalised_words() {
    let tok = train(TokenizerKind::Word, 1000);
    let ids = tok
        .encode("This MOVIE was great!<br /><br />I didn't like... the acting, 7/10")
        .unwrap();
    assert!(!ids.contains(&1), "all words were seen in training");
    assert_eq!(
        tok.decode(&ids).unwrap(),
        "this movie was great i didn't like the acting 7 10"
    );
    assert_eq!(
        tok.decode(&tok.encode("Café, naïve résumé!").unwrap())
            .unwrap(),
        "café naïve résumé"
    );
    // Whitespace of any kind separates words and disappears.
    assert_eq!(
        tok.encode("the\tmovie\n\nthe").unwrap(),
        tok.encode("the movie the").unwrap()
    );
    assert!(tok.encode(" ... !!! ").unwrap().is_empty());
}

#[test]
fn word_top_n_keeps_the_most_frequent_words() {
    // apple 5, banana 4, cherry 3, plum 3 (ties with cherry, loses by the word), kiwi 1.
    let texts = [
        "apple banana cherry plum",
        "Apple, banana! cherry? PLUM.",
        "apple banana cherry plum kiwi",
        "apple banana",
        "apple",
    ];
    let tok = TextTokenizer::train(TokenizerKind::Word, 5, &texts).unwrap();
    assert_eq!(tok.vocab_size(), 5);
    assert_eq!(tok.token_to_id("apple"), Some(2));
    assert_eq!(tok.token_to_id("banana"), Some(3));
    assert_eq!(tok.token_to_id("cherry"), Some(4));
    assert_eq!(tok.token_to_id("plum"), None);
    let unk = tok.token_to_id(UNK).unwrap();
    assert_eq!(unk, 1);
    // A rare word (plum, kiwi) and an unseen one (mango) are all [UNK].
    assert_eq!(
        tok.encode("Apple plum kiwi mango cherry").unwrap(),
        vec![2, unk, unk, unk, 4]
    );
}

#[test]
fn bpe_round_trip_is_exact() {
    let tok = train(TokenizerKind::Bpe, 400);
    assert_eq!(tok.vocab_size(), 400);
    for s in [
        "This movie was great! I loved it.",
        "  leading spaces,\ttabs\nand newlines\n\n",
        "Unseen: 日本語 🎬 ½ ÆØÅ",
        "",
    ] {
        let ids = tok.encode(s).unwrap();
        assert!(!ids.contains(&1), "{s:?}: byte-level BPE needs no [UNK]");
        assert_eq!(tok.decode(&ids).unwrap(), s);
    }
    // Merges were learnt: a frequent word is fewer tokens than bytes.
    assert!(tok.encode(" movie").unwrap().len() < " movie".len());
}

#[test]
fn trained_tokenizers_have_pad_0_and_unk_1() {
    for kind in KINDS {
        let tok = train(kind, 300);
        assert_eq!(tok.pad_id(), Some(0), "{kind:?}");
        assert_eq!(tok.token_to_id(PAD), Some(0), "{kind:?}");
        assert_eq!(tok.token_to_id(UNK), Some(1), "{kind:?}");
        assert!(tok.vocab_size() <= 300, "{kind:?}");
        // Padding decodes to nothing.
        let mut ids = tok.encode("the movie").unwrap();
        let text = tok.decode(&ids).unwrap();
        ids.extend([0, 0, 0]);
        assert_eq!(tok.decode(&ids).unwrap(), text, "{kind:?}");
    }
}

#[test]
fn too_small_vocabularies_are_refused() {
    assert!(TextTokenizer::train(TokenizerKind::Bpe, 257, &["abc"]).is_err());
    assert!(TextTokenizer::train(TokenizerKind::Word, 2, &["abc"]).is_err());
    assert!(TextTokenizer::train(TokenizerKind::Char, 100, &[]).is_err());
}

#[test]
fn encode_batch_matches_encode() {
    let texts = corpus();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for kind in KINDS {
        let tok = train(kind, 300);
        let batch = tok.encode_batch(&refs).unwrap();
        assert_eq!(batch.len(), refs.len());
        for (text, ids) in refs.iter().zip(&batch) {
            assert_eq!(&tok.encode(text).unwrap(), ids, "{kind:?}");
        }
    }
}

#[test]
fn training_is_deterministic() {
    let dir = temp_dir("determinism");
    for kind in KINDS {
        let a = train(kind, 300);
        let b = train(kind, 300);
        assert_eq!(
            a.inner().to_string(false).unwrap(),
            b.inner().to_string(false).unwrap(),
            "{kind:?}"
        );
        let (pa, pb) = (dir.join("a.json"), dir.join("b.json"));
        a.save(&pa).unwrap();
        b.save(&pb).unwrap();
        assert_eq!(
            std::fs::read(&pa).unwrap(),
            std::fs::read(&pb).unwrap(),
            "{kind:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn save_then_load_gives_the_same_ids() {
    let dir = temp_dir("save-load");
    let samples = [
        "This movie was great!<br />Really.",
        "Unseen words: zebra, quokka; unseen chars: 日本 🎬",
        "the\nend\n",
        "",
    ];
    for kind in KINDS {
        let tok = train(kind, 300);
        let path = dir.join(kind.name()).join("tokenizer.json");
        tok.save(&path).unwrap();
        let back = TextTokenizer::load(path.to_str().unwrap()).unwrap();
        assert_eq!(back.vocab_size(), tok.vocab_size(), "{kind:?}");
        assert_eq!(back.pad_id(), Some(0), "{kind:?}");
        assert_eq!(back.describe(), tok.describe(), "{kind:?}");
        assert_eq!(
            back.encode_batch(&samples).unwrap(),
            tok.encode_batch(&samples).unwrap(),
            "{kind:?}"
        );
        // A directory means its tokenizer.json.
        let from_dir = TextTokenizer::load(path.parent().unwrap().to_str().unwrap()).unwrap();
        assert_eq!(
            from_dir.encode(samples[0]).unwrap(),
            tok.encode(samples[0]).unwrap()
        );
        // Saving over an existing file replaces it and leaves no temp file behind.
        tok.save(&path).unwrap();
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("tokenizer.json")]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn describe_names_the_kind_and_size() {
    assert_eq!(
        train(TokenizerKind::Word, 20).describe(),
        "word-level, 20 entries"
    );
    assert!(
        train(TokenizerKind::Char, 20)
            .describe()
            .starts_with("character-level, ")
    );
    assert_eq!(
        train(TokenizerKind::Bpe, 300).describe(),
        "byte-level BPE, 300 entries"
    );
}

#[test]
fn loads_from_a_hub_cache() {
    let cache_dir = temp_dir("hub");
    let tok = train(TokenizerKind::Word, 50);
    let hash = "0123456789abcdef0123456789abcdef01234567";
    let repo = cache_dir.join("models--owner--name");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), hash).unwrap();
    std::fs::write(repo.join("refs/v1"), hash).unwrap();
    tok.save(&repo.join("snapshots").join(hash).join("tokenizer.json"))
        .unwrap();
    let cache = hf_hub::Cache::new(cache_dir.clone());
    let text = "The movie was great, the acting superb.";
    for spec in [
        "hf:owner/name",
        "hf:owner/name@v1",
        "hf://owner/name/tokenizer.json",
    ] {
        let back = TextTokenizer::load_with_cache(spec, &cache, true).unwrap();
        assert_eq!(
            back.encode(text).unwrap(),
            tok.encode(text).unwrap(),
            "{spec}"
        );
        assert_eq!(back.vocab_size(), tok.vocab_size(), "{spec}");
    }
    // Offline, a repository not in the cache is an error naming it and the file.
    let err =
        TextTokenizer::load_with_cache("hf:owner/missing", &cache, true).expect_err("not cached");
    let msg = format!("{err:#}");
    assert!(msg.contains("owner/missing"), "{msg}");
    assert!(msg.contains("tokenizer.json"), "{msg}");
    // So is a revision that is not cached.
    let err =
        TextTokenizer::load_with_cache("hf:owner/name@v2", &cache, true).expect_err("not cached");
    assert!(format!("{err:#}").contains("v2"));
    // Malformed specs are refused before any lookup.
    for bad in ["hf:", "hf:a/b/c", "hf:owner/", "hf:owner/name@"] {
        assert!(
            TextTokenizer::load_with_cache(bad, &cache, true).is_err(),
            "{bad}"
        );
    }
    std::fs::remove_dir_all(&cache_dir).unwrap();
}

#[test]
fn bad_files_are_errors_naming_the_path() {
    let dir = temp_dir("bad-files");
    let path = dir.join("tokenizer.json");
    train(TokenizerKind::Word, 50).save(&path).unwrap();
    let json = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &json[..json.len() / 2]).unwrap();
    let msg = format!(
        "{:#}",
        TextTokenizer::load(path.to_str().unwrap()).unwrap_err()
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not a tokenizer.json"), "{msg}");

    std::fs::write(&path, "{\"hello\": 1}").unwrap();
    let msg = format!(
        "{:#}",
        TextTokenizer::load(path.to_str().unwrap()).unwrap_err()
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");

    let missing = dir.join("nope.json");
    let msg = format!(
        "{:#}",
        TextTokenizer::load(missing.to_str().unwrap()).unwrap_err()
    );
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loaded_tokenizers_keep_their_padding_token_but_not_padding() {
    let dir = temp_dir("padding");
    let path = dir.join("tokenizer.json");
    train(TokenizerKind::Word, 50).save(&path).unwrap();
    // Rename [PAD] to <blank> and turn padding and truncation on, as a Hub file might.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let text = serde_json::to_string(&json)
        .unwrap()
        .replace(PAD, "<blank>");
    json = serde_json::from_str(&text).unwrap();
    json["padding"] = serde_json::json!({
        "strategy": {"Fixed": 64}, "direction": "Right", "pad_to_multiple_of": null,
        "pad_id": 0, "pad_type_id": 0, "pad_token": "<blank>"
    });
    json["truncation"] = serde_json::json!({
        "direction": "Right", "max_length": 2, "strategy": "LongestFirst", "stride": 0
    });
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let tok = TextTokenizer::load(path.to_str().unwrap()).unwrap();
    assert_eq!(tok.pad_id(), Some(0));
    assert_eq!(tok.encode("the movie was great").unwrap().len(), 4);
    assert_eq!(tok.encode_batch(&["the movie", "the"]).unwrap()[1].len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
