//! The models the pixelcnn project trained and ships, as bytes: each one's safetensors file
//! (written by `pixelcnn export`: the weights and, in the metadata, the run's settings) and its
//! card (JSON: how it was trained and what it scores). The `pixelcnn` library reads them
//! (`pixelcnn::pretrained`); this crate holds the bytes only, so that it depends on nothing.

/// A shipped model's files.
#[derive(Debug, Clone, Copy)]
pub struct Shipped {
    /// The name `--pretrained` takes.
    pub name: &'static str,
    /// `NAME.safetensors`.
    pub weights: &'static [u8],
    /// `NAME.json`.
    pub card: &'static str,
}

macro_rules! shipped {
    ($($name:literal),+ $(,)?) => {
        &[$(Shipped {
            name: $name,
            weights: include_bytes!(concat!("../", $name, ".safetensors")),
            card: include_str!(concat!("../", $name, ".json")),
        }),+]
    };
}

/// Every shipped model.
pub const ALL: &[Shipped] = shipped!("mnist-binarized", "mnist-class", "mnist-autoencoder");
