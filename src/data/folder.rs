//! A folder of PNG or JPEG images — the way users bring their own data. Images either lie in
//! the folder itself (no labels) or in one sub-folder per class, whose sorted names give the
//! labels 0, 1, …. Every image is centre-cropped to a square and resized to the requested size,
//! and stored as grayscale or RGB.

use std::path::{Path, PathBuf};

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader};

use super::{DataError, ImageSet};
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
            "--image-size must be between 1 and {MAX_IMAGE_SIDE}, got {}",
            options.size
        )));
    }
    let (files, labels) = list(dir)?;
    let images = files
        .iter()
        .map(|path| {
            let file_error = |message: String| DataError::File {
                path: path.clone(),
                message,
            };
            let bytes = std::fs::read(path).map_err(|e| file_error(e.to_string()))?;
            decode(&bytes).map_err(|e| file_error(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let channels = options.channels.unwrap_or_else(|| {
        if images.iter().any(|i| i.color().has_color()) {
            3
        } else {
            1
        }
    });
    let mut pixels = Vec::with_capacity(images.len() * channels * options.size.pow(2));
    for image in &images {
        pixels.extend(square_planes(image, options.size, channels));
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

/// Decodes a PNG or JPEG file's bytes (the format is told by its content; other formats are
/// refused, whatever the file's name).
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, DataError> {
    let unreadable =
        |e: &dyn std::fmt::Display| DataError::Format(format!("cannot read the image: {e}"));
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| unreadable(&e))?;
    if !matches!(reader.format(), Some(ImageFormat::Png | ImageFormat::Jpeg)) {
        return Err(unreadable(&"not a PNG or JPEG file"));
    }
    let image = reader.decode().map_err(|e| unreadable(&e))?;
    if image.width() == 0 || image.height() == 0 {
        return Err(DataError::Format("the image is empty (0 pixels)".into()));
    }
    Ok(image)
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
