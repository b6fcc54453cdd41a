//! A conditioning-vector file (.npy float32 [N, d]).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixelcnn::data::Embeddings;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(embeddings) = Embeddings::parse_npy(bytes) {
        assert!(embeddings.dim > 0);
        assert_eq!(embeddings.values.len() % embeddings.dim, 0);
    }
});
