//! The models shipped inside the binary: `pixelcnn pretrained` lists them with their cards,
//! `--pretrained NAME` stands in for `--run` in eval, sample, complete, reconstruct and export,
//! and each scores what its card says on the embedded test images.

use crate::common;

use std::path::Path;

use burn::prelude::*;
use common::pixelcnn;
use pixelcnn::export::from_safetensors;
use pixelcnn::pretrained;

fn succeeds(args: &[&str]) -> String {
    let output = pixelcnn(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn every_shipped_model_scores_what_its_card_says() {
    for model in pretrained::all() {
        let json = succeeds(&["eval", "--pretrained", model.name, "--json"]);
        let score: serde_json::Value = serde_json::from_str(&json).unwrap();
        let card = model.card();
        let nats = score["nll_nats"].as_f64().unwrap();
        assert_eq!(score["images"], 1_000);
        assert!(
            (nats - card.embedded_test.nll_nats).abs() < 0.01,
            "{}: {nats} nats, the card says {}",
            model.name,
            card.embedded_test.nll_nats
        );
    }
}

#[test]
fn the_list_names_every_model_with_its_figures() {
    let listing = succeeds(&["pretrained"]);
    for model in pretrained::all() {
        let card = model.card();
        assert!(listing.contains(model.name), "{listing}");
        assert!(
            listing.contains(&format!("{:.2} nats/image", card.test.nll_nats)),
            "{listing}"
        );
    }
}

#[test]
fn pretrained_models_sample_complete_reconstruct_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let digits = path("digits.png");
    succeeds(&[
        "sample",
        "--pretrained",
        "mnist-class",
        "--class",
        "all",
        "--n",
        "2",
        "--out",
        &digits,
    ]);
    // One row of n images per class: ten rows of two.
    let (width, height) = image::image_dimensions(&digits).unwrap();
    assert!(height > 4 * width, "{width}×{height}");
    let completed = path("completed.png");
    succeeds(&[
        "complete",
        "--pretrained",
        "mnist-binarized",
        "--rows",
        "14",
        "--n",
        "2",
        "--samples",
        "2",
        "--out",
        &completed,
    ]);
    assert!(Path::new(&completed).is_file());
    let reconstructed = path("reconstructed.png");
    succeeds(&[
        "reconstruct",
        "--pretrained",
        "mnist-autoencoder",
        "--n",
        "2",
        "--out",
        &reconstructed,
    ]);
    assert!(Path::new(&reconstructed).is_file());

    let exported = path("class.safetensors");
    succeeds(&["export", "--pretrained", "mnist-class", "--out", &exported]);
    let device = Device::flex();
    let (config, _) = from_safetensors(std::fs::read(&exported).unwrap(), &device).unwrap();
    let shipped = pretrained::find("mnist-class").unwrap();
    assert_eq!(config, shipped.config().unwrap());

    // The exported file is a model of its own (`--weights`): it draws what the shipped model
    // draws, pixel for pixel, with the same seed.
    let drawn = |choice: &[&str], name: &str| {
        let out = path(name);
        let mut args = vec!["sample", "--class", "all", "--n", "1", "--seed", "3"];
        args.extend_from_slice(choice);
        args.extend(["--out", &out]);
        succeeds(&args);
        std::fs::read(&out).unwrap()
    };
    assert_eq!(
        drawn(&["--weights", &exported], "from-file.png"),
        drawn(&["--pretrained", "mnist-class"], "shipped.png")
    );
}

#[test]
fn a_wrong_name_or_model_kind_is_refused_with_the_reason() {
    let refused = |args: &[&str], needle: &str| {
        let output = pixelcnn(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
    };
    refused(
        &["sample", "--pretrained", "nope", "--out", "x.png"],
        "the shipped ones are: mnist-binarized",
    );
    refused(
        &[
            "reconstruct",
            "--pretrained",
            "mnist-class",
            "--out",
            "x.png",
        ],
        "pretrained model mnist-class is not an auto-encoder",
    );
    refused(
        &[
            "sample",
            "--pretrained",
            "mnist-class",
            "--run",
            "r",
            "--out",
            "x.png",
        ],
        "cannot be used with",
    );
}
