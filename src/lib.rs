//! tsrnn: recurrent networks trained in target space.
//!
//! The method (`solve`, `cells`, `target`, `weight`, `model`) knows nothing of
//! files, tasks or the command line; `tasks` knows nothing of networks; `train`
//! joins them.

pub mod cells;
pub mod data;
pub mod fused;
pub mod kernels;
pub mod model;
pub mod report;
pub mod solve;
pub mod target;
pub mod tasks;
pub mod text;
pub mod train;
pub mod weight;
