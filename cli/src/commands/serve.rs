//! `pixelcnn serve`: the web page of [`pixelcnn_cli::serve`] for a run or a shipped model.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use burn::prelude::Device;
use clap::Args;
use pixelcnn::data::ImageSet;
use pixelcnn::evaluate::evaluate;
use pixelcnn::model::PixelCnn;
use pixelcnn::run_config::RunConfig;
use pixelcnn_cli::serve::connections::{self, ConnectionLimits};
use pixelcnn_cli::serve::{self, Limits, Served, TestScore};

use super::values::between;
use super::{ModelChoice, test_images};

/// Test images the header's likelihood of a run is computed on, when the server starts.
const SCORED_IMAGES: usize = 1_000;

#[derive(Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    model: ModelChoice,
    /// Address and port to listen on. The default answers this machine only; any other address
    /// lets every machine that reaches it use the page.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Test data for the page's test images and the header's likelihood (default: the run's
    /// own data; for MNIST models without it, the test images embedded in the binary).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Images one request may draw.
    #[arg(long, default_value_t = Limits::default().max_images, value_parser = between(1usize, 1024))]
    max_images: usize,
    /// Draws (generations, completions, decodings) at a time; more are refused with a 503.
    #[arg(long, default_value_t = Limits::default().max_draws, value_parser = between(1usize, 64))]
    max_draws: usize,
}

pub(crate) fn serve_command(args: ServeArgs, device: &Device) -> anyhow::Result<()> {
    let config = args.model.config()?;
    let model = args.model.load(&config, device)?;
    let test = match test_images(args.data_dir.clone(), None, &config) {
        Ok(test) => Some(test),
        // Data the user named must be right; the run's own may be gone.
        Err(error) if args.data_dir.is_some() => return Err(error),
        Err(error) => {
            eprintln!("warning: the page will have no test images: {error:#}");
            None
        }
    };
    let score = header_score(&args.model, &config, &model, test.as_ref(), device)?;
    let name = args.model.describe();
    let served = Served {
        name: name.clone(),
        config,
        model,
        test,
        score,
        device: device.clone(),
    };
    let limits = Limits {
        max_images: args.max_images,
        max_draws: args.max_draws,
        ..Limits::default()
    };
    check_affordable(&served.config, &limits)?;
    let app = serve::router(served, limits)?;
    if !args.addr.ip().is_loopback() {
        eprintln!(
            "warning: listening on {}: every machine that reaches it can use the page",
            args.addr
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the server's runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        eprintln!(
            "serving {name} at http://{}/ (Ctrl-C stops)",
            listener.local_addr()?
        );
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        connections::serve(listener, app, ConnectionLimits::default(), stop).await;
        Ok(())
    })
}

/// Refuses limits under which the draws running at once could take more than half the memory
/// the machine has available (Linux's MemAvailable; elsewhere nothing is checked).
fn check_affordable(config: &RunConfig, limits: &Limits) -> anyhow::Result<()> {
    let Some(available) = available_memory() else {
        return Ok(());
    };
    let per_image = serve::draw_bytes_per_image(config);
    let draws = limits.max_draws as u64;
    let cost = per_image * limits.max_images as u64 * draws;
    if cost > available / 2 {
        let most = (available / 2 / per_image / draws).max(1);
        anyhow::bail!(
            "--max-images {} with --max-draws {} could hold {} MB at once for this model, more than half of the {} MB available; lower them (--max-images {most} at most with --max-draws {})",
            limits.max_images,
            limits.max_draws,
            cost >> 20,
            available >> 20,
            limits.max_draws
        );
    }
    Ok(())
}

/// The memory the system has available for a new program, from `/proc/meminfo`.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The likelihood the header shows: a shipped model's card, or a run scored on the first
/// [`SCORED_IMAGES`] of its test images now.
fn header_score(
    choice: &ModelChoice,
    config: &RunConfig,
    model: &PixelCnn,
    test: Option<&ImageSet>,
    device: &Device,
) -> anyhow::Result<Option<TestScore>> {
    if let Some(name) = &choice.pretrained {
        let card = pixelcnn::pretrained::find(name)?.card();
        return Ok(Some(TestScore::of_card(&card)));
    }
    let Some(test) = test else { return Ok(None) };
    if config.model.arch.objective() != pixelcnn::model::Objective::Nll {
        return Ok(None);
    }
    eprintln!(
        "scoring the run on {} test images…",
        SCORED_IMAGES.min(test.len())
    );
    let score = evaluate(model, &config.model, test, SCORED_IMAGES, device)?;
    Ok(Some(TestScore {
        images: score.images,
        nll_nats: score.nll_nats,
        bits_per_dim: score.bits_per_dim,
        source: "scored when the server started".into(),
    }))
}
