//! The inputs kept from fuzzing (`fuzz/`): the seed files each target starts from must parse,
//! and every input that once made a parser crash or hang (`fuzz/regressions/<target>/`) must
//! now be refused — or accepted — with a result within a time limit, never a panic or a hang.
//! A missing or empty folder fails the tests: otherwise they would pass having checked nothing.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use burn::prelude::Device;
use pixelcnn::checkpoint::Checkpoint;
use pixelcnn::data::{Embeddings, ImageSet, cifar, folder, idx};
use pixelcnn::export;
use pixelcnn::per_image::parse_per_image;
use pixelcnn::run_config::RunConfig;

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
        "npy" => Embeddings::parse_npy(bytes)
            .map(drop)
            .map_err(|e| e.to_string()),
        "run_config" => RunConfig::from_json(bytes)
            .map(drop)
            .map_err(|e| e.to_string()),
        "per_image" => parse_per_image(bytes).map(drop).map_err(|e| e.to_string()),
        "checkpoint" => Checkpoint::decode(bytes, &Device::flex())
            .map(drop)
            .map_err(|e| e.to_string()),
        "weights" => export::from_safetensors(bytes.to_vec(), &Device::flex())
            .map(drop)
            .map_err(|e| e.to_string()),
        other => panic!("no fuzz target {other}"),
    }
}

const TARGETS: [&str; 8] = [
    "idx",
    "cifar10",
    "image_file",
    "npy",
    "run_config",
    "checkpoint",
    "per_image",
    "weights",
];

/// Longest a parser may take over one kept input; a hang fails the test instead of stalling it.
const TIME_LIMIT: Duration = Duration::from_secs(10);

/// The folder `fuzz/<kind>/`.
fn fuzz_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
}

/// The entries of `dir`, sorted; a missing folder fails the test.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "{} is empty", dir.display());
    entries
}

/// Runs `input` through the parser of `target` in a thread of its own: its result, or a failed
/// test naming the input if the parser panics or takes longer than [`TIME_LIMIT`].
fn parse_in_time(target: &'static str, input: &Path) -> Result<(), String> {
    let bytes = std::fs::read(input).unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || sender.send(parse(target, &bytes)));
    match receiver.recv_timeout(TIME_LIMIT) {
        Ok(outcome) => outcome,
        Err(RecvTimeoutError::Disconnected) => panic!("{} panics", input.display()),
        Err(RecvTimeoutError::Timeout) => {
            panic!("{} takes more than {TIME_LIMIT:?}", input.display())
        }
    }
}

#[test]
fn every_fuzz_seed_is_a_valid_input() {
    for target in TARGETS {
        for seed in entries(&fuzz_dir("seeds").join(target)) {
            if let Err(error) = parse_in_time(target, &seed) {
                panic!("{}: {error}", seed.display());
            }
        }
    }
}

#[test]
fn inputs_that_crashed_a_parser_now_get_a_result() {
    // Only targets that ever crashed have a folder; each has at least one input.
    for folder in entries(&fuzz_dir("regressions")) {
        let name = folder.file_name().unwrap().to_str().unwrap();
        let target = TARGETS
            .into_iter()
            .find(|&t| t == name)
            .unwrap_or_else(|| panic!("{}: no fuzz target {name}", folder.display()));
        for input in entries(&folder) {
            // Accepted or refused, it does not matter: only a result in time.
            let _ = parse_in_time(target, &input);
        }
    }
}
