//! IDX images and labels, raw or gzipped; images into an image set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixelcnn::data::{ImageSet, idx};

fuzz_target!(|bytes: &[u8]| {
    if let Some(array) = idx::parse(bytes).ok().filter(|a| a.dims.len() != 1) {
        let _ = ImageSet::from_idx(array, None);
    }
});
