//! Pictures of images: tiles (gray images, occluded images, heat maps) and grids of tiles,
//! written in the format their file name asks for (PNG, JPEG, GIF or BMP); and [`PictureError`],
//! why a picture could not be made or written.

use std::path::{Path, PathBuf};

use image::{ImageError, ImageFormat, Rgb, RgbImage};

use crate::data::dequantize;
use crate::files::{FileError, check_file_target, write_atomically};
use crate::run_log::LogError;

/// Why a picture could not be made or written.
///
/// An [`ImageError`] is shown in the message and not returned as the source: its own message
/// already includes its source (`Format error decoding Png: …`), so a report of the error chain
/// would show that cause twice.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error("cannot read {}", path.display())]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {error}", path.display())]
    Decode { path: PathBuf, error: ImageError },
    #[error("cannot write {}: {error}", path.display())]
    Write { path: PathBuf, error: ImageError },
    #[error(
        "{}: a picture's name must end in {} (any case), the format it is written in",
        path.display(),
        accepted_extensions()
    )]
    Format { path: PathBuf },
    #[error("{} holds no sample grids (samples_step*.png) yet", dir.display())]
    NoSampleGrids { dir: PathBuf },
    #[error("cannot draw the loss plot: {0}")]
    Draw(String),
    /// The run's logs, which the loss plot draws.
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Save(#[from] FileError),
}

/// The most tiles in a grid the `pixelcnn` commands write.
pub const MAX_GRID_TILES: usize = 1024;
/// The longest side, in pixels, of a grid the `pixelcnn` commands write: within JPEG's 65,535,
/// and 768 MiB of RGB at most.
pub const MAX_GRID_SIDE: u64 = 16_384;

/// The file extensions a picture may be saved under, and the format each names.
const FORMATS: [(&str, ImageFormat); 5] = [
    ("png", ImageFormat::Png),
    ("jpg", ImageFormat::Jpeg),
    ("jpeg", ImageFormat::Jpeg),
    ("gif", ImageFormat::Gif),
    ("bmp", ImageFormat::Bmp),
];

/// Gap in pixels between tiles.
const GAP: u32 = 2;
const BACKGROUND: Rgb<u8> = Rgb([128, 128, 128]);
/// Colour of the hidden part of an occluded image.
const HIDDEN: Rgb<u8> = Rgb([40, 60, 140]);
/// An image of `levels` shown as intensities: grayscale, or RGB when `image` holds three
/// channel planes.
pub fn levels_tile(image: &[u8], levels: usize, height: usize, width: usize) -> RgbImage {
    let plane = height * width;
    let colour = image.len() >= 3 * plane;
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let at = y as usize * width + x as usize;
        let value = |channel: usize| dequantize(image[channel * plane + at], levels);
        if colour {
            Rgb([value(0), value(1), value(2)])
        } else {
            Rgb([value(0); 3])
        }
    })
}

/// Like [`levels_tile`], with every row from `visible_rows` on painted over.
pub fn occluded_tile(
    image: &[u8],
    levels: usize,
    height: usize,
    width: usize,
    visible_rows: usize,
) -> RgbImage {
    let mut tile = levels_tile(image, levels, height, width);
    for (_, y, pixel) in tile.enumerate_pixels_mut() {
        if y as usize >= visible_rows {
            *pixel = HIDDEN;
        }
    }
    tile
}

/// A heat map of `values` (row-major, `height × width`) scaled so that `max` is the hottest:
/// black, red, yellow, white.
pub fn heat_tile(values: &[f32], max: f32, height: usize, width: usize) -> RgbImage {
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let t =
            (values[y as usize * width + x as usize] / max.max(f32::MIN_POSITIVE)).clamp(0.0, 1.0);
        let channel = |from: f32| ((t * 3.0 - from).clamp(0.0, 1.0) * 255.0) as u8;
        Rgb([channel(0.0), channel(1.0), channel(2.0)])
    })
}

/// `tile` upscaled `scale` times (nearest neighbour).
pub fn scaled(tile: &RgbImage, scale: u32) -> RgbImage {
    RgbImage::from_fn(tile.width() * scale, tile.height() * scale, |x, y| {
        *tile.get_pixel(x / scale, y / scale)
    })
}

/// The columns and rows of a grid of `tiles` tiles in rows of `columns`.
fn grid_shape(tiles: usize, columns: usize) -> (u64, u64) {
    let columns = columns.clamp(1, tiles.max(1));
    (columns as u64, tiles.div_ceil(columns).max(1) as u64)
}

/// Width and height in pixels of the [`grid`] of `tiles` tiles of `width × height` pixels in
/// rows of `columns`, each upscaled `scale` times.
pub fn grid_size(
    tiles: usize,
    columns: usize,
    (width, height): (u32, u32),
    scale: u32,
) -> (u64, u64) {
    let (columns, rows) = grid_shape(tiles, columns);
    let side = |count: u64, tile: u32| {
        count
            .saturating_mul(u64::from(tile) * u64::from(scale) + u64::from(GAP))
            .saturating_add(u64::from(GAP))
    };
    (side(columns, width), side(rows, height))
}

/// Tiles of equal size in rows of `columns`, each upscaled by `scale` (nearest neighbour).
pub fn grid(tiles: &[RgbImage], columns: usize, scale: u32) -> RgbImage {
    let tile = tiles.first().map_or((1, 1), |t| (t.width(), t.height()));
    let (width, height) = grid_size(tiles.len(), columns, tile, scale);
    let (columns, _) = grid_shape(tiles.len(), columns);
    let mut canvas = RgbImage::from_pixel(width as u32, height as u32, BACKGROUND);
    let (step_x, step_y) = (tile.0 * scale + GAP, tile.1 * scale + GAP);
    for (index, tile) in tiles.iter().enumerate() {
        let (row, column) = (index as u64 / columns, index as u64 % columns);
        let (top, left) = (GAP + row as u32 * step_y, GAP + column as u32 * step_x);
        image::imageops::replace(&mut canvas, &scaled(tile, scale), left.into(), top.into());
    }
    canvas
}

/// "`.png`, `.jpg`, `.jpeg`, `.gif` or `.bmp`": the extensions [`save`] accepts.
pub fn accepted_extensions() -> String {
    let names: Vec<String> = FORMATS.iter().map(|(ext, _)| format!(".{ext}")).collect();
    let (last, rest) = names.split_last().expect("there are formats");
    format!("{} or {last}", rest.join(", "))
}

/// The picture format the extension of `path` names, in any case.
pub fn format_of(path: &Path) -> Result<ImageFormat, PictureError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    FORMATS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(extension))
        .map(|&(_, format)| format)
        .ok_or_else(|| PictureError::Format {
            path: path.to_path_buf(),
        })
}

/// Checks, before any work, that a picture can be written to `path`: its name gives a format
/// ([`format_of`]) and no folder stands there.
pub fn check_target(path: &Path) -> Result<ImageFormat, PictureError> {
    let format = format_of(path)?;
    check_file_target(path)?;
    Ok(format)
}

/// Saves `picture`, atomically, in the format the extension of `path` names ([`format_of`]).
pub fn save(picture: &RgbImage, path: &Path) -> Result<(), PictureError> {
    let format = format_of(path)?;
    let mut bytes = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .map_err(|error| PictureError::Write {
            path: path.to_path_buf(),
            error,
        })?;
    Ok(write_atomically(path, &bytes)?)
}
