//! A file of per-image likelihoods (`pixelcnn eval --per-image`, read by `pixelcnn histogram`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixelcnn::per_image::parse_per_image;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(values) = parse_per_image(bytes) {
        assert!(!values.is_empty() && values.iter().all(|v| v.is_finite()));
    }
});
