//! `pixelcnn export`: a model's weights as one safetensors file for other frameworks; and
//! `pixelcnn pretrained`: the models shipped inside the binary, with their figures.

use std::path::PathBuf;

use burn::prelude::Device;
use clap::Args;
use pixelcnn::export::to_safetensors;
use pixelcnn::files::{check_file_target, write_atomically};
use pixelcnn::pretrained;

use super::ModelChoice;

#[derive(Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    model: ModelChoice,
    /// The file to write, conventionally NAME.safetensors (tensor names and layouts: docs/usage.md, `export`).
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn export_command(args: ExportArgs, device: &Device) -> anyhow::Result<()> {
    check_file_target(&args.out)?;
    let config = args.model.config()?;
    let model = args.model.load(&config, device)?;
    write_atomically(&args.out, &to_safetensors(&model, &config)?)?;
    eprintln!(
        "wrote the weights of {} to {}",
        args.model.describe(),
        args.out.display()
    );
    Ok(())
}

/// `pixelcnn pretrained`: one block per shipped model.
pub(crate) fn pretrained_command() -> anyhow::Result<()> {
    for model in pretrained::all() {
        let card = model.card();
        let config = model.config()?;
        let m = &config.model;
        println!("{}: {}", model.name, card.description);
        println!(
            "  {:?} architecture, {} layers × {} channels, K = {}{}",
            m.arch,
            m.layers,
            m.channels,
            m.levels,
            config
                .binarization
                .map_or(String::new(), |b| format!(", binarisation {b:?}")
                    .to_lowercase())
        );
        println!(
            "  test NLL {:.2} nats/image ({:.4} bits/dim) on the {} MNIST test images; {:.2} on the {} embedded ones",
            card.test.nll_nats,
            card.test.bits_per_dim,
            card.test.images,
            card.embedded_test.nll_nats,
            card.embedded_test.images
        );
        println!(
            "  trained {} steps in {:.2} hours on 2 CPU cores ({:.2} CPU-hours): {}",
            card.steps,
            card.train_hours,
            card.cpu_hours,
            card.commands.join(" ; ")
        );
    }
    Ok(())
}
