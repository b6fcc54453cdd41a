//! The inputs kept from fuzzing (`fuzz/`): the seed files each target starts from must parse,
//! and every input that once made a parser crash or hang (`fuzz/regressions/<target>/`) must
//! now be refused — or accepted — with a result, never a panic.

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use pixelcnn::checkpoint::{Checkpoint, RunConfig};
use pixelcnn::data::{Embeddings, ImageSet, cifar, folder, idx};

/// Runs one input through the parser a fuzz target covers: `Ok` if it was accepted.
fn parse(target: &str, bytes: &[u8]) -> Result<(), String> {
    let text = |e: pixelcnn::data::DataError| e.to_string();
    match target {
        "idx" => {
            let array = idx::parse(bytes).map_err(text)?;
            // Label files have one dimension; image files three.
            match array.dims.len() {
                1 => Ok(()),
                _ => ImageSet::from_idx(array, None).map(drop).map_err(text),
            }
        }
        "cifar10" => cifar::parse(bytes).map(drop).map_err(text),
        "image_file" => {
            let (&choice, file) = bytes.split_first().ok_or("empty input")?;
            let size = usize::from(choice % 64) + 1;
            let channels = if choice >= 128 { 3 } else { 1 };
            let image = folder::decode(file).map_err(text)?;
            let planes = folder::square_planes(&image, size, channels);
            assert_eq!(planes.len(), channels * size * size);
            Ok(())
        }
        "npy" => Embeddings::parse_npy(bytes).map(drop),
        "run_config" => RunConfig::from_json(bytes).map(drop),
        "checkpoint" => Checkpoint::decode(bytes, &Device::flex()).map(drop),
        other => panic!("no fuzz target {other}"),
    }
}

const TARGETS: [&str; 6] = [
    "idx",
    "cifar10",
    "image_file",
    "npy",
    "run_config",
    "checkpoint",
];

/// The files of `fuzz/<kind>/<target>/`, if that folder exists.
fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_fuzz_seed_is_a_valid_input() {
    for target in TARGETS {
        let seeds = files("seeds", target);
        assert!(!seeds.is_empty(), "fuzz/seeds/{target} is empty");
        for seed in seeds {
            let bytes = std::fs::read(&seed).unwrap();
            if let Err(error) = parse(target, &bytes) {
                panic!("{}: {error}", seed.display());
            }
        }
    }
}

#[test]
fn inputs_that_crashed_a_parser_now_get_a_result() {
    for target in TARGETS {
        for input in files("regressions", target) {
            let bytes = std::fs::read(&input).unwrap();
            // A panic here fails the test, naming the input.
            let outcome = std::panic::catch_unwind(|| parse(target, &bytes));
            assert!(outcome.is_ok(), "{} still panics", input.display());
        }
    }
}
