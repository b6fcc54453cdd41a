//! The font of every label and plot the program draws: DejaVu Sans, shipped in the binary and
//! registered with plotters (whose font registry is process-wide) on first use; and the bitmap
//! every chart is drawn on in it.

use std::error::Error;
use std::path::Path;
use std::sync::Once;

use image::RgbImage;
use pixelcnn::picture::{self, PictureError};
use plotters::prelude::*;

/// Draws a chart of `size` (width, height) with `draw`, in the font, and saves it at `path`
/// (its format by the extension, as [`picture::save`]).
pub fn save_chart(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&mut [u8], (u32, u32)) -> Result<(), Box<dyn Error>>,
) -> Result<(), PictureError> {
    register_font();
    let (width, height) = size;
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    draw(&mut buffer, size).map_err(|e| PictureError::Draw(e.to_string()))?;
    let chart = RgbImage::from_raw(width, height, buffer).expect("buffer has the right size");
    picture::save(&chart, path)
}

/// The font of every label and plot, registered with plotters under this name.
pub const FONT: &str = "sans-serif";

/// Registers the font shipped in the binary (DejaVu Sans) with plotters.
pub fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        )
        .unwrap_or_else(|_| panic!("the embedded font is a valid TrueType font"));
    });
}

/// `picture` with a strip above it holding `text`.
pub fn labelled(picture: &RgbImage, text: &str) -> RgbImage {
    register_font();
    const STRIP: u32 = 20;
    let (width, height) = (picture.width(), picture.height() + STRIP);
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        let style = TextStyle::from((FONT, 15).into_font()).color(&BLACK);
        root.draw_text(text, &style, (4, 2))
            .expect("drawing into a buffer cannot fail");
        root.present().expect("drawing into a buffer cannot fail");
    }
    let mut canvas = RgbImage::from_raw(width, height, buffer).expect("buffer has the right size");
    image::imageops::replace(&mut canvas, picture, 0, i64::from(STRIP));
    canvas
}
