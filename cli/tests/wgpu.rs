//! The GPU code path (`--features wgpu`): the same model on a WebGPU device computes what it
//! computes on the CPU backend, trains, evaluates and samples there (the cached sampler's
//! per-pixel logits match the forward pass there too), and a machine without a
//! usable adapter gets a clear error. On a machine without a GPU, Mesa's software Vulkan driver
//! (lavapipe) provides the device; `.ci/run` installs it and sets `PIXELCNN_REQUIRE_WGPU=1`, so
//! that in CI a missing device fails these tests instead of skipping them.
#![cfg(feature = "wgpu")]

#[path = "cli/common/mod.rs"]
mod common;
#[path = "../../tests/library/parity/mod.rs"]
mod parity;

use std::process::{Command, Output};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::{Distribution, Tolerance};
use common::{TINY, pixelcnn, synthetic_data};
use pixelcnn::device::DeviceChoice;
use pixelcnn::loss::mean_nll;
use pixelcnn::model::{Conditioning, PixelCnn, PixelCnnConfig, one_hot};

/// The WebGPU device, or `None` (with a note) where none is usable and none is required.
fn wgpu_device() -> Option<Device> {
    match DeviceChoice::Wgpu.device() {
        Ok(device) => Some(device),
        Err(error) if std::env::var_os("PIXELCNN_REQUIRE_WGPU").is_none() => {
            eprintln!("skipped: {error}");
            None
        }
        Err(error) => panic!("PIXELCNN_REQUIRE_WGPU is set, but {error}"),
    }
}

/// Every parameter's gradient, flattened, by parameter id.
struct Gradients<'a> {
    grads: &'a GradientsParams,
    found: Vec<(ParamId, Vec<f32>)>,
}

impl ModuleVisitor for Gradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let values = grad.into_data().convert::<f32>().try_into_vec().unwrap();
            self.found.push((param.id, values));
        }
    }
}

/// Logits and the gradient of the mean NLL of `model` on `device`, for `images`.
fn logits_and_gradients(
    model: &PixelCnn,
    config: &PixelCnnConfig,
    images: &TensorData,
    device: &Device,
) -> (TensorData, Vec<(ParamId, Vec<f32>)>) {
    let model = model.clone().fork(device);
    let levels = Tensor::<4, Int>::from_data(images.clone(), device);
    let condition = config
        .conditioning
        .dim()
        .map(|classes| one_hot(&[0, classes - 1], classes, device));
    let logits = model
        .forward_conditioned(levels.clone(), condition.as_ref())
        .unwrap();
    let loss = mean_nll(logits.clone(), levels);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut visitor = Gradients {
        grads: &grads,
        found: Vec::new(),
    };
    model.visit(&mut visitor);
    (logits.into_data(), visitor.found)
}

/// The model of `config` gives the same logits and gradients on WebGPU as on the CPU backend.
fn assert_devices_agree(config: PixelCnnConfig) {
    let Some(gpu) = wgpu_device() else { return };
    let cpu = Device::flex().autodiff();
    // Weights drawn once, on the CPU, then copied to each device.
    let model = config.init_seeded(&cpu, 3);
    let images = Tensor::<4, Int>::random(
        [2, config.input_channels, 7, 7],
        Distribution::Uniform(0.0, config.levels as f64),
        &cpu,
    )
    .into_data();
    let (cpu_logits, cpu_grads) = logits_and_gradients(&model, &config, &images, &cpu);
    let gpu = gpu.autodiff();
    let (gpu_logits, gpu_grads) = logits_and_gradients(&model, &config, &images, &gpu);
    gpu_logits.assert_approx_eq::<f32>(&cpu_logits, Tolerance::absolute(1e-4));
    assert_eq!(cpu_grads.len(), gpu_grads.len());
    assert!(!cpu_grads.is_empty());
    for ((id, cpu), (gpu_id, gpu)) in cpu_grads.iter().zip(&gpu_grads) {
        assert_eq!(id, gpu_id);
        let largest = cpu
            .iter()
            .zip(gpu)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(largest <= 1e-4, "gradient of {id} differs by {largest}");
    }
}

fn small(levels: usize) -> PixelCnnConfig {
    PixelCnnConfig::new(levels)
        .with_layers(3)
        .with_channels(6)
        .with_first_kernel(5)
        .with_head_channels(8)
}

#[test]
fn grayscale_model_computes_the_same_on_the_gpu() {
    assert_devices_agree(small(4));
}

#[test]
fn conditional_colour_model_computes_the_same_on_the_gpu() {
    assert_devices_agree(
        small(8)
            .with_input_channels(3)
            .with_conditioning(Conditioning::Class { classes: 3 }),
    );
}

#[test]
fn cached_sampler_logits_match_the_forward_pass_on_the_gpu() {
    let Some(gpu) = wgpu_device() else { return };
    // From the first pixel, and after two given rows and three given pixels (completion).
    for first_pixel in [0, 2 * parity::WIDTH + 3] {
        for (seed, (name, config)) in parity::models().into_iter().enumerate() {
            let model = config.init_seeded(&gpu, seed as u64 + 40);
            let worst = parity::worst_logit_difference(&model, &config, first_pixel, &gpu);
            assert!(worst < 1e-4, "{name}: logits differ by {worst} on wgpu");
        }
    }
}

fn succeeded(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn bits_per_dim(device: &str, run: &str) -> f64 {
    let stdout = succeeded(&pixelcnn(&[
        "--device", device, "eval", "--run", run, "--json",
    ]));
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    json["bits_per_dim"].as_f64().unwrap()
}

#[test]
fn train_eval_and_sample_on_the_gpu() {
    if wgpu_device().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    synthetic_data(dir.path(), 8, 24, 6);
    let run = dir.path().join("run");
    let (data, run) = (dir.path().to_str().unwrap(), run.to_str().unwrap());
    let mut train = vec![
        "--device",
        "wgpu",
        "train",
        "--out",
        run,
        "--data-dir",
        data,
    ];
    train.extend_from_slice(TINY);
    succeeded(&pixelcnn(&train));
    // The checkpoint trained on the GPU evaluates to the same likelihood on both devices.
    let on_gpu = bits_per_dim("wgpu", run);
    let on_cpu = bits_per_dim("flex", run);
    assert!(on_gpu.is_finite() && on_gpu > 0.0, "{on_gpu}");
    assert!(
        (on_gpu - on_cpu).abs() < 1e-4,
        "wgpu {on_gpu} vs flex {on_cpu}"
    );
    let picture = dir.path().join("samples.png");
    let picture_arg = picture.to_str().unwrap();
    succeeded(&pixelcnn(&[
        "--device",
        "wgpu",
        "sample",
        "--run",
        run,
        "--out",
        picture_arg,
        "--n",
        "4",
    ]));
    let image = image::open(&picture).unwrap();
    assert!(image.width() > 8 && image.height() > 8);

    // The GPU run trained in one shard; shards, which share out a CPU's threads, are refused,
    // and so is the CPU's mixed precision.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["shards"], 1);
    for (flag, value, needle) in [
        ("--shards", "2", "on a GPU pass --shards 1"),
        ("--precision", "bf16", "pass --precision f32"),
    ] {
        let refused = dir.path().join("refused");
        let out = refused.to_str().unwrap();
        let args = [
            "--device",
            "wgpu",
            "train",
            "--out",
            out,
            "--data-dir",
            data,
        ];
        let output = pixelcnn(&[&args[..], &[flag, value]].concat());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains(needle), "{flag} {value}: {stderr}");
        assert!(!refused.exists(), "nothing is written");
    }
}

#[test]
fn a_machine_without_an_adapter_gets_a_clear_error() {
    // No Vulkan driver and no EGL vendor: neither of WebGPU's native back ends finds an adapter.
    let output = Command::new(env!("CARGO_BIN_EXE_pixelcnn"))
        .args(["--device", "wgpu", "bench", "--config", "S"])
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent/egl.json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("error: no usable wgpu device"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
