//! Reading and writing files safely, whatever the file system holds.
//!
//! - A write goes to a temporary file created exclusively, under an unpredictable name, in the
//!   target's folder (so never through a planted symlink), is flushed to disk and renamed over
//!   the target: readers see the old file or the new one, never a mix, and on any failure the
//!   temporary file is removed and the target left as it was.
//! - A read takes a regular file only (a FIFO, a device or a folder would hang or never end),
//!   and refuses one larger than the caller's bound before reading any of it.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Why a file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The I/O error is the source, so that a report of the error chain shows it once.
    #[error("{}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error("{}: {size} bytes, more than the {limit} such a file may have", path.display())]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{}: is a folder, where a file is to be written", path.display())]
    IsFolder { path: PathBuf },
}

impl FileError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes `contents` to `path` atomically (see the module doc).
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    write_atomically_with(path, |file| file.write_all(contents))
}

/// Writes `path` atomically with `write`, which fills the temporary file.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), FileError> {
    check_file_target(path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut prefix = path.file_name().unwrap_or_default().to_os_string();
    prefix.push(".");
    let mut temp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(FileError::io(path))?;
    // On an error `temp` is dropped, which removes the temporary file.
    write(temp.as_file_mut())
        .and_then(|()| temp.as_file().sync_all())
        .map_err(FileError::io(path))?;
    temp.persist(path)
        .map_err(|error| FileError::io(path)(error.error))?;
    // Make the rename itself durable.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FileError::io(path))
}

/// Removes the temporary files that interrupted [`write_atomically`]s of `path` left behind (a
/// process killed mid-write cannot remove its own): files and links named `<name>.*.tmp` beside
/// it, never what a link points to. Only for a file that one process writes at a time, such as
/// a run's checkpoint; best effort, since the write that follows reports any real fault.
pub fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let stale = entry_name.starts_with(&prefix) && entry_name.ends_with(".tmp");
        if stale && entry.file_type().is_ok_and(|kind| !kind.is_dir()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Refuses to write `path` where a folder stands: checked before any work, so that a long
/// computation does not end in an error.
pub fn check_file_target(path: &Path) -> Result<(), FileError> {
    if path.is_dir() {
        return Err(FileError::IsFolder {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Opens `path` for reading if it is a regular file of at most `limit` bytes; returns the file
/// and its size.
pub fn open_bounded(path: &Path, limit: u64) -> Result<(File, u64), FileError> {
    let metadata = fs::metadata(path).map_err(FileError::io(path))?;
    if !metadata.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    if metadata.len() > limit {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            size: metadata.len(),
            limit,
        });
    }
    let file = File::open(path).map_err(FileError::io(path))?;
    Ok((file, metadata.len()))
}

/// The whole of `path`, a regular file of at most `limit` bytes. The read itself stops at
/// `limit` too, should the file grow meanwhile.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let (file, size) = open_bounded(path, limit)?;
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(FileError::io(path))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_leaves_nothing_else_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_its_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_atomically(&path, b"old").unwrap();
        let failed = write_atomically_with(&path, |file| {
            file.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(matches!(failed, Err(FileError::Io { .. })));
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_at_the_old_temporary_name_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("v.png");
        std::os::unix::fs::symlink(&victim, dir.path().join("v.png.tmp")).unwrap();
        write_atomically(&path, b"picture").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(&path).unwrap(), b"picture");
    }

    #[test]
    fn stale_temporaries_of_a_target_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.bin");
        for name in [
            "checkpoint.bin.a1b2.tmp",
            "checkpoint.bin",
            "other.a1b2.tmp",
            "checkpoint.binx.tmp",
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_stale_temporaries(&path);
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["checkpoint.bin", "checkpoint.binx.tmp", "other.a1b2.tmp"]
        );
    }

    #[test]
    fn a_folder_is_refused_as_a_target_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let error = write_atomically(dir.path(), b"x").unwrap_err();
        assert!(matches!(error, FileError::IsFolder { .. }), "{error}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn reads_take_regular_files_within_their_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        fs::write(&path, [7u8; 100]).unwrap();
        assert_eq!(read_bounded(&path, 100).unwrap().len(), 100);
        let error = read_bounded(&path, 99).unwrap_err();
        assert!(
            matches!(
                error,
                FileError::TooLarge {
                    size: 100,
                    limit: 99,
                    ..
                }
            ),
            "{error}"
        );
        let error = read_bounded(dir.path(), 1 << 20).unwrap_err();
        assert!(matches!(error, FileError::NotRegular { .. }), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo");
        let error = read_bounded(&fifo, 1 << 20).unwrap_err();
        assert!(matches!(error, FileError::NotRegular { .. }), "{error}");
    }
}
