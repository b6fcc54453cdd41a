//! The training-progress animation: the sample grid of every interval (drawn with the same
//! seed, so the pictures differ only by what the model learned) as the frames of a GIF, each
//! labelled with its step.

use std::io;
use std::path::PathBuf;

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame};

use pixelcnn::files::write_atomically_with;
use pixelcnn::picture::PictureError;

use crate::font::labelled;
use pixelcnn::run_dir::RunDir;

/// Time each frame is shown.
const FRAME_MILLISECONDS: u32 = 700;

/// The run's sample grids `(step, path)`, in step order.
pub fn sample_grids(run: &RunDir) -> Result<Vec<(usize, PathBuf)>, PictureError> {
    let dir = run.root();
    let entries = std::fs::read_dir(dir).map_err(|source| PictureError::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut grids: Vec<(usize, PathBuf)> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let step = name
                .strip_prefix("samples_step")?
                .strip_suffix(".png")?
                .parse()
                .ok()?;
            Some((step, path))
        })
        .collect();
    grids.sort();
    Ok(grids)
}

/// Writes `progress.gif` from the run's sample grids; returns the number of frames.
pub fn write_progress_gif(run: &RunDir) -> Result<usize, PictureError> {
    let grids = sample_grids(run)?;
    if grids.is_empty() {
        return Err(PictureError::NoSampleGrids {
            dir: run.root().to_path_buf(),
        });
    }
    let mut frames = Vec::with_capacity(grids.len());
    for (step, path) in &grids {
        let grid = image::open(path)
            .map_err(|error| PictureError::Decode {
                path: path.clone(),
                error,
            })?
            .to_rgb8();
        let frame =
            image::DynamicImage::ImageRgb8(labelled(&grid, &format!("step {step}"))).to_rgba8();
        frames.push(Frame::from_parts(
            frame,
            0,
            0,
            Delay::from_numer_denom_ms(FRAME_MILLISECONDS, 1),
        ));
    }
    let path = run.progress_gif_path();
    write_atomically_with(&path, |file| {
        let mut encoder = GifEncoder::new_with_speed(file, 10);
        encoder
            .set_repeat(Repeat::Infinite)
            .map_err(io::Error::other)?;
        encoder.encode_frames(frames).map_err(io::Error::other)
    })?;
    Ok(grids.len())
}
