//! Milliseconds per training iteration, target space against weight space, at the
//! paper's delays (batch 400, L = d + 50, H = d + 3), measured side by side in one
//! run: the spaces alternate in rounds so both see the same machine load.
//!
//! `cargo bench --bench iteration [-- DELAY...]`

use std::time::Instant;
use tsrnn::train::Trainer;
use tsrnn::train::config::{Space, TaskFile};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 5;
const STEPS: usize = 10;

fn main() -> anyhow::Result<()> {
    let delays: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let delays = if delays.is_empty() {
        vec![20, 40, 60]
    } else {
        delays
    };
    println!("delay  target ms/it  weight ms/it  target/weight");
    for delay in delays {
        let mut trainers = Vec::new();
        for space in [Space::Target, Space::Weight] {
            let file: TaskFile = serde_json::from_value(serde_json::json!({
                "task": "delay-recall", "delay": delay, "space": space, "iterations": 1_000_000,
            }))?;
            let mut trainer = Trainer::new(&file.resolve()?)?;
            trainer.step()?; // warm caches and the allocator
            trainers.push(trainer);
        }
        // Per space, the best round's mean: the least disturbed by other load.
        let mut best = [f64::INFINITY; 2];
        for _ in 0..ROUNDS {
            for (trainer, best) in trainers.iter_mut().zip(&mut best) {
                let start = Instant::now();
                for _ in 0..STEPS {
                    trainer.step()?;
                }
                *best = best.min(start.elapsed().as_secs_f64() * 1e3 / STEPS as f64);
            }
        }
        println!(
            "{delay:>5}  {:>12.2}  {:>12.2}  {:>13.2}",
            best[0],
            best[1],
            best[0] / best[1]
        );
    }
    Ok(())
}
