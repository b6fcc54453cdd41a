//! What the `pixelcnn` program has beyond the `pixelcnn` library: the web page and API of
//! `pixelcnn serve` ([`serve`]), the benchmarks of `pixelcnn bench` ([`bench`](mod@bench)), and the
//! pictures it draws about runs and data sets — loss plots ([`plot`]), the training-progress
//! animation ([`animation`]) and likelihood histograms ([`histogram`]) — in the font it ships
//! ([`font`]). They live here so that the library needs neither a web server nor a plotting
//! library, and keeps no process-wide font registry.

pub mod animation;
pub mod bench;
pub mod font;
pub mod histogram;
pub mod plot;
pub mod serve;
