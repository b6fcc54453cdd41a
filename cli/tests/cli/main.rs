//! The command line's tests, in one binary: the `pixelcnn` program run as a user runs it, and the
//! library functions behind it (training runs, data readers, the server's router). They share
//! `common` (small data sets made in memory, the program's path, a tiny run's flags).
//!
//! - `commands`: every command's flags, outputs and errors;
//! - `crash`: killed and resumed runs, full and read-only disks;
//! - `data`: the data readers and their errors;
//! - `export_peer`: exported weights in the PyTorch peer;
//! - `hostile_input`: crafted files and inputs refused within bounds;
//! - `pretrained`: the shipped models score what their cards say;
//! - `serve`: the page and API of `pixelcnn serve`;
//! - `training`: runs, checkpoints and exact resume through the library.

mod commands;
mod common;
mod crash;
mod data;
mod export_peer;
mod hostile_input;
mod pretrained;
mod serve;
mod training;
