//! The page in a real browser: `pixelcnn serve` of a shipped class-conditional model, and
//! headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`) that loads
//! the page, generates a grid and waits for it to fill, draws a stroke with the mouse, sees the
//! likelihood change, asks for completions and checks that they keep the drawn rows; the
//! screenshot is saved in the target folder's test directory. Without `chromedriver` on the PATH
//! the test says so and passes, unless `PIXELCNN_REQUIRE_BROWSER=1` (set by CI) makes that a
//! failure.
//!
//! The test runs the program as a user does, built beforehand (`cargo build --release -p
//! pixelcnn-cli`; `PIXELCNN_BIN` names another one), so that this crate's WebDriver client is no
//! dependency of the program's own tests.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// Ends a process (the server, the WebDriver) with the test.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `pixelcnn` program under test.
fn program() -> PathBuf {
    let path = std::env::var_os("PIXELCNN_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/pixelcnn"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo build --release -p pixelcnn-cli) or name the \
         program in PIXELCNN_BIN",
        path.display()
    );
    path
}

/// Starts `pixelcnn serve` for shipped model `name` on a free port of this machine, and gives
/// the page's address once the server says it is listening.
fn serve(name: &str) -> (Killed, String) {
    let mut child = Command::new(program())
        .args(["serve", "--pretrained", name, "--addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let server = Killed(child);
    let (address, found) = mpsc::channel();
    // Reads what the server says to its end, so that it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let said = line
                .strip_prefix("serving ")
                .and_then(|rest| rest.split(" at ").nth(1));
            if let Some(url) = said.and_then(|rest| rest.split(' ').next()) {
                let _ = address.send(url.to_string());
            }
        }
    });
    let url = found
        .recv_timeout(Duration::from_secs(120))
        .expect("the server said where it listens");
    (server, url)
}

fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromedriver"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn connect(port: u16) -> Client {
    let capabilities = json!({
        "goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1000,1400"]
        }
    });
    let capabilities = capabilities.as_object().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match attempt {
            Ok(client) => return client,
            Err(error) if Instant::now() > deadline => panic!("no WebDriver session: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn script(client: &Client, code: &str) -> Value {
    client.execute(code, vec![]).await.unwrap()
}

/// Waits (at most `seconds`) until `condition`, a script returning a boolean, holds.
async fn wait_for(client: &Client, condition: &str, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while script(client, condition).await != json!(true) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {condition}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks button `id` and waits (at most 2 minutes) until `done` holds.
async fn click_and_wait(client: &Client, id: &str, done: &str) {
    let button = client.find(Locator::Id(id)).await.unwrap();
    button.click().await.unwrap();
    wait_for(client, done, 120).await;
}

/// Pixels of canvas `id` whose red value is over 100.
async fn lit_pixels(client: &Client, id: &str) -> u64 {
    let code = format!(
        "const c = document.getElementById('{id}');
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
         let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 100) n++; return n;"
    );
    script(client, &code).await.as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_page_generates_and_completes_a_drawing_in_chromium() {
    let Some(driver) = chromedriver() else {
        let required = std::env::var("PIXELCNN_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "PIXELCNN_REQUIRE_BROWSER=1 but chromedriver is not on the PATH"
        );
        eprintln!("skipped: no chromedriver on the PATH (apt install chromium chromium-driver)");
        return;
    };
    let (_server, url) = serve("mnist-class");
    let port = free_port();
    let _driver = Killed(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = connect(port).await;
    client.goto(&url).await.unwrap();
    wait_for(&client, "return document.body.dataset.ready === 'yes'", 30).await;
    let header = script(
        &client,
        "return document.getElementById('model').textContent",
    )
    .await;
    assert!(
        header.as_str().unwrap().contains("227,492 parameters"),
        "{header}"
    );

    // Generate one column per class and wait for the stream to fill the grid.
    assert_eq!(lit_pixels(&client, "gen-grid").await, 0);
    click_and_wait(
        &client,
        "gen-start",
        "return document.body.dataset.generation === 'done'",
    )
    .await;
    let lit = lit_pixels(&client, "gen-grid").await;
    assert!(lit > 20 * 40, "20 digits light up more than {lit} pixels");

    // Draw a vertical stroke in the top half, as a user would with the mouse.
    let blank_surprise = script(&client, "return document.body.dataset.surprise").await;
    let canvas = client.find(Locator::Id("draw-canvas")).await.unwrap();
    let stroke = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: canvas,
            duration: None,
            x: 0.0,
            y: -100.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveBy {
            duration: Some(Duration::from_millis(300)),
            x: 5.0,
            y: 80.0,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    client.perform_actions(stroke).await.unwrap();
    let inked = script(
        &client,
        "return drawing.slice(0, 14 * 28).filter((l) => l > 0).length",
    )
    .await;
    assert!(
        inked.as_u64().unwrap() >= 10,
        "the stroke inked {inked} pixels of the kept rows"
    );
    let changed = format!("return document.body.dataset.surprise !== {blank_surprise}.toString()");
    wait_for(&client, &changed, 30).await;

    // Completions keep the 14 drawn rows.
    click_and_wait(
        &client,
        "draw-complete",
        "return document.body.dataset.completion === 'done'",
    )
    .await;
    let mismatches = script(
        &client,
        "const k = Number(document.getElementById('draw-rows').value);
         const n = Number(document.getElementById('draw-n').value);
         const c = document.getElementById('completions');
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
         const [W, H, K] = [model.width, model.height, model.levels];
         const columns = Math.min(n, 8);
         let bad = 0;
         for (let t = 0; t < n; t++) {
           const x0 = (t % columns) * (W + 1), y0 = Math.floor(t / columns) * (H + 1);
           for (let y = 0; y < k; y++) for (let x = 0; x < W; x++) {
             const shown = d[4 * ((y0 + y) * c.width + x0 + x)];
             if (Math.abs(shown - drawing[y * W + x] * 255 / (K - 1)) > 1) bad++;
           }
         }
         return bad;",
    )
    .await;
    assert_eq!(mismatches, json!(0));
    assert!(lit_pixels(&client, "completions").await > 8 * 20);

    let screenshot = client.screenshot().await.unwrap();
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-page.png");
    std::fs::write(&path, screenshot).unwrap();
    eprintln!("screenshot: {}", path.display());
    client.close().await.unwrap();
}
