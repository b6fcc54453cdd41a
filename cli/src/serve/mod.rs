//! `pixelcnn serve`: a local web page to play with a model, and the small API behind it.
//!
//! A PixelCNN draws an image one pixel at a time, each from the distribution it predicts given
//! the pixels above and to the left (arXiv 1601.06759, Section 2; arXiv 1606.05328, Section 2).
//! The page shows exactly that: images filling in row by row as the batched cached sampler
//! ([`pixelcnn::sample::Generation`]) streams them, the model completing the user's own drawing
//! from its top rows, the per-pixel negative log-likelihood of a drawing (where the model is
//! surprised), and for an auto-encoder (arXiv 1606.05328, Section 3.4) several decodings of a
//! test image's code.
//!
//! The server is axum on tokio. Every draw runs on a blocking thread and sends its rows through
//! a small bounded channel as server-sent events: a slow client holds back only its own draw,
//! and a closed connection ends it (the next send fails). The work is bounded by [`Limits`]:
//! images per request, draws at a time (beyond: 503), the size of a request body (beyond: 413)
//! and the time a request may take once its headers have arrived (beyond: 408). Every input is
//! checked, and bad input that reaches the routes gets a 4xx with a JSON `{"error": message}`.
//! Below the routes, [`connections`] bounds the connections themselves: the time and size of a
//! request's headers, idle keep-alive connections, and how many are open at once.
//! The page itself — plain HTML, CSS and JavaScript, no build step — is embedded in the binary.

mod api;
pub mod connections;
mod page;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use burn::module::Module;
use burn::prelude::Device;
use serde::Serialize;
use tokio::sync::Semaphore;

use pixelcnn::data::ImageSet;
use pixelcnn::model::{Architecture, Conditioning, PixelCnn};
use pixelcnn::pretrained::Card;
use pixelcnn::run_config::RunConfig;

/// Likelihoods of single images computed at a time; more requests wait.
const SCORES_AT_A_TIME: usize = 4;

/// Caps on the work one server takes on.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limits {
    /// Images drawn by one request.
    pub max_images: usize,
    /// Draws (generations, completions, decodings) running at a time; more get a 503.
    pub max_draws: usize,
    /// Bytes of a request body; more get a 413.
    pub max_body_bytes: usize,
    /// Time for a request to arrive and its answer to start; a client that stops sending gets a
    /// 408 (a draw's stream, once started, runs as long as the draw).
    #[serde(skip)]
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_images: 64,
            max_draws: 2,
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The most bytes a cached draw of `config`'s model holds per image: 64 for each layer, feature
/// channel, image column and colour, and the logits of a row. (Measured: 41 bytes for the
/// 20 × 64 `mnist-binarized`, whose 1,024-image draw peaked at 1,553 MB; docs/serving.md.)
pub fn draw_bytes_per_image(config: &RunConfig) -> u64 {
    let model = &config.model;
    let [layers, channels, width, colours, levels] = [
        model.layers,
        model.channels,
        config.image_width,
        model.input_channels,
        model.levels,
    ]
    .map(|n| n as u64);
    64 * layers * channels * width * colours + 4 * width * colours * levels
}

/// A test-set likelihood shown in the page's header, and where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct TestScore {
    pub images: usize,
    pub nll_nats: f64,
    pub bits_per_dim: f64,
    /// Where the figure comes from, in words.
    pub source: String,
}

impl TestScore {
    /// A shipped model's test likelihood, from its card.
    pub fn of_card(card: &Card) -> Self {
        Self {
            images: card.test.images,
            nll_nats: card.test.nll_nats,
            bits_per_dim: card.test.bits_per_dim,
            source: "the model's card".into(),
        }
    }
}

/// The model a server shows.
pub struct Served {
    /// The run folder or shipped model's name, for the header.
    pub name: String,
    pub config: RunConfig,
    /// The inference model (a run's moving average of the weights, if it keeps one).
    pub model: PixelCnn,
    /// Test images to pick from, binarised as the model was evaluated; `None` if the run's data
    /// is not at hand.
    pub test: Option<ImageSet>,
    pub score: Option<TestScore>,
    pub device: Device,
}

/// Why a model cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("pixelcnn serve shows likelihood models drawn pixel by pixel: {0}")]
pub struct Unsupported(String);

/// What the page's header says about the model: `GET /api/model`.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub name: String,
    pub arch: Architecture,
    pub parameters: usize,
    pub layers: usize,
    pub channels: usize,
    /// Intensity levels K.
    pub levels: usize,
    /// Colour channels: 1 or 3.
    pub colours: usize,
    pub height: usize,
    pub width: usize,
    pub conditioning: Conditioning,
    /// The name of each class of a class-conditional model, where its data set names them.
    pub class_names: Option<Vec<String>>,
    pub autoencoder: bool,
    pub test_images: usize,
    pub score: Option<TestScore>,
    pub limits: Limits,
}

/// What the handlers share.
struct State {
    served: Served,
    header: Header,
    limits: Limits,
    draws: Arc<Semaphore>,
    /// Likelihoods of one image being computed (more wait their turn).
    scores: Arc<Semaphore>,
}

type Shared = Arc<State>;

/// The server's routes over `served`: the page at `/` and the API under `/api`.
pub fn router(served: Served, limits: Limits) -> Result<Router, Unsupported> {
    check_servable(&served.config)?;
    let header = header(&served, limits);
    let state = Arc::new(State {
        served,
        header,
        limits,
        draws: Arc::new(Semaphore::new(limits.max_draws)),
        scores: Arc::new(Semaphore::new(SCORES_AT_A_TIME)),
    });
    Ok(Router::new()
        .route("/", get(page::index))
        .route("/page.js", get(page::script))
        .route("/page.css", get(page::style))
        .route("/api/model", get(api::model))
        .route("/api/test-image/{index}", get(api::test_image))
        .route("/api/generate", post(api::generate))
        .route("/api/complete", post(api::complete))
        .route("/api/nll", post(api::nll))
        .route("/api/reconstruct", post(api::reconstruct))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            api::deadline,
        ))
        .with_state(state))
}

/// Gated and masked PixelCNNs, unconditional or class-conditional, and the PixelCNN
/// auto-encoder: the models that draw pixel by pixel and that the page can condition.
fn check_servable(config: &RunConfig) -> Result<(), Unsupported> {
    let model = &config.model;
    match model.arch {
        Architecture::Gated | Architecture::Pixelcnn | Architecture::Autoencoder => {}
        other => {
            return Err(Unsupported(format!(
                "--arch {} decodes without drawing pixel by pixel",
                serde_json::to_string(&other)
                    .unwrap_or_default()
                    .trim_matches('"')
            )));
        }
    }
    if let Conditioning::Embedding { dim } = model.conditioning {
        return Err(Unsupported(format!(
            "this model is conditioned on vectors of {dim} numbers, which the page cannot supply"
        )));
    }
    Ok(())
}

/// The names of a class-conditional model's classes, where its data set names each of them.
fn class_names(config: &RunConfig) -> Option<Vec<String>> {
    let Conditioning::Class { classes } = config.model.conditioning else {
        return None;
    };
    let names = config.dataset.class_names()?;
    let names = names.get(..classes)?;
    Some(names.iter().map(|name| name.to_string()).collect())
}

fn header(served: &Served, limits: Limits) -> Header {
    let model = &served.config.model;
    Header {
        name: served.name.clone(),
        arch: model.arch,
        parameters: served.model.num_params(),
        layers: model.layers,
        channels: model.channels,
        levels: model.levels,
        colours: model.input_channels,
        height: served.config.image_height,
        width: served.config.image_width,
        conditioning: model.conditioning,
        class_names: class_names(&served.config),
        autoencoder: model.latent.is_some(),
        test_images: served.test.as_ref().map_or(0, ImageSet::len),
        score: served.score.clone(),
        limits,
    }
}
