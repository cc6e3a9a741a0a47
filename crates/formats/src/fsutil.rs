//! Listing a directory without escaping it through symlinks.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A regular file found in a directory.
#[derive(Debug, Clone)]
pub(crate) struct DirFile {
    /// The entry's name in the directory (for a symlink, the link's name).
    pub name: String,
    /// Where to read it: the entry itself, or for a symlink its resolved
    /// target (so a link swapped after the check is not followed again).
    pub path: PathBuf,
    pub len: u64,
    pub modified: Option<SystemTime>,
}

/// The regular files directly in `dir`, sorted by name.
///
/// Symlinks are followed only when their target, fully resolved, is a
/// regular file inside `root` (itself resolved); others are skipped, as are
/// dangling links and names that are not UTF-8. Subdirectories are not
/// entered.
pub(crate) fn list_files(dir: &Path, root: &Path) -> io::Result<Vec<DirFile>> {
    let root = fs::canonicalize(root)?;
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let (path, meta) = if meta.file_type().is_symlink() {
            let Ok(target) = fs::canonicalize(&path) else {
                continue;
            };
            if !target.starts_with(&root) {
                continue;
            }
            let Ok(target_meta) = fs::metadata(&target) else {
                continue;
            };
            (target, target_meta)
        } else {
            (path, meta)
        };
        if !meta.is_file() {
            continue;
        }
        files.push(DirFile {
            name,
            path,
            len: meta.len(),
            modified: meta.modified().ok(),
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// The real (not symlinked) subdirectories of `dir` with UTF-8 names,
/// sorted by name. Symlinked directories are skipped, which also rules out
/// loops.
pub(crate) fn list_subdirs(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            dirs.push((name, entry.path()));
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Whether `name` ends with `.{extension}`, ignoring ASCII case.
pub(crate) fn has_extension(name: &str, extension: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && ext.eq_ignore_ascii_case(extension))
}
