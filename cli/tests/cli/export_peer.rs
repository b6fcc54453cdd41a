//! Exported weights in another framework: `pixelcnn export` writes a shipped model, the PyTorch
//! peer (benches/torch/peer.py) loads the file into its own model and must compute our logits
//! within 1e-4, for an unconditional and a class-conditional model.
//!
//! The peer needs Python with torch and numpy (benches/torch/README.md): `PIXELCNN_PYTHON`
//! names the interpreter (default `python3`). Without torch the test says so and passes, unless
//! `PIXELCNN_REQUIRE_TORCH=1` (set by CI, which installs torch) makes that a failure.

use crate::common;

use std::path::Path;
use std::process::Command;

use burn::prelude::*;
use common::{npy, pixelcnn};
use pixelcnn::data::DataSource;
use pixelcnn::model::one_hot;
use pixelcnn::pretrained;

/// Test images scored by both sides.
const IMAGES: usize = 8;

fn python() -> String {
    std::env::var("PIXELCNN_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn torch_available() -> bool {
    let found = Command::new(python())
        .args(["-c", "import torch, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    if !found && std::env::var("PIXELCNN_REQUIRE_TORCH").as_deref() == Ok("1") {
        panic!(
            "PIXELCNN_REQUIRE_TORCH=1 but {} cannot import torch",
            python()
        );
    }
    found
}

fn i64_npy(shape: &[usize], values: &[i64]) -> Vec<u8> {
    let body: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy("<i8", shape, false, &body)
}

/// Exports the shipped model `name`, writes the inputs and our logits, and runs the peer.
fn peer_reproduces(name: &str, dir: &Path) {
    let weights = dir.join(format!("{name}.safetensors"));
    let out = weights.to_str().unwrap();
    let output = pixelcnn(&["export", "--pretrained", name, "--out", out]);
    assert!(output.status.success(), "{output:?}");

    let device = Device::flex();
    let (config, model) = pretrained::find(name).unwrap().load(&device).unwrap();
    let test = DataSource::Embedded
        .test(None)
        .unwrap()
        .for_evaluation(config.binarization);
    let indices: Vec<usize> = (0..IMAGES).collect();
    let levels = test.batch(&indices, config.model.levels, &device);
    let condition = test.condition(&indices, config.model.conditioning, &device);
    let logits = model
        .forward_conditioned(levels.clone(), condition.as_ref())
        .unwrap();
    let logits_shape = logits.dims();
    let level_values: Vec<i64> = levels.into_data().convert::<i64>().try_into_vec().unwrap();
    let logit_values: Vec<f32> = logits.into_data().try_into_vec().unwrap();
    let path = |file: &str| dir.join(format!("{name}-{file}"));
    std::fs::write(
        path("input.npy"),
        i64_npy(&[IMAGES, 1, 28, 28], &level_values),
    )
    .unwrap();
    let body: Vec<u8> = logit_values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(
        path("expected.npy"),
        npy("<f4", &logits_shape, false, &body),
    )
    .unwrap();

    let mut peer = Command::new(python());
    peer.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../benches/torch/peer.py"
    ))
    .args(["logits", "--weights", out])
    .arg("--input")
    .arg(path("input.npy"))
    .arg("--expected")
    .arg(path("expected.npy"));
    if let Some(condition) = condition {
        let labels: Vec<i64> = test.labels.as_ref().unwrap()[..IMAGES]
            .iter()
            .map(|&l| i64::from(l))
            .collect();
        std::fs::write(path("classes.npy"), i64_npy(&[IMAGES], &labels)).unwrap();
        peer.arg("--classes").arg(path("classes.npy"));
        // The labels the peer one-hot encodes are those our condition was made of.
        let classes = config.model.conditioning.dim().unwrap();
        let ours = one_hot(
            &labels.iter().map(|&l| l as usize).collect::<Vec<_>>(),
            classes,
            &device,
        );
        assert_eq!(ours.into_data(), condition.into_data());
    }
    let result = peer.output().expect("the peer runs");
    let report = String::from_utf8_lossy(&result.stdout);
    eprintln!(
        "{name}: {report}{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        result.status.success(),
        "{name}: the peer's logits differ: {report}"
    );
}

#[test]
fn the_pytorch_peer_reproduces_our_logits_from_exported_weights() {
    if !torch_available() {
        eprintln!(
            "skipped: {} cannot import torch (see the module doc)",
            python()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for name in ["mnist-binarized", "mnist-class"] {
        peer_reproduces(name, dir.path());
    }
}
