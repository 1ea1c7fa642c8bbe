//! The reserve: a preallocated file (`spool/reserve`) that holds back some
//! disk space while there is room, and is deleted when the disk is full, so
//! that what frees space (state and done records, compaction, deleting dead
//! segments) still finds the few blocks it needs. It is made again once the
//! disk has room.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The reserve never takes more than this fraction of its filesystem.
const MAX_SHARE: u64 = 8;

pub(crate) struct Reserve {
    path: PathBuf,
    /// Bytes held back: the configured size, at most an eighth of the
    /// filesystem. 0: no reserve.
    size: u64,
}

impl Reserve {
    /// The reserve of the spool in `dir`, of `requested` bytes at most.
    pub(crate) fn new(dir: &Path, requested: u64) -> Reserve {
        let size = match space(dir) {
            Some(space) => requested.min(space.total / MAX_SHARE),
            None => requested,
        };
        Reserve {
            path: dir.join("reserve"),
            size,
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Whether the reserve file is there, at its full size.
    pub(crate) fn held(&self) -> bool {
        self.size > 0
            && std::fs::metadata(&self.path).is_ok_and(|m| m.len() == self.size && m.blocks() > 0)
    }

    /// Bytes the reserve file holds now (less than its size while parts of
    /// it are released).
    pub(crate) fn len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// Makes the reserve file whole (creating it if need be). On failure it
    /// is left as it was.
    pub(crate) fn ensure(&self) -> std::io::Result<()> {
        if self.size == 0 {
            // A reserve from a configuration that had one.
            return match std::fs::remove_file(&self.path) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
                _ => Ok(()),
            };
        }
        if self.held() {
            return Ok(());
        }
        let file = crate::private_file()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.path)?;
        let before = file.metadata()?.len().min(self.size);
        let made = allocate(&file, self.size).and_then(|()| {
            file.set_len(self.size)?;
            file.sync_all()
        });
        if made.is_err() {
            let _ = file.set_len(before);
        }
        made
    }

    /// Gives a quarter of the reserve's space to the spool (the whole file
    /// goes with the last quarter): whatever else writes on the disk can
    /// take only that much of it before the spool asks for more. Returns
    /// whether anything was freed.
    pub(crate) fn release(&self) -> bool {
        let Ok(len) = std::fs::metadata(&self.path).map(|m| m.len()) else {
            return false;
        };
        let step = (self.size / 4).max(1);
        if len <= step {
            return std::fs::remove_file(&self.path).is_ok();
        }
        File::options()
            .write(true)
            .open(&self.path)
            .and_then(|file| file.set_len(len - step))
            .is_ok()
    }
}

/// Sizes of the filesystem holding a path, in bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Space {
    pub(crate) total: u64,
    /// Free for unprivileged users.
    pub(crate) available: u64,
}

pub(crate) fn space(path: &Path) -> Option<Space> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(Space {
        total: stat.f_blocks.saturating_mul(stat.f_frsize),
        available: stat.f_bavail.saturating_mul(stat.f_frsize),
    })
}

/// Allocates `size` bytes of `file`'s blocks: `posix_fallocate`, or zeros
/// written where the filesystem cannot.
fn allocate(file: &File, size: u64) -> std::io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::INVAL) => {
            use std::os::unix::fs::FileExt;
            let chunk = vec![0u8; 1024 * 1024];
            let mut written = 0u64;
            while written < size {
                let n = chunk.len().min((size - written) as usize);
                file.write_all_at(&chunk[..n], written)?;
                written += n as u64;
            }
            Ok(())
        }
        Err(errno) => Err(errno.into()),
    }
}
