//! `pixelcnn serve`: every endpoint with good input (the result's shape, completions keep the
//! given rows, the streamed images are the sampler's, the heat map's total is `eval`'s) and
//! with bad input (the right status and a JSON message); draws beyond the cap are refused and
//! a closed stream frees its slot; a bounded load on loopback; and the connections' timeouts,
//! cap and shutdown. The page in a real browser is the crate browser-test's.

mod connections;
mod load;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use burn::prelude::*;
use http_body_util::BodyExt;
use pixelcnn::data::{Dataset, ImageSet};
use pixelcnn::evaluate::evaluate;
use pixelcnn::model::{Conditioning, PixelCnn, one_hot};
use pixelcnn::pretrained;
use pixelcnn::run_config::RunConfig;
use pixelcnn::sample::{Generation, Sampler, SamplingOptions, Start};
use pixelcnn_cli::serve::{Limits, Served, TestScore, router};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A shipped model with the embedded test images.
fn shipped(name: &str) -> (RunConfig, PixelCnn, ImageSet) {
    let device = Device::flex();
    let (config, model) = pretrained::find(name).unwrap().load(&device).unwrap();
    let test = config
        .data_source(None)
        .unwrap()
        .test(None)
        .unwrap()
        .for_evaluation(config.binarization);
    (config, model, test)
}

/// The server of `pixelcnn serve --pretrained NAME`.
pub fn app(name: &str, limits: Limits) -> Router {
    let (config, model, test) = shipped(name);
    let served = Served {
        name: name.into(),
        config,
        model,
        test: Some(test),
        score: Some(TestScore::of_card(&pretrained::find(name).unwrap().card())),
        device: Device::flex(),
    };
    router(served, limits).unwrap()
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

pub fn post_request(path: &str, body: impl Into<String>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.into()))
        .unwrap()
}

async fn post(app: &Router, path: &str, body: &Value) -> (StatusCode, String) {
    send(app, post_request(path, body.to_string())).await
}

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

/// The server-sent events of a finished stream: (name, data).
pub fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

/// The images of a finished draw stream of `count` 28×28 images, row by row.
fn streamed_images(body: &str, count: usize) -> Vec<Vec<u8>> {
    let events = events(body);
    assert_eq!(events.first().unwrap().0, "start", "{body:.300}");
    assert_eq!(
        events.last().unwrap(),
        &("done".into(), json!({ "images": count }))
    );
    let rows: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "row")
        .map(|e| &e.1)
        .collect();
    assert_eq!(rows.len(), 28);
    let mut images = vec![Vec::new(); count];
    for (index, row) in rows.iter().enumerate() {
        assert_eq!(row["row"], index);
        let drawn: Vec<Vec<u8>> = serde_json::from_value(row["images"].clone()).unwrap();
        assert_eq!(drawn.len(), count);
        for (image, levels) in images.iter_mut().zip(drawn) {
            assert_eq!(levels.len(), 28);
            image.extend(levels);
        }
    }
    images
}

fn error_of(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    value["error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_header_describes_the_model() {
    let app = app("mnist-class", Limits::default());
    let (status, body) = get(&app, "/api/model").await;
    assert_eq!(status, StatusCode::OK);
    let header: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(header["levels"], 4);
    assert_eq!(
        header["conditioning"],
        json!({"kind": "class", "classes": 10})
    );
    assert_eq!(header["parameters"], 227_492);
    assert_eq!(
        (header["height"].clone(), header["width"].clone()),
        (json!(28), json!(28))
    );
    assert_eq!(header["test_images"], 1_000);
    assert_eq!(header["limits"]["max_images"], 64);
    let (status, page) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<canvas id=\"gen-grid\""), "{page:.200}");
    for asset in ["/page.js", "/page.css"] {
        assert_eq!(get(&app, asset).await.0, StatusCode::OK, "{asset}");
    }
}

#[tokio::test]
async fn generation_streams_the_samplers_images() {
    let app = app("mnist-class", Limits::default());
    let request = json!({"n": 3, "seed": 7, "temperature": 0.9, "class": "all"});
    let (status, body) = post(&app, "/api/generate", &request).await;
    assert_eq!(status, StatusCode::OK);
    let streamed = streamed_images(&body, 3);

    let (config, model, _) = shipped("mnist-class");
    let device = Device::flex();
    let options = SamplingOptions {
        levels: 4,
        channels: 1,
        height: 28,
        width: 28,
        temperature: 0.9,
        sampler: Sampler::Cached,
    };
    let start = Start::blank(&options, 7, 0..3);
    let classes = one_hot(&[0, 1, 2], 10, &device);
    let drawn = Generation::new(&model, start, Some(classes), options, &device).finish();
    assert_eq!(streamed, drawn);
    assert!(drawn.iter().all(|image| image.iter().any(|&l| l > 0)));
    assert_eq!(
        config.model.conditioning,
        Conditioning::Class { classes: 10 }
    );
}

#[tokio::test]
async fn classes_that_the_data_set_names_are_offered_and_taken_by_name() {
    let (status, body) = get(&app("mnist-class", Limits::default()), "/api/model").await;
    assert_eq!(status, StatusCode::OK);
    let header: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        header["class_names"],
        Value::Null,
        "MNIST's classes are their numbers"
    );

    // The same 10-class model, as though trained on Fashion-MNIST.
    let (mut config, model, test) = shipped("mnist-class");
    config.dataset = Dataset::FashionMnist;
    let served = Served {
        name: "fashion".into(),
        config,
        model,
        test: Some(test),
        score: None,
        device: Device::flex(),
    };
    let app = router(served, Limits::default()).unwrap();
    let (_, body) = get(&app, "/api/model").await;
    let header: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(header["class_names"][7], "sneaker");
    assert_eq!(header["class_names"].as_array().unwrap().len(), 10);
    let draw = |class: Value| {
        let app = app.clone();
        async move {
            let request = json!({"n": 2, "seed": 3, "class": class});
            let (status, body) = post(&app, "/api/generate", &request).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            streamed_images(&body, 2)
        }
    };
    assert_eq!(draw(json!("Sneaker")).await, draw(json!(7)).await);
    assert_ne!(draw(json!("sneaker")).await, draw(json!(8)).await);
    let (status, body) = post(&app, "/api/generate", &json!({"n": 1, "class": "hat"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_of(&body).contains("(t-shirt, trouser"), "{body}");
}

#[tokio::test]
async fn completion_keeps_the_given_rows() {
    let app = app("mnist-class", Limits::default());
    let (_, _, test) = shipped("mnist-class");
    let image = test.levels(0, 4);
    let label = test.labels.as_ref().unwrap()[0];
    let request = json!({"image": image, "rows": 12, "n": 2, "seed": 1, "class": label});
    let (status, body) = post(&app, "/api/complete", &request).await;
    assert_eq!(status, StatusCode::OK);
    let completions = streamed_images(&body, 2);
    for completion in &completions {
        assert_eq!(completion[..12 * 28], image[..12 * 28]);
    }
    assert_ne!(completions[0][12 * 28..], completions[1][12 * 28..]);
}

#[tokio::test]
async fn the_heat_map_totals_what_eval_gives() {
    let app = app("mnist-class", Limits::default());
    let (config, model, test) = shipped("mnist-class");
    for index in [0, 17] {
        let image = test.levels(index, 4);
        let label = test.labels.as_ref().unwrap()[index];
        let request = json!({"image": image, "class": label});
        let (status, body) = post(&app, "/api/nll", &request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let surprise: Value = serde_json::from_str(&body).unwrap();
        let pixels: Vec<f64> = serde_json::from_value(surprise["pixels"].clone()).unwrap();
        assert_eq!(pixels.len(), 784);
        let total = surprise["nll_nats"].as_f64().unwrap();
        assert!((pixels.iter().sum::<f64>() - total).abs() < 1e-3);
        let one = test.select(&[index]);
        let eval = evaluate(&model, &config.model, &one, 1, &Device::flex()).unwrap();
        assert!(
            (total - eval.nll_nats).abs() < 1e-3,
            "{total} vs {}",
            eval.nll_nats
        );
        let bits = surprise["bits_per_dim"].as_f64().unwrap();
        assert!((bits - eval.bits_per_dim).abs() < 1e-5);
    }
}

#[tokio::test]
async fn test_images_and_autoencoder_decodings() {
    let app = app("mnist-autoencoder", Limits::default());
    let (_, _, test) = shipped("mnist-autoencoder");
    let (status, body) = get(&app, "/api/test-image/5").await;
    assert_eq!(status, StatusCode::OK);
    let image: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(image["image"], json!(test.levels(5, 4)));
    assert_eq!(image["label"], test.labels.as_ref().unwrap()[5]);
    let (status, body) = post(&app, "/api/reconstruct", &json!({"index": 5, "n": 2})).await;
    assert_eq!(status, StatusCode::OK);
    streamed_images(&body, 2);
    let (status, body) = post(&app, "/api/generate", &json!({"n": 2})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&body).contains("/api/reconstruct"));
    let (status, body) = post(&app, "/api/reconstruct", &json!({"index": 1000, "n": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&body).contains("0..=999, got 1000"), "{body}");
    let (status, body) = post(&app, "/api/nll", &json!({"image": test.levels(5, 4)})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_message() {
    let app = app("mnist-class", Limits::default());
    let blank = vec![0u8; 784];
    let mut out_of_range = blank.clone();
    out_of_range[100] = 4;
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "/api/complete",
            json!({"image": vec![0; 10], "rows": 3, "n": 1, "class": 1}),
            StatusCode::BAD_REQUEST,
            "784 levels",
        ),
        (
            "/api/nll",
            json!({"image": out_of_range, "class": 1}),
            StatusCode::BAD_REQUEST,
            "levels 0..=3: got 4 at position 100",
        ),
        (
            "/api/nll",
            json!({"image": blank, "class": -1}),
            StatusCode::BAD_REQUEST,
            "unknown class -1",
        ),
        (
            "/api/nll",
            json!({"image": blank, "class": "all"}),
            StatusCode::BAD_REQUEST,
            "one class",
        ),
        (
            "/api/generate",
            json!({"n": 2, "class": 12}),
            StatusCode::BAD_REQUEST,
            "unknown class 12",
        ),
        (
            "/api/generate",
            json!({"n": 2, "class": "some"}),
            StatusCode::BAD_REQUEST,
            "unknown class",
        ),
        (
            "/api/generate",
            json!({"n": 2}),
            StatusCode::BAD_REQUEST,
            "give \"class\"",
        ),
        (
            "/api/generate",
            json!({"n": 65, "class": 1}),
            StatusCode::BAD_REQUEST,
            "1..=64, got 65",
        ),
        (
            "/api/generate",
            json!({"n": 0, "class": 1}),
            StatusCode::BAD_REQUEST,
            "1..=64, got 0",
        ),
        (
            "/api/generate",
            json!({"n": 2, "class": 1, "temperature": 11}),
            StatusCode::BAD_REQUEST,
            "temperature",
        ),
        (
            "/api/generate",
            json!({"n": 2, "class": 1, "seed": -3}),
            StatusCode::BAD_REQUEST,
            "seed",
        ),
        (
            "/api/generate",
            json!({"n": 2, "class": 1, "colour": 3}),
            StatusCode::BAD_REQUEST,
            "unknown field `colour`",
        ),
        (
            "/api/complete",
            json!({"image": blank, "rows": 28, "n": 1, "class": 1}),
            StatusCode::BAD_REQUEST,
            "0..=27, got 28",
        ),
        (
            "/api/reconstruct",
            json!({"index": 0, "n": 1}),
            StatusCode::BAD_REQUEST,
            "not an auto-encoder",
        ),
    ];
    for (path, body, status, message) in cases {
        let (got, answer) = post(&app, path, &body).await;
        assert_eq!(got, status, "{path} {body}: {answer}");
        let error = error_of(&answer);
        assert!(error.contains(message), "{path} {body}: {error}");
    }
    let (status, body) = send(&app, post_request("/api/generate", "{\"n\": 2,")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&body).contains("parse"), "{body}");
    let oversized = format!("{{\"image\": [{}0]}}", "0,".repeat(40_000));
    let (status, body) = send(&app, post_request("/api/nll", oversized)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    error_of(&body);
    let untyped = Request::post("/api/nll").body(Body::from("{}")).unwrap();
    let (status, body) = send(&app, untyped).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    error_of(&body);
    for path in ["/api/test-image/1000", "/api/test-image/x", "/api/nothing"] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        error_of(&body);
    }
    let (status, body) = get(&app, "/api/generate").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        error_of(&body).contains("does not take that method"),
        "{body}"
    );
    let (status, body) = post(&app, "/api/model", &json!({})).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    error_of(&body);
    let unconditional = self::app("mnist-binarized", Limits::default());
    let (status, body) = post(
        &unconditional,
        "/api/generate",
        &json!({"n": 1, "class": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&body).contains("not class-conditional"));
}

#[tokio::test]
async fn draws_beyond_the_cap_are_refused_and_a_closed_stream_frees_its_slot() {
    let limits = Limits {
        max_draws: 1,
        ..Limits::default()
    };
    let app = app("mnist-class", limits);
    let request = || {
        post_request(
            "/api/generate",
            json!({"n": 64, "class": "all"}).to_string(),
        )
    };
    // Read nothing: the draw stops once a few rows wait, and keeps its slot.
    let held = app.clone().oneshot(request()).await.unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    let (status, body) = send(&app, request()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error_of(&body).contains("try again"));
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, _) = send(&app, request()).await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            std::time::Instant::now() < deadline,
            "the closed stream kept its slot"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[test]
fn models_the_page_cannot_condition_are_refused() {
    let (mut config, _, test) = shipped("mnist-class");
    config.model.conditioning = Conditioning::Embedding { dim: 3 };
    let device = Device::flex();
    let served = Served {
        name: "vectors".into(),
        model: config.model.init(&device),
        config,
        test: Some(test),
        score: None,
        device,
    };
    let error = router(served, Limits::default()).err().unwrap().to_string();
    assert!(error.contains("vectors of 3 numbers"), "{error}");
}
