//! Crafted files are refused before they can make the process allocate without bound: a run
//! config or checkpoint asking for an enormous model, an IDX header asking for an absurd size,
//! a small gzip file that inflates to far more than its header announces. Each test measures
//! what its call allocates, with an allocator that counts the bytes of each thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

use burn::prelude::Device;
use flate2::Compression;
use flate2::write::GzEncoder;
use pixelcnn::checkpoint::{Checkpoint, RunConfig};
use pixelcnn::data::idx;
use serde_json::{Value, json};

mod common;
use common::idx_bytes;

/// The system allocator, counting the bytes each thread holds and the most it held.
struct Counting;

thread_local! {
    static HELD: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn count(grown: usize, shrunk: usize) {
    // Threads being torn down have no counters left; nothing measured runs there.
    let _ = HELD.try_with(|held| {
        let now = (held.get() + grown).saturating_sub(shrunk);
        held.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 0);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(0, layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size, layout.size());
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The result of `f` and the most bytes it held at once on this thread.
fn peak_bytes<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = HELD.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    let result = f();
    (result, PEAK.with(Cell::get) - before)
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The run config of the fuzzer's seed, with its model's fields replaced by `model`'s.
fn run_config_json(model: Value) -> Vec<u8> {
    let seed = include_bytes!("../fuzz/seeds/run_config/mnist.json");
    let mut config: Value = serde_json::from_slice(seed).unwrap();
    for (field, value) in model.as_object().unwrap() {
        config["model"][field] = value.clone();
    }
    serde_json::to_vec(&config).unwrap()
}

#[test]
fn a_config_asking_for_a_million_layers_or_channels_is_refused_without_allocating() {
    for model in [
        json!({"layers": 1_000_000}),
        json!({"channels": 1_000_000}),
        json!({"layers": 1_000_000, "channels": 1_000_000, "head_channels": 1_000_000}),
        json!({"conditioning": {"kind": "class", "classes": 1_000_000_000}}),
    ] {
        let json = run_config_json(model.clone());
        let (outcome, peak) = peak_bytes(|| RunConfig::from_json(&json));
        let error = outcome.expect_err("an enormous model is refused");
        assert!(
            error.contains("parameters, more than the ceiling of 268435456"),
            "{model}: {error}"
        );
        assert!(peak < 64 * KIB, "{model}: {peak} bytes allocated");
    }
    // Within the parameter ceiling, but too large for an image of the run's size.
    let json = run_config_json(json!({"layers": 2800, "channels": 64}));
    let error = RunConfig::from_json(&json).unwrap_err();
    assert!(error.contains("feature values per 28×28 image"), "{error}");
    let mut huge_images: Value = serde_json::from_slice(&run_config_json(json!({}))).unwrap();
    huge_images["image_height"] = json!(100_000);
    let error = RunConfig::from_json(&serde_json::to_vec(&huge_images).unwrap()).unwrap_err();
    assert!(error.contains("ceiling of 1024"), "{error}");
}

/// A checkpoint with the header of the fuzzer's seed and the given sections.
fn checkpoint_bytes(config: &[u8], weights: &[u8], optimiser: &[u8]) -> Vec<u8> {
    let seed = include_bytes!("../fuzz/seeds/checkpoint/tiny.bin");
    // Magic bytes, format version and step.
    let mut bytes = seed[..20].to_vec();
    for section in [config, weights, optimiser] {
        bytes.extend_from_slice(&(section.len() as u64).to_le_bytes());
        bytes.extend_from_slice(section);
    }
    bytes
}

#[test]
fn a_checkpoint_whose_config_outgrows_its_weights_is_refused_before_the_model_is_built() {
    // 1000 layers of 64 channels: 91 million parameters, 362 MB of weights, in a 300-byte file.
    let config = json!({
        "levels": 4, "arch": "gated", "layers": 1000, "channels": 64, "first_kernel": 7,
        "kernel": 3, "head_channels": 32, "input_channels": 1,
        "conditioning": {"kind": "none"}, "spatial": null, "latent": null
    });
    let bytes = checkpoint_bytes(config.to_string().as_bytes(), &[0; 16], &[]);
    let (outcome, peak) = peak_bytes(|| Checkpoint::decode(&bytes, &Device::flex()));
    let error = outcome.err().expect("the weights cannot hold that model");
    assert!(
        error.contains("the model weights take 16 bytes, but the 90"),
        "{error}"
    );
    assert!(peak < 64 * KIB, "{peak} bytes allocated");

    let mut enormous = config.clone();
    enormous["channels"] = json!(1_000_000);
    let bytes = checkpoint_bytes(enormous.to_string().as_bytes(), &[0; 16], &[]);
    let error = Checkpoint::decode(&bytes, &Device::flex()).err().unwrap();
    assert!(error.contains("more than the ceiling"), "{error}");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn a_gzip_bomb_is_refused_with_bounded_memory() {
    // The header announces one 28×28 image; the stream inflates to 256 MiB more.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(&idx_bytes(&[1, 28, 28], &[])).unwrap();
    let zeros = vec![0u8; MIB];
    for _ in 0..256 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < MIB, "the bomb is {} bytes", bomb.len());

    let (outcome, peak) = peak_bytes(|| idx::parse(&bomb));
    let error = outcome.unwrap_err().to_string();
    assert!(
        error.contains("need 784 bytes, but the body holds more"),
        "{error}"
    );
    assert!(peak < MIB, "{peak} bytes allocated");
}

#[test]
fn an_idx_header_asking_for_an_absurd_size_is_refused_before_reading_on() {
    // 216 TB announced, 4 bytes present; raw and gzipped.
    let absurd = idx_bytes(&[60_000, 60_000, 60_000], &[1, 2, 3, 4]);
    for bytes in [absurd.clone(), gzip(&absurd)] {
        let (outcome, peak) = peak_bytes(|| idx::parse(&bytes));
        let error = outcome.unwrap_err().to_string();
        assert!(
            error.contains("ask for more than the ceiling of 2147483648 bytes"),
            "{error}"
        );
        // The gzip decoder's own state and buffer take some 80 KiB.
        assert!(peak < 256 * KIB, "{peak} bytes allocated");
    }
    // A gzipped file shorter than its header says.
    let short = gzip(&idx_bytes(&[2, 28, 28], &[0; 100]));
    let error = idx::parse(&short).unwrap_err().to_string();
    assert!(error.contains("has 100 bytes"), "{error}");
    assert!(error.contains("file truncated"), "{error}");
}
