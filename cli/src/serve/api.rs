//! The JSON and streaming API of `pixelcnn serve`: the handlers, what they accept, and the
//! errors they answer with.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use burn::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};

use super::{Header, Shared};
use pixelcnn::evaluate::pixel_surprise;
use pixelcnn::loss::bits_per_dim;
use pixelcnn::model::{Conditioning, NoLogits, one_hot};
use pixelcnn::sample::{Generation, Sampler, SamplingOptions, Start, image_streams};

/// Rows waiting to be sent to a slow client before its draw pauses.
const ROWS_IN_FLIGHT: usize = 4;
/// Highest softmax temperature accepted.
const MAX_TEMPERATURE: f32 = 10.0;

/// A request the server refuses: its status and a JSON body `{"error": message}`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// Malformed JSON or fields of the wrong type are a 400; a body over the limit a 413; a body
/// that does not say it is JSON a 415.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match rejection.status() {
            s @ (StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE) => s,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            message: rejection.body_text(),
        }
    }
}

/// A JSON request body whose rejections are [`ApiError`]s.
pub(super) struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

fn one() -> f32 {
    1.0
}

/// `POST /api/generate`: draw `n` images.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GenerateRequest {
    n: usize,
    #[serde(default)]
    seed: u64,
    #[serde(default = "one")]
    temperature: f32,
    /// For a class-conditional model: a class number or name, or "all" (image i gets class i
    /// mod the number of classes).
    class: Option<Value>,
}

/// `POST /api/complete`: keep the top `rows` rows of `image` and draw the rest, `n` times.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CompleteRequest {
    /// Levels `0..K`, channel planes after each other, row by row.
    image: Vec<i64>,
    rows: usize,
    n: usize,
    #[serde(default)]
    seed: u64,
    #[serde(default = "one")]
    temperature: f32,
    class: Option<Value>,
}

/// `POST /api/nll`: the per-pixel negative log-likelihood of `image`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NllRequest {
    image: Vec<i64>,
    class: Option<Value>,
}

/// `POST /api/reconstruct` (auto-encoders): `n` decodings of the code of test image `index`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReconstructRequest {
    index: usize,
    n: usize,
    #[serde(default)]
    seed: u64,
    #[serde(default = "one")]
    temperature: f32,
}

/// The answer of `POST /api/nll`.
#[derive(Serialize)]
pub(super) struct Surprise {
    nll_nats: f64,
    bits_per_dim: f64,
    /// Nats of each pixel (a colour pixel's channels summed), row by row.
    pixels: Vec<f32>,
}

/// The answer of `GET /api/test-image/{index}`.
#[derive(Serialize)]
pub(super) struct TestImage {
    index: usize,
    /// Levels `0..K`, channel planes after each other, row by row.
    image: Vec<u8>,
    label: Option<u8>,
}

/// One row of every image of a draw, as its `row` event.
#[derive(Serialize)]
struct RowEvent {
    row: usize,
    /// Each image's row: W levels of each channel, channel after channel.
    images: Vec<Vec<u8>>,
}

/// What conditions a draw.
enum Condition {
    None,
    Classes(Vec<usize>),
    /// The code of this test image (auto-encoders).
    CodeOf(usize),
}

/// A draw to stream: the start images, how many pixels of each are kept, and how.
struct Draw {
    images: Vec<Vec<u8>>,
    known_pixels: usize,
    condition: Condition,
    seed: u64,
    temperature: f32,
}

pub(super) async fn model(State(state): State<Shared>) -> Json<Header> {
    Json(state.header.clone())
}

pub(super) async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such page or endpoint".into(),
    }
}

/// Answers a request whose handler has not answered within `timeout` (its body still
/// arriving, say) with a 408: a draw's stream, once it is the answer, runs as long as the draw.
pub(super) async fn deadline(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!("the request did not arrive within {timeout:?}"),
        }
        .into_response(),
    }
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "this endpoint does not take that method".into(),
    }
}

pub(super) async fn test_image(
    State(state): State<Shared>,
    Path(index): Path<String>,
) -> Result<Json<TestImage>, ApiError> {
    let test = state.served.test.as_ref().ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        message: "this server has no test images: the run's data is not at hand".into(),
    })?;
    let index = index
        .parse::<usize>()
        .ok()
        .filter(|&i| i < test.len())
        .ok_or_else(|| ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("test images are numbered 0..={}", test.len() - 1),
        })?;
    Ok(Json(TestImage {
        index,
        image: test.levels(index, state.header.levels),
        label: test.labels.as_ref().map(|labels| labels[index]),
    }))
}

pub(super) async fn generate(
    State(state): State<Shared>,
    Body(request): Body<GenerateRequest>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    refuse_autoencoder(&state.header)?;
    check_draw(&state, request.n, request.temperature)?;
    let classes = classes(&state.header, request.class.as_ref(), request.n)?;
    let size = image_size(&state.header);
    stream(
        state,
        Draw {
            images: vec![vec![0; size]; request.n],
            known_pixels: 0,
            condition: classes.map_or(Condition::None, Condition::Classes),
            seed: request.seed,
            temperature: request.temperature,
        },
    )
}

pub(super) async fn complete(
    State(state): State<Shared>,
    Body(request): Body<CompleteRequest>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    refuse_autoencoder(&state.header)?;
    check_draw(&state, request.n, request.temperature)?;
    let image = levels(&state.header, &request.image)?;
    let height = state.header.height;
    if request.rows >= height {
        return Err(ApiError::bad(format!(
            "rows is how many rows to keep: 0..={}, got {}",
            height - 1,
            request.rows
        )));
    }
    let classes = classes(&state.header, request.class.as_ref(), request.n)?;
    let known_pixels = request.rows * state.header.width;
    stream(
        state,
        Draw {
            images: vec![image; request.n],
            known_pixels,
            condition: classes.map_or(Condition::None, Condition::Classes),
            seed: request.seed,
            temperature: request.temperature,
        },
    )
}

pub(super) async fn reconstruct(
    State(state): State<Shared>,
    Body(request): Body<ReconstructRequest>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if !state.header.autoencoder {
        return Err(ApiError::bad(
            "this model is not an auto-encoder: it has no codes to decode",
        ));
    }
    check_draw(&state, request.n, request.temperature)?;
    let available = state.header.test_images;
    if available == 0 {
        return Err(ApiError::bad(
            "this server has no test images: the run's data is not at hand",
        ));
    }
    if request.index >= available {
        return Err(ApiError::bad(format!(
            "test images are numbered 0..={}, got {}",
            available - 1,
            request.index
        )));
    }
    let size = image_size(&state.header);
    stream(
        state,
        Draw {
            images: vec![vec![0; size]; request.n],
            known_pixels: 0,
            condition: Condition::CodeOf(request.index),
            seed: request.seed,
            temperature: request.temperature,
        },
    )
}

pub(super) async fn nll(
    State(state): State<Shared>,
    Body(request): Body<NllRequest>,
) -> Result<Json<Surprise>, ApiError> {
    let image = levels(&state.header, &request.image)?;
    let classes = if state.header.autoencoder {
        refuse_class(
            request.class.as_ref(),
            "an auto-encoder scores an image given its own code",
        )?;
        None
    } else if let Some(Value::String(_)) = request.class {
        return Err(ApiError::bad("an image has one class: give a class number"));
    } else {
        classes(&state.header, request.class.as_ref(), 1)?
    };
    // Queued, not refused: scoring one image is short, and the page asks as the user draws.
    let permit = state.scores.clone().acquire_owned().await;
    let surprise = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        surprise(&state, &image, classes)
    })
    .await
    .map_err(|_| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: "scoring the image failed".into(),
    })?
    .map_err(|error| ApiError::bad(error.to_string()))?;
    Ok(Json(surprise))
}

/// The negative log-likelihood of one image, per pixel and in all.
fn surprise(
    state: &super::State,
    image: &[u8],
    classes: Option<Vec<usize>>,
) -> Result<Surprise, NoLogits> {
    let (header, served) = (&state.header, &state.served);
    let device = &served.device;
    let data: Vec<i64> = image.iter().map(|&l| i64::from(l)).collect();
    let shape = [1, header.colours, header.height, header.width];
    let targets = Tensor::<4, Int>::from_data(TensorData::new(data, shape), device);
    let condition = classes.map(|c| one_hot(&c, class_count(header), device));
    let pixels = pixel_surprise(&served.model, targets, condition.as_ref())?;
    let nll_nats: f64 = pixels.iter().map(|&v| f64::from(v)).sum();
    Ok(Surprise {
        nll_nats,
        bits_per_dim: bits_per_dim(nll_nats, image.len()),
        pixels,
    })
}

/// Starts `draw` on a blocking thread and streams its rows: a `start` event, one `row` event
/// per row, then `done`. A full draw slot is a 503; a closed connection ends the draw.
fn stream(
    state: Shared,
    draw: Draw,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let permit = state
        .draws
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "the server is drawing {} batches of images already, its limit: try again when one ends",
                state.limits.max_draws
            ),
        })?;
    let (sender, receiver) = mpsc::channel(ROWS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        run(&state, draw, &sender);
        give_memory_back();
    });
    let events = ReceiverStream::new(receiver).map(Ok);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Returns the memory a finished draw freed to the system: a server waits long between
/// bursts, and glibc's allocator otherwise keeps a draw's freed pages in its arenas (measured:
/// a gigabyte after two 1,024-image draws; docs/reliability.md). Elsewhere nothing is done.
fn give_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Draws, sending each row as it is drawn; returns as soon as the client is gone.
fn run(state: &super::State, draw: Draw, sender: &mpsc::Sender<Event>) {
    let (header, served) = (&state.header, &state.served);
    let device = &served.device;
    let count = draw.images.len();
    let start = json!({
        "images": count,
        "height": header.height,
        "width": header.width,
        "colours": header.colours,
        "levels": header.levels,
    });
    if sender.blocking_send(event("start", &start)).is_err() {
        return;
    }
    let condition = match draw.condition {
        Condition::None => None,
        Condition::Classes(classes) => Some(one_hot(&classes, class_count(header), device)),
        Condition::CodeOf(index) => Some(code_of(state, index, count)),
    };
    let options = SamplingOptions {
        levels: header.levels,
        channels: header.colours,
        height: header.height,
        width: header.width,
        temperature: draw.temperature,
        sampler: Sampler::Cached,
    };
    let start = Start {
        images: draw.images,
        known_pixels: draw.known_pixels,
        streams: image_streams(draw.seed, 0..count),
    };
    for row in Generation::new(&served.model, start, condition, options, device) {
        let row = RowEvent {
            row: row.index,
            images: row.levels,
        };
        if sender.blocking_send(event("row", &row)).is_err() {
            return;
        }
    }
    let _ = sender.blocking_send(event("done", &json!({ "images": count })));
}

/// The code of test image `index`, once per image of a draw of `count`: `[count, m]`.
fn code_of(state: &super::State, index: usize, count: usize) -> Tensor<2> {
    let served = &state.served;
    let test = served
        .test
        .as_ref()
        .expect("checked: the index is a test image");
    let levels = test.batch(&[index], state.header.levels, &served.device);
    let code = served
        .model
        .encode(levels)
        .expect("checked: an auto-encoder");
    code.repeat_dim(0, count)
}

fn event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .expect("the events serialise")
}

fn image_size(header: &Header) -> usize {
    header.colours * header.height * header.width
}

fn class_count(header: &Header) -> usize {
    match header.conditioning {
        Conditioning::Class { classes } => classes,
        _ => 0,
    }
}

fn refuse_autoencoder(header: &Header) -> Result<(), ApiError> {
    if header.autoencoder {
        return Err(ApiError::bad(
            "this is an auto-encoder: it draws from the code of an image; use /api/reconstruct",
        ));
    }
    Ok(())
}

fn refuse_class(class: Option<&Value>, why: &str) -> Result<(), ApiError> {
    match class {
        Some(_) => Err(ApiError::bad(format!("leave out \"class\": {why}"))),
        None => Ok(()),
    }
}

fn check_draw(state: &super::State, n: usize, temperature: f32) -> Result<(), ApiError> {
    let max = state.limits.max_images;
    if n == 0 || n > max {
        return Err(ApiError::bad(format!(
            "n is how many images to draw: 1..={max}, got {n}"
        )));
    }
    if !(0.0..=MAX_TEMPERATURE).contains(&temperature) {
        return Err(ApiError::bad(format!(
            "temperature must be between 0 and {MAX_TEMPERATURE}, got {temperature}"
        )));
    }
    Ok(())
}

/// The class of each of `n` images: for a class-conditional model, a class number or "all";
/// nothing for an unconditional one.
fn classes(
    header: &Header,
    class: Option<&Value>,
    n: usize,
) -> Result<Option<Vec<usize>>, ApiError> {
    let classes = match header.conditioning {
        Conditioning::Class { classes } => classes,
        _ => {
            refuse_class(class, "this model is not class-conditional")?;
            return Ok(None);
        }
    };
    let expected = || match &header.class_names {
        Some(names) => format!(
            "a class number 0..={} or name ({}), or \"all\"",
            classes - 1,
            names.join(", ")
        ),
        None => format!("a class number 0..={} or \"all\"", classes - 1),
    };
    let by_name = |name: &str| {
        let names = header.class_names.as_ref()?;
        names
            .iter()
            .position(|known| known.eq_ignore_ascii_case(name))
    };
    match class {
        None => Err(ApiError::bad(format!(
            "this model is class-conditional: give \"class\", {}",
            expected()
        ))),
        Some(Value::String(all)) if all == "all" => Ok(Some((0..n).map(|i| i % classes).collect())),
        Some(value) => match value
            .as_u64()
            .map(|c| c as usize)
            .or_else(|| by_name(value.as_str()?))
        {
            Some(class) if class < classes => Ok(Some(vec![class; n])),
            _ => Err(ApiError::bad(format!(
                "unknown class {value}: give {}",
                expected()
            ))),
        },
    }
}

/// The image of a request as levels, checked against the model's size and K.
fn levels(header: &Header, image: &[i64]) -> Result<Vec<u8>, ApiError> {
    let (c, h, w, k) = (header.colours, header.height, header.width, header.levels);
    if image.len() != c * h * w {
        return Err(ApiError::bad(format!(
            "the image must be {} levels ({c} channel(s) × {h} rows × {w} columns, channel after channel, row by row), got {}",
            c * h * w,
            image.len()
        )));
    }
    if let Some((at, value)) = image
        .iter()
        .enumerate()
        .find(|&(_, &v)| !(0..k as i64).contains(&v))
    {
        return Err(ApiError::bad(format!(
            "image values are levels 0..={}: got {value} at position {at}",
            k - 1
        )));
    }
    Ok(image.iter().map(|&v| v as u8).collect())
}
