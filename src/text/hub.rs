//! Files on the Hugging Face Hub, through `hf-hub` and its standard cache.
//!
//! The cache is the one the Python `huggingface_hub` library uses: `HF_HUB_CACHE`
//! if set, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`. A cached file is
//! used without touching the network; with `HF_HUB_OFFLINE=1` a file that is not
//! cached is an error naming the repository, the file and the cache searched.

use anyhow::{Result, bail};
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use std::path::PathBuf;

/// A file in a Hub repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubFile {
    /// `Model` or `Dataset`.
    pub kind: HubKind,
    /// `OWNER/NAME` (or a bare `NAME` for the Hub's legacy top-level models).
    pub repo: String,
    /// Path of the file inside the repository.
    pub path: String,
    /// Branch, tag or commit (`main` by default).
    pub revision: String,
}

/// The kind of Hub repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HubKind {
    /// A model repository.
    Model,
    /// A dataset repository.
    Dataset,
}

impl HubFile {
    /// Parses `hf://datasets/OWNER/NAME/PATH` or `hf://OWNER/NAME/PATH` (a model),
    /// either optionally with `@REVISION` after the repository name.
    pub fn parse(spec: &str) -> Result<Self> {
        let Some(rest) = spec.strip_prefix("hf://") else {
            bail!("{spec}: a Hub file is written hf://[datasets/]OWNER/NAME/PATH");
        };
        let (kind, rest) = match rest.strip_prefix("datasets/") {
            Some(r) => (HubKind::Dataset, r),
            None => (HubKind::Model, rest.strip_prefix("models/").unwrap_or(rest)),
        };
        let parts: Vec<&str> = rest.splitn(3, '/').collect();
        if parts.len() < 3 || parts.iter().any(|p| p.is_empty()) {
            bail!("{spec}: a Hub file is written hf://[datasets/]OWNER/NAME/PATH");
        }
        let (name, revision) = match parts[1].split_once('@') {
            Some((n, r)) => (n, r.to_string()),
            None => (parts[1], "main".to_string()),
        };
        Ok(HubFile {
            kind,
            repo: format!("{}/{}", parts[0], name),
            path: parts[2].to_string(),
            revision,
        })
    }

    fn repo(&self) -> Repo {
        let kind = match self.kind {
            HubKind::Model => RepoType::Model,
            HubKind::Dataset => RepoType::Dataset,
        };
        Repo::with_revision(self.repo.clone(), kind, self.revision.clone())
    }

    /// The local path of the file: from the environment's cache, else downloaded
    /// into it (unless `HF_HUB_OFFLINE`).
    pub fn fetch(&self) -> Result<PathBuf> {
        self.fetch_in(&cache(), offline())
    }

    /// [`HubFile::fetch`] with the cache and offline mode given.
    pub fn fetch_in(&self, cache: &Cache, offline: bool) -> Result<PathBuf> {
        if let Some(path) = cache.repo(self.repo()).get(&self.path) {
            return Ok(path);
        }
        let what = format!(
            "{} {} (revision {}), file {}",
            match self.kind {
                HubKind::Model => "model",
                HubKind::Dataset => "dataset",
            },
            self.repo,
            self.revision,
            self.path
        );
        if offline {
            bail!(
                "{what} is not in the Hugging Face cache {} and HF_HUB_OFFLINE is set",
                cache.path().display()
            );
        }
        let api = ApiBuilder::from_cache(cache.clone())
            .with_progress(false)
            .build()?;
        api.repo(self.repo()).get(&self.path).map_err(|e| {
            anyhow::anyhow!(
                "{what}: not in the Hugging Face cache {} and the download failed: {e}",
                cache.path().display()
            )
        })
    }
}

/// The Hub cache the environment names.
pub fn cache() -> Cache {
    match std::env::var_os("HF_HUB_CACHE") {
        Some(dir) if !dir.is_empty() => Cache::new(PathBuf::from(dir)),
        _ => Cache::from_env(),
    }
}

/// Whether `HF_HUB_OFFLINE` asks for no network.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hub_specs() {
        let f = HubFile::parse("hf://datasets/stanfordnlp/imdb@v1/plain_text/train.jsonl").unwrap();
        assert_eq!(f.kind, HubKind::Dataset);
        assert_eq!(f.repo, "stanfordnlp/imdb");
        assert_eq!(f.revision, "v1");
        assert_eq!(f.path, "plain_text/train.jsonl");
        let m = HubFile::parse("hf://google-bert/bert-base-uncased/tokenizer.json").unwrap();
        assert_eq!(m.kind, HubKind::Model);
        assert_eq!(m.revision, "main");
        assert!(HubFile::parse("hf://datasets/only-owner").is_err());
        assert!(HubFile::parse("/a/path").is_err());
    }
}
