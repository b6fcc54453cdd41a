//! A run folder's config.json; one that parses must describe a model that can be built.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixelcnn::run_config::RunConfig;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(config) = RunConfig::from_json(bytes) {
        // Building a huge model is not a parser's concern: only build small ones.
        let model = &config.model;
        let small = model.channels <= 64
            && model.head_channels <= 64
            && model.layers <= 8
            && model.conditioning.dim().unwrap_or(0) <= 64
            && model
                .spatial
                .is_none_or(|s| s.channels <= 64 && s.height * s.width <= 4096)
            && model
                .latent
                .is_none_or(|l| l.dim <= 64 && l.height * l.width <= 4096)
            && model.first_kernel <= 9
            && model.kernel <= 9;
        if small {
            let _ = model.init(&burn::prelude::Device::flex());
        }
    }
});
