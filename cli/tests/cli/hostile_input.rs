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
use pixelcnn::checkpoint::{Checkpoint, FormatError};
use pixelcnn::data::idx;
use pixelcnn::export;
use pixelcnn::run_config::{ConfigError, RunConfig};
use serde_json::{Value, json};

use crate::common;
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
    let seed = include_bytes!("../../../fuzz/seeds/run_config/mnist.json");
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
        let error = outcome
            .expect_err("an enormous model is refused")
            .to_string();
        assert!(
            error.contains("parameters, more than the ceiling of 268435456"),
            "{model}: {error}"
        );
        assert!(peak < 64 * KIB, "{model}: {peak} bytes allocated");
    }
    // Within the parameter ceiling, but too large for an image of the run's size.
    let json = run_config_json(json!({"layers": 2800, "channels": 64}));
    let error = RunConfig::from_json(&json).unwrap_err();
    assert!(
        matches!(&error, ConfigError::Invalid(e) if e.setting == "image_size"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("feature values per 28×28 image"),
        "{error}"
    );
    let mut huge_images: Value = serde_json::from_slice(&run_config_json(json!({}))).unwrap();
    huge_images["image_height"] = json!(100_000);
    let error = RunConfig::from_json(&serde_json::to_vec(&huge_images).unwrap()).unwrap_err();
    assert!(error.to_string().contains("ceiling of 1024"), "{error}");
}

/// A checkpoint with the header of the fuzzer's seed and the given sections.
fn checkpoint_bytes(config: &[u8], weights: &[u8], optimiser: &[u8]) -> Vec<u8> {
    let seed = include_bytes!("../../../fuzz/seeds/checkpoint/tiny.bin");
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
        matches!(error, FormatError::WeightsTooShort { bytes: 16, .. }),
        "{error}"
    );
    let error = error.to_string();
    assert!(
        error.contains("the model weights take 16 bytes, but the 90"),
        "{error}"
    );
    assert!(peak < 64 * KIB, "{peak} bytes allocated");

    let mut enormous = config.clone();
    enormous["channels"] = json!(1_000_000);
    let bytes = checkpoint_bytes(enormous.to_string().as_bytes(), &[0; 16], &[]);
    let error = Checkpoint::decode(&bytes, &Device::flex()).err().unwrap();
    assert!(matches!(error, FormatError::InvalidConfig(_)), "{error}");
    assert!(
        error.to_string().contains("more than the ceiling"),
        "{error}"
    );
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

/// How the binary ended on a hostile input: its exit code, its standard error, the seconds it
/// ran and the most memory it held (its peak resident set, from the kernel's accounting).
struct Ended {
    code: Option<i32>,
    stderr: String,
    seconds: f64,
    peak_bytes: u64,
}

/// Runs `pixelcnn args` and waits for it, killing it after [`PATIENCE`].
// The child is reaped by `wait4`, which also reports its peak memory, not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn run_bounded(args: &[&str]) -> Ended {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pixelcnn"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        pipe.read_to_string(&mut text).unwrap();
        text
    });
    let pid = child.id() as libc::pid_t;
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    loop {
        // SAFETY: `pid` is our child, not yet waited for; `status` and `usage` are ours.
        let waited = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(waited >= 0, "wait4 failed");
        if waited == pid {
            break;
        }
        if started.elapsed() > PATIENCE {
            child.kill().unwrap();
            panic!("{args:?} still ran after {PATIENCE:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ended {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stderr: reader.join().unwrap(),
        seconds: started.elapsed().as_secs_f64(),
        peak_bytes: usage.ru_maxrss as u64 * 1024,
    }
}

/// The longest a refusal may take.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// The most memory a refusal may hold.
const MOST_BYTES: u64 = 300 * MIB as u64;

/// Asserts that `args` ended with a non-zero exit, one error line naming `needle` and no panic,
/// within [`PATIENCE`] and [`MOST_BYTES`], and that `out` (if given) holds nothing new.
fn assert_refused(args: &[&str], needle: &str, out: Option<&std::path::Path>) {
    let before = out.map(listing);
    let ended = run_bounded(args);
    assert!(
        matches!(ended.code, Some(c) if c != 0),
        "{args:?}: {ended:?}",
        ended = ended.code
    );
    let errors = ended
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .count();
    assert_eq!(errors, 1, "{args:?}: {}", ended.stderr);
    assert!(ended.stderr.contains(needle), "{args:?}: {}", ended.stderr);
    assert!(
        !ended.stderr.contains("panicked"),
        "{args:?}: {}",
        ended.stderr
    );
    assert!(
        ended.peak_bytes <= MOST_BYTES,
        "{args:?}: {} bytes",
        ended.peak_bytes
    );
    assert!(
        ended.seconds <= PATIENCE.as_secs_f64(),
        "{args:?}: {} s",
        ended.seconds
    );
    if let (Some(out), Some(before)) = (out, before) {
        assert_eq!(
            listing(out),
            before,
            "{args:?} left files in {}",
            out.display()
        );
    }
}

/// The names in folder `dir`, sorted.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn mkfifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status();
    assert!(made.unwrap().success(), "mkfifo {}", path.display());
}

/// A file of `len` bytes, all but `head` of them a hole.
fn sparse(path: &std::path::Path, head: &[u8], len: u64) {
    std::fs::write(path, head).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len).unwrap();
}

/// A PNG file whose header says `width`×`height` grayscale, with no pixel data to speak of.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut bytes = (data.len() as u32).to_be_bytes().to_vec();
        let body = [kind, data].concat();
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        bytes
    };
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]);
    [
        b"\x89PNG\r\n\x1a\n".to_vec(),
        chunk(b"IHDR", &header),
        chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]),
        chunk(b"IEND", &[]),
    ]
    .concat()
}

/// A trained tiny run in `dir/run`, on synthetic data in `dir/data`.
fn tiny_run(dir: &std::path::Path) -> std::path::PathBuf {
    let (data, run) = (dir.join("data"), dir.join("run"));
    std::fs::create_dir(&data).unwrap();
    common::synthetic_data(&data, 8, 40, 10);
    let mut args = vec!["train", "--out", run.to_str().unwrap()];
    args.extend(["--data-dir", data.to_str().unwrap()]);
    args.extend_from_slice(common::TINY);
    let ended = run_bounded(&args);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    run
}

#[test]
fn files_that_are_not_regular_or_too_large_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let run = tiny_run(root);
    let out = root.join("out");
    std::fs::create_dir(&out).unwrap();
    let new_run = s(&out.join("new"));

    // A folder data set holding a FIFO, /dev/zero, or a 12,000 × 12,000 PNG of 200 bytes.
    let folders: Vec<(std::path::PathBuf, &str)> = ["fifo", "zero", "huge"]
        .iter()
        .map(|kind| (root.join(format!("images-{kind}")), *kind))
        .collect();
    for (folder, kind) in &folders {
        std::fs::create_dir(folder).unwrap();
        std::fs::write(folder.join("a.png"), png_header(8, 8)).unwrap();
        let b = folder.join("b.png");
        match *kind {
            "fifo" => mkfifo(&b),
            "zero" => std::os::unix::fs::symlink("/dev/zero", &b).unwrap(),
            _ => std::fs::write(&b, png_header(12_000, 12_000)).unwrap(),
        }
    }
    for ((folder, _), needle) in folders.iter().zip([
        "b.png: not a regular file",
        "b.png: not a regular file",
        "the image is 12000×12000, more than the 16777216 pixels",
    ]) {
        let args = [
            "train",
            "--out",
            &new_run,
            "--dataset",
            "folder",
            "--data-dir",
            &s(folder),
            "--image-size",
            "8",
        ];
        assert_refused(&args, needle, Some(&out));
    }

    // A run whose config.json is a FIFO, or /dev/zero.
    for kind in ["fifo", "zero"] {
        let broken = root.join(format!("run-{kind}"));
        std::fs::create_dir(&broken).unwrap();
        std::fs::copy(run.join("checkpoint.bin"), broken.join("checkpoint.bin")).unwrap();
        let config = broken.join("config.json");
        match kind {
            "fifo" => mkfifo(&config),
            _ => std::os::unix::fs::symlink("/dev/zero", &config).unwrap(),
        }
        assert_refused(
            &["eval", "--run", &s(&broken)],
            "config.json: not a regular file",
            None,
        );
        let picture = s(&out.join("x.png"));
        let args = ["sample", "--run", &s(&broken), "--out", &picture];
        assert_refused(&args, "config.json: not a regular file", Some(&out));
    }

    // Condition files: a FIFO, /dev/zero, and a sparse GiB whose header announces 10 vectors.
    let fifo = root.join("h.fifo.npy");
    mkfifo(&fifo);
    let zero = root.join("h.zero.npy");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let big = root.join("h.big.npy");
    let ten = common::npy("<f4", &[10, 4], false, &common::f32_bytes(&[0.0; 40]));
    sparse(&big, &ten, (1 << 30) + 1);
    let data = s(&root.join("data"));
    for (file, needle) in [
        (&fifo, "h.fifo.npy: not a regular file"),
        (&zero, "h.zero.npy: not a regular file"),
        (&big, "1073741825 bytes, more than the 1073741824"),
    ] {
        let args = [
            "train",
            "--out",
            &new_run,
            "--data-dir",
            &data,
            "--condition-file",
            &s(file),
        ];
        assert_refused(&args, needle, Some(&out));
    }
    let big = root.join("h.big2.npy");
    sparse(&big, &ten, (1 << 30) - 1);
    let args = [
        "train",
        "--out",
        &new_run,
        "--data-dir",
        &data,
        "--condition-file",
        &s(&big),
    ];
    assert_refused(
        &args,
        "bytes, but the header's shape and type need 288",
        Some(&out),
    );

    // Test data: a sparse GiB IDX file whose header announces 10 images of 8×8.
    let idx_dir = root.join("idx");
    std::fs::create_dir(&idx_dir).unwrap();
    sparse(
        &idx_dir.join("t10k-images-idx3-ubyte"),
        &idx_bytes(&[10, 8, 8], &[0; 640]),
        1 << 30,
    );
    let args = ["eval", "--run", &s(&run), "--data-dir", &s(&idx_dir)];
    assert_refused(&args, "need 640 bytes, but the body holds more", None);
}

#[test]
fn damaged_checkpoints_empty_test_sets_and_foreign_colour_modes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let run = tiny_run(root);
    let checkpoint = run.join("checkpoint.bin");
    let good = std::fs::read(&checkpoint).unwrap();
    let out = root.join("out");
    std::fs::create_dir(&out).unwrap();
    let picture = s(&out.join("x.png"));
    for at in [40, good.len() / 2, good.len() - 9] {
        let mut flipped = good.clone();
        flipped[at] ^= 1;
        std::fs::write(&checkpoint, &flipped).unwrap();
        assert_refused(
            &["eval", "--run", &s(&run)],
            "checkpoint.bin: the file is damaged",
            None,
        );
        let args = ["sample", "--run", &s(&run), "--out", &picture];
        assert_refused(&args, "checkpoint.bin: the file is damaged", Some(&out));
        assert_refused(
            &["train", "--out", &s(&run), "--resume"],
            "checkpoint.bin: the file is damaged",
            Some(&run),
        );
    }
    std::fs::write(&checkpoint, &good).unwrap();

    // A test set of no images.
    let empty = root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    common::write_idx(&empty.join("t10k-images-idx3-ubyte"), &[0, 8, 8], &[]);
    for args in [
        &["eval", "--run", &s(&run), "--data-dir", &s(&empty)][..],
        &[
            "complete",
            "--run",
            &s(&run),
            "--data-dir",
            &s(&empty),
            "--rows",
            "2",
            "--out",
            &picture,
        ],
    ] {
        assert_refused(args, "the test data holds no images", Some(&out));
    }

    // Labels beyond a class-conditional model's classes, for every command that reads them.
    let conditional = root.join("conditional");
    let mut args = vec![
        "train",
        "--out",
        conditional.to_str().unwrap(),
        "--conditional",
        "class",
    ];
    let data = s(&root.join("data"));
    args.extend(["--data-dir", &data]);
    args.extend_from_slice(common::TINY);
    assert_eq!(run_bounded(&args).code, Some(0));
    let labelled = root.join("labelled");
    std::fs::create_dir(&labelled).unwrap();
    common::write_idx(
        &labelled.join("t10k-images-idx3-ubyte"),
        &[2, 8, 8],
        &[9; 128],
    );
    common::write_idx(&labelled.join("t10k-labels-idx1-ubyte"), &[2], &[1, 255]);
    let (conditional, labelled) = (s(&conditional), s(&labelled));
    for args in [
        &["eval", "--run", &conditional, "--data-dir", &labelled][..],
        &[
            "serve",
            "--run",
            &conditional,
            "--data-dir",
            &labelled,
            "--addr",
            "127.0.0.1:0",
        ],
        &[
            "complete",
            "--run",
            &conditional,
            "--data-dir",
            &labelled,
            "--rows",
            "2",
            "--out",
            &picture,
        ],
    ] {
        assert_refused(
            args,
            "label 255 is out of range for a model of 3 classes",
            Some(&out),
        );
    }

    // Growing a grayscale run on colour images writes nothing.
    let colour = root.join("colour");
    std::fs::create_dir(&colour).unwrap();
    std::fs::write(colour.join("data_batch_1.bin"), common::cifar_records(20)).unwrap();
    let grown = out.join("grown");
    let args = [
        "train",
        "--out",
        &s(&grown),
        "--init-from",
        &s(&run),
        "--dataset",
        "cifar10",
        "--data-dir",
        &s(&colour),
        "--layers",
        "3",
    ];
    assert_refused(
        &args,
        "that run was trained on grayscale images, but these are RGB",
        Some(&out),
    );
}

/// A safetensors file: the header (tensor index and metadata) as JSON, then `body`.
fn safetensors_bytes(header: &Value, body: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(header).unwrap();
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn a_weights_file_whose_metadata_outgrows_its_tensors_is_refused_before_the_model_is_built() {
    // The seed's run config with 1000 layers of 64 channels (90,564,772 parameters, 362 MB in
    // f32), over one tensor of 4 values.
    let config = run_config_json(json!({"layers": 1000, "channels": 64}));
    let header = json!({
        "__metadata__": {"pixelcnn.run_config": String::from_utf8(config).unwrap()},
        "head.logits.bias": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
    });
    let bytes = safetensors_bytes(&header, &[0; 16]);
    let (outcome, peak) = peak_bytes(|| export::from_safetensors(bytes, &Device::flex()));
    let error = match outcome {
        Ok(_) => panic!("the tensors cannot hold that model"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains(
            "the tensors hold 4 values; the model the metadata describes has 90564772 parameters"
        ),
        "{error}"
    );
    assert!(peak < MIB, "{peak} bytes allocated");

    // Tensors of another type than f32 are refused by name.
    let config = run_config_json(json!({}));
    let header = json!({
        "__metadata__": {"pixelcnn.run_config": String::from_utf8(config).unwrap()},
        "head.logits.bias": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]},
    });
    let error = export::from_safetensors(safetensors_bytes(&header, &[0; 16]), &Device::flex())
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("head.logits.bias is F64"), "{error}");
}

#[test]
fn foreign_weights_files_are_checked_against_their_metadata_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let run = tiny_run(root);
    let weights = root.join("w.safetensors");
    let w = weights.to_str().unwrap();
    let exported = run_bounded(&["export", "--run", run.to_str().unwrap(), "--out", w]);
    assert_eq!(exported.code, Some(0), "{}", exported.stderr);
    let good = std::fs::read(&weights).unwrap();
    let out = root.join("out");
    std::fs::create_dir(&out).unwrap();
    let png = out.join("s.png");
    let png = png.to_str().unwrap();
    let sample = |file: &std::path::Path| {
        let args = [
            "sample",
            "--weights",
            file.to_str().unwrap(),
            "--n",
            "1",
            "--out",
            png,
        ];
        args.map(String::from)
    };
    let refuses = |file: &std::path::Path, needle: &str| {
        let args = sample(file);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_refused(&args, needle, Some(&out));
    };
    let refused = |name: &str, bytes: &[u8], needle: &str| {
        let file = root.join(name);
        std::fs::write(&file, bytes).unwrap();
        refuses(&file, needle);
    };
    let sizes = "the f32 weights of the model its metadata describes";
    refused("short.safetensors", &good[..good.len() - 4], sizes);
    refused("long.safetensors", &[&good[..], &[0; 4]].concat(), sizes);
    let mut huge_header = good.clone();
    huge_header[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    refused("header.safetensors", &huge_header, "its header claims");
    refused(
        "text.safetensors",
        b"not a weights file at all",
        "its header claims",
    );
    // A tensor renamed: the right size, the wrong names.
    let mut renamed = good.clone();
    let at = good
        .windows(16)
        .position(|w| w == b"head.logits.bias")
        .unwrap();
    renamed[at + 15] = b'_';
    refused("renamed.safetensors", &renamed, "missing tensors");
    let fifo = root.join("fifo.safetensors");
    mkfifo(&fifo);
    refuses(&fifo, "not a regular file");
    let big = root.join("big.safetensors");
    sparse(&big, &good[..64], 2 << 30);
    refuses(&big, "more than the");

    // The intact file is accepted (cli/tests/cli/pretrained.rs checks that such a file draws
    // what its model draws).
    let args = sample(&weights);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ended = run_bounded(&args);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
}
