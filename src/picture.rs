//! Image grids: many small images tiled into one PNG, the usual way to look at a generative
//! model's samples.

use std::path::Path;

use image::{GrayImage, Luma};

use crate::checkpoint::CheckpointError;
use crate::data::dequantize;

/// Gap in pixels between tiles.
const GAP: u32 = 2;

/// Tiles images of `levels` (`height · width` each) into a grid of `columns` columns, upscaled
/// by `scale` (nearest neighbour), on a mid-gray background.
pub fn grid(
    images: &[Vec<u8>],
    levels: usize,
    height: usize,
    width: usize,
    columns: usize,
    scale: u32,
) -> GrayImage {
    let columns = columns.clamp(1, images.len().max(1)) as u32;
    let rows = images.len().div_ceil(columns as usize).max(1) as u32;
    let (tile_h, tile_w) = (height as u32 * scale, width as u32 * scale);
    let mut canvas = GrayImage::from_pixel(
        columns * (tile_w + GAP) + GAP,
        rows * (tile_h + GAP) + GAP,
        Luma([128]),
    );
    for (index, image) in images.iter().enumerate() {
        let (row, column) = (index as u32 / columns, index as u32 % columns);
        let (top, left) = (GAP + row * (tile_h + GAP), GAP + column * (tile_w + GAP));
        for y in 0..tile_h {
            for x in 0..tile_w {
                let level = image[(y / scale) as usize * width + (x / scale) as usize];
                canvas.put_pixel(left + x, top + y, Luma([dequantize(level, levels)]));
            }
        }
    }
    canvas
}

/// Saves `picture` as a PNG, atomically.
pub fn save_png(picture: &GrayImage, path: &Path) -> Result<(), CheckpointError> {
    let mut bytes = Vec::new();
    picture
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encoding a PNG in memory cannot fail");
    crate::checkpoint::write_atomically(path, &bytes)
}
