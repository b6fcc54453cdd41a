//! CIFAR-10 binary records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixelcnn::data::cifar;

fuzz_target!(|bytes: &[u8]| {
    let _ = cifar::parse(bytes);
});
