//! A PNG or JPEG file of an image folder, decoded and cropped and resized to a square. The first
//! byte picks the size (1..=64) and grayscale or RGB.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixelcnn::data::folder;

fuzz_target!(|bytes: &[u8]| {
    let Some((&choice, file)) = bytes.split_first() else {
        return;
    };
    let size = usize::from(choice % 64) + 1;
    let channels = if choice >= 128 { 3 } else { 1 };
    if let Ok(image) = folder::decode(file) {
        let planes = folder::square_planes(&image, size, channels);
        assert_eq!(planes.len(), channels * size * size);
    }
});
