//! The text pipeline: corpora in, tokenizers trained or loaded, token sequences out.

pub mod classify;
pub mod corpus;
pub mod generate;
pub mod hub;
pub mod lm;
pub mod tokenizer;
