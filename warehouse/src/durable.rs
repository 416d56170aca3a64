//! fsync helpers. A rename or a new file is only durable once its folder is synced too.

use std::path::Path;

/// Flushes a folder's entries (new, renamed or deleted files) to disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Flushes a file's contents to disk.
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}
