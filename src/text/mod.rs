//! The text pipeline: corpora in, tokenizers trained or loaded, token sequences out.

pub mod classify;
pub mod corpus;
pub mod hub;
pub mod tokenizer;
