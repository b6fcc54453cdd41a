//! A weights file of `pixelcnn export` (safetensors, the run config in its metadata), as
//! `--weights` and the library read one from a stranger.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let device = burn::prelude::Device::flex();
    let _ = pixelcnn::export::from_safetensors(bytes.to_vec(), &device);
});
