//! A checkpoint file: header, model config, weights and optimiser state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixelcnn::checkpoint::Checkpoint;

fuzz_target!(|bytes: &[u8]| {
    let _ = Checkpoint::decode(bytes, &burn::prelude::Device::flex());
});
