//! Catching panics without printing them (`pixelcnn::quiet_panic`), as checkpoint decoding and
//! the device probe do, touches the program's panic hook only once the program calls
//! `quiet_panic::install`, and leaves it in place: it still reports every other panic, also
//! after many threads decoded at once. (Swapping the hook around each decode failed
//! here: two threads could each put back the other's silent hook, or one thread's decode panic
//! reached the program's hook while another had already restored it.)
//!
//! One test in a binary of its own, its steps in order: it sets the process-wide panic hook, and
//! a section that silences every thread must not overlap the panics it expects to see.

use std::sync::Mutex;

use burn::prelude::Device;
use pixelcnn::checkpoint::Checkpoint;
use pixelcnn::quiet_panic::catch_quietly_anywhere;

/// The messages of the panics the program's hook was given.
static REPORTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn reported() -> Vec<String> {
    REPORTED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Decodes a checkpoint that makes burn panic, 100 times on each of 16 threads at once.
fn decode_malformed_concurrently() {
    // burn panics while decoding this optimiser record (found by fuzzing).
    let malformed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/regressions/checkpoint/optimiser-record-without-param-id.bin"
    ))
    .unwrap();
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                for _ in 0..100 {
                    let error = Checkpoint::decode(&malformed, &Device::flex())
                        .err()
                        .expect("a malformed checkpoint is refused");
                    assert_eq!(
                        error.to_string(),
                        "corrupt optimiser state: the record is malformed"
                    );
                }
            });
        }
    });
}

#[test]
fn quiet_sections_keep_their_panics_quiet_and_the_hook_in_place() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map_or("?".to_string(), |s| s.to_string());
        REPORTED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
    }));

    // Until the program installs the quiet hook, the library leaves the panic hook alone: the
    // program's own hook sees every decode panic (each decode is still refused with an error).
    decode_malformed_concurrently();
    assert_eq!(
        reported().len(),
        16 * 100,
        "the program's hook saw each decode panic"
    );
    REPORTED.lock().unwrap_or_else(|e| e.into_inner()).clear();
    pixelcnn::quiet_panic::install();

    decode_malformed_concurrently();
    assert_eq!(
        reported(),
        Vec::<String>::new(),
        "decode panics were printed"
    );

    // A GPU runtime fails on its own thread first, then the caller's request fails too: the
    // first message is the one reported, and neither reaches the hook.
    let probe = catch_quietly_anywhere(|| -> f32 {
        let runtime = std::thread::spawn(|| panic!("no adapter found"));
        assert!(runtime.join().is_err());
        panic!("the runtime's channel closed")
    });
    assert_eq!(probe, Err("no adapter found".to_string()));
    assert_eq!(catch_quietly_anywhere(|| 3), Ok(3));
    assert_eq!(
        reported(),
        Vec::<String>::new(),
        "probe panics were printed"
    );

    let outside = std::thread::spawn(|| panic!("a panic outside any quiet section")).join();
    assert!(outside.is_err());
    assert_eq!(reported(), ["a panic outside any quiet section"]);
}
