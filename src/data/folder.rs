//! A folder of PNG or JPEG images — the way users bring their own data. Images either lie in
//! the folder itself (no labels) or in one sub-folder per class, whose sorted names give the
//! labels 0, 1, …. Every image is centre-cropped to a square and resized to the requested size,
//! and stored as grayscale or RGB.

use std::path::{Path, PathBuf};

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use super::{DataError, ImageSet};
use crate::files::read_bounded;
use crate::model::MAX_IMAGE_SIDE;

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// How a folder's images are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderOptions {
    /// Side of the square images.
    pub size: usize,
    /// 1 (grayscale) or 3 (RGB); `None` picks RGB if any image has colour.
    pub channels: Option<usize>,
}

/// Loads every image of `dir` in sorted path order, with class labels if it has class folders.
pub fn load(dir: &Path, options: FolderOptions) -> Result<ImageSet, DataError> {
    if !(1..=MAX_IMAGE_SIDE).contains(&options.size) {
        return Err(DataError::Format(format!(
            "the image size must be between 1 and {MAX_IMAGE_SIDE}, got {}",
            options.size
        )));
    }
    let (files, labels) = list(dir)?;
    let read = |path: &PathBuf| read_bounded(path, MAX_IMAGE_FILE_BYTES);
    // First the headers: sizes are checked, and the colour mode chosen, before any decoding.
    let mut total_pixels = 0u64;
    let mut any_colour = false;
    for path in &files {
        let header = inspect(&read(path)?).map_err(|e| e.in_file(path))?;
        total_pixels += header.pixels();
        any_colour |= header.colour;
    }
    if total_pixels > MAX_TOTAL_PIXELS {
        return Err(DataError::File {
            path: dir.to_path_buf(),
            message: format!(
                "its images hold {total_pixels} pixels in all, more than the {MAX_TOTAL_PIXELS} read at a time"
            ),
        });
    }
    let channels = options.channels.unwrap_or(if any_colour { 3 } else { 1 });
    let mut pixels = Vec::with_capacity(files.len() * channels * options.size.pow(2));
    for path in &files {
        let image = decode(&read(path)?).map_err(|e| e.in_file(path))?;
        pixels.extend(square_planes(&image, options.size, channels));
    }
    Ok(ImageSet {
        channels,
        height: options.size,
        width: options.size,
        pixels,
        labels,
        embeddings: None,
    })
}

/// The largest image file read.
const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;
/// The most pixels an image may have: 4096 × 4096, whose decoding takes 64 MiB at most.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 24;
/// The most pixels all of a folder's images may have together.
const MAX_TOTAL_PIXELS: u64 = 1 << 31;

/// The image files of `dir` in sorted order and, if they lie in class sub-folders, their labels.
fn list(dir: &Path) -> Result<(Vec<PathBuf>, Option<Vec<u8>>), DataError> {
    let folder_error = |message: String| DataError::File {
        path: dir.to_path_buf(),
        message,
    };
    let entries = sorted_entries(dir).map_err(|e| folder_error(e.to_string()))?;
    let (folders, files): (Vec<PathBuf>, Vec<PathBuf>) =
        entries.into_iter().partition(|path| path.is_dir());
    let files: Vec<PathBuf> = files.into_iter().filter(|p| is_image(p)).collect();
    let mut class_files = Vec::new();
    for folder in &folders {
        let images: Vec<PathBuf> = sorted_entries(folder)
            .map_err(|e| folder_error(e.to_string()))?
            .into_iter()
            .filter(|p| p.is_file() && is_image(p))
            .collect();
        if !images.is_empty() {
            class_files.push(images);
        }
    }
    match (files.is_empty(), class_files.is_empty()) {
        (false, true) => Ok((files, None)),
        (true, false) if class_files.len() <= 256 => {
            let labels = class_files
                .iter()
                .enumerate()
                .flat_map(|(class, images)| std::iter::repeat_n(class as u8, images.len()))
                .collect();
            Ok((class_files.concat(), Some(labels)))
        }
        (true, false) => Err(folder_error(format!(
            "{} class folders: at most 256 classes are supported",
            class_files.len()
        ))),
        (true, true) => Err(folder_error(
            "no PNG or JPEG images here or in its sub-folders".into(),
        )),
        (false, false) => Err(folder_error(
            "holds both images and class sub-folders with images: put every image in a class \
             folder, or none"
                .into(),
        )),
    }
}

/// The entries of `dir`, hidden ones left out, in sorted order.
fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            entries.push(path);
        }
    }
    entries.sort();
    Ok(entries)
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| EXTENSIONS.contains(&e.to_string_lossy().to_ascii_lowercase().as_str()))
}

/// What an image file's header says: its size and whether it has colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    pub colour: bool,
}

impl Header {
    fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Reads a PNG or JPEG file's header, without decoding its pixels: its format is told by its
/// content (other formats are refused, whatever the file's name), and an image of no pixels or
/// of more than [`MAX_IMAGE_PIXELS`] is refused.
pub fn inspect(bytes: &[u8]) -> Result<Header, DataError> {
    let decoder = reader(bytes)?.into_decoder().map_err(|e| unreadable(&e))?;
    let (width, height) = decoder.dimensions();
    let header = Header {
        width,
        height,
        colour: decoder.color_type().has_color(),
    };
    if header.pixels() == 0 {
        return Err(DataError::Format("the image is empty (0 pixels)".into()));
    }
    if header.pixels() > MAX_IMAGE_PIXELS {
        return Err(DataError::Format(format!(
            "the image is {width}×{height}, more than the {MAX_IMAGE_PIXELS} pixels read from one image"
        )));
    }
    Ok(header)
}

/// Decodes a PNG or JPEG file's bytes, after checking its header ([`inspect`]).
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, DataError> {
    inspect(bytes)?;
    let mut reader = reader(bytes)?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(4 * MAX_IMAGE_PIXELS);
    reader.limits(limits);
    reader.decode().map_err(|e| unreadable(&e))
}

/// A reader of a PNG or JPEG file's bytes.
fn reader(bytes: &[u8]) -> Result<ImageReader<Cursor<&[u8]>>, DataError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| unreadable(&e))?;
    if !matches!(reader.format(), Some(ImageFormat::Png | ImageFormat::Jpeg)) {
        return Err(unreadable(&"not a PNG or JPEG file"));
    }
    Ok(reader)
}

fn unreadable(error: &dyn std::fmt::Display) -> DataError {
    DataError::Format(format!("cannot read the image: {error}"))
}

/// The central square of `image` resized to `size × size` (bilinear), as `channels` planes of
/// bytes: 1 (grayscale) or 3 (R, G, B).
pub fn square_planes(image: &DynamicImage, size: usize, channels: usize) -> Vec<u8> {
    let side = size as u32;
    let (width, height) = (image.width(), image.height());
    let crop = width.min(height);
    let centre = image.crop_imm((width - crop) / 2, (height - crop) / 2, crop, crop);
    let square = if crop == side {
        centre
    } else {
        centre.resize_exact(side, side, FilterType::Triangle)
    };
    if channels == 1 {
        return square.to_luma8().into_raw();
    }
    let rgb = square.to_rgb8();
    (0..3)
        .flat_map(|c| rgb.pixels().map(move |p| p.0[c]))
        .collect()
}
