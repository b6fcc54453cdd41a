//! The generator behind every seeded draw of the crate: the batch order of training (and so
//! exact resume), the pixels of sampling (and so "same seed, same picture"), the sample grids
//! and the benchmarks.
//!
//! `rand::rngs::StdRng` does not promise its stream: rand may replace its algorithm in a later
//! release. The ChaCha generators of rand_chacha are documented as deterministic and portable
//! (tested against the cipher's reference vectors), and rand_core treats a change to the way
//! [`seeded`] expands a `u64` into a key as value-breaking. Of the three round counts, 12 is the
//! one `StdRng` runs today, so this is the very stream the crate drew before: run folders
//! trained with it resume with the same batch order, and a seed still gives the same pictures.
//! ChaCha8 would be faster, but the generator's cost is negligible next to the model's; ChaCha20
//! buys cryptographic margin no draw here needs. The tests pin the first numbers of seed 0, so a
//! change of generator, of rand_chacha or of rand's uniform floats shows up as a failure.

use rand::SeedableRng;

/// The seeded generator of the crate.
pub type SeededRng = rand_chacha::ChaCha12Rng;

/// The generator for `seed`.
pub fn seeded(seed: u64) -> SeededRng {
    SeededRng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, RngCore};

    use super::*;

    #[test]
    fn the_stream_of_seed_0_is_pinned() {
        let mut rng = seeded(0);
        let words: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(
            words,
            [
                13486662071293341567,
                14267822071968393595,
                476749353381333526
            ],
            "the generator's stream changed"
        );
        // Sampling draws one f32 per sub-pixel.
        let mut rng = seeded(0);
        let uniforms: Vec<f32> = (0..3).map(|_| rng.random::<f32>()).collect();
        assert_eq!(
            uniforms,
            [0.80145925, 0.7311134, 0.55528885],
            "the uniform draws changed"
        );
    }
}
