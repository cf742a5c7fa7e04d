//! One tunnel's spill file: an unlinked temporary file used as a ring of
//! `spill_per_tunnel` bytes, so that a reader that keeps pace but lags
//! never needs more disk than the ring, and the space read is reused
//! instead of growing the file for the whole transfer (nginx's
//! `proxy_temp_path` files grow; ours wrap). `inbox` owns it and
//! drops it when it is empty; only the file system is talked to.
//!
//! Offsets are logical (bytes since the file was created): `head` is the
//! oldest byte not yet sent, `tail` where the next one goes, `tail - head`
//! never exceeds the ring, and byte `x` lives at `x % ring` in the file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

pub(super) struct Spill {
    /// Shared with the reader's blocking reads, which run off the lock.
    file: Arc<File>,
    ring: u64,
    head: u64,
    tail: u64,
    /// Disk space taken (and reserved from the budget): the highest byte
    /// ever written, at most the ring.
    extent: u64,
}

impl Spill {
    /// A new, already unlinked file in `dir` (`tempfile_in` uses O_TMPFILE
    /// where the file system has it, else creates and unlinks at once).
    pub(super) fn create(dir: &Path, ring: u64) -> io::Result<Spill> {
        Ok(Spill {
            file: Arc::new(tempfile::tempfile_in(dir)?),
            ring,
            head: 0,
            tail: 0,
            extent: 0,
        })
    }

    /// Bytes held, not yet consumed.
    pub(super) fn len(&self) -> u64 {
        self.tail - self.head
    }

    pub(super) fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Whether `n` more bytes fit in the ring.
    pub(super) fn fits(&self, n: usize) -> bool {
        self.len() + n as u64 <= self.ring
    }

    /// How much the file's extent grows if `n` bytes are appended: what must
    /// be reserved from `spill_total` first.
    pub(super) fn growth(&self, n: usize) -> u64 {
        (self.tail + n as u64)
            .min(self.ring)
            .saturating_sub(self.extent)
    }

    pub(super) fn extent(&self) -> u64 {
        self.extent
    }

    /// Appends `data`; the caller checked `fits` and reserved `growth`.
    /// On an error nothing counts as written.
    pub(super) fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let at = self.tail % self.ring;
        let first = data.len().min((self.ring - at) as usize);
        self.file.write_all_at(&data[..first], at)?;
        if first < data.len() {
            self.file.write_all_at(&data[first..], 0)?;
        }
        let grown = self.growth(data.len());
        self.extent += grown;
        self.tail += data.len() as u64;
        Ok(())
    }

    /// The oldest held bytes as one contiguous piece of the file: (file,
    /// position, length), at most `max` long. Bytes in it stay put until
    /// `consume`d: appends only write past `tail`, which is at least a ring
    /// away from them.
    pub(super) fn oldest(&self, max: usize) -> Option<(Arc<File>, u64, usize)> {
        if self.is_empty() {
            return None;
        }
        let at = self.head % self.ring;
        let len = (self.len().min(self.ring - at) as usize).min(max);
        Some((self.file.clone(), at, len))
    }

    pub(super) fn consume(&mut self, n: u64) {
        self.head = (self.head + n).min(self.tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &Spill, max: usize) -> Vec<u8> {
        let (file, at, len) = s.oldest(max).expect("data held");
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, at).expect("read back");
        buf
    }

    #[test]
    fn wraps_around_and_keeps_order_and_extent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spill::create(dir.path(), 10).expect("create");
        assert_eq!(s.growth(6), 6);
        s.append(b"abcdef").expect("append");
        assert_eq!(read(&s, 100), b"abcdef");
        s.consume(4);
        assert!(s.fits(8) && !s.fits(9));
        assert_eq!(s.growth(8), 4, "the ring caps the extent at 10");
        s.append(b"ghijklmn").expect("append");
        assert_eq!(s.extent(), 10);
        assert_eq!(s.len(), 10);
        // "efghij" up to the ring's end, then the wrapped "klmn".
        assert_eq!(read(&s, 100), b"efghij");
        s.consume(6);
        assert_eq!(read(&s, 100), b"klmn");
        assert_eq!(read(&s, 3), b"klm");
        s.consume(4);
        assert!(s.is_empty() && s.oldest(10).is_none());
    }

    #[test]
    fn the_file_has_no_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spill::create(dir.path(), 1 << 20).expect("create");
        s.append(&[7; 4096]).expect("append");
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert!(names.is_empty(), "spill file visible in its dir: {names:?}");
        assert_eq!(s.file.metadata().expect("stat").len(), 4096);
    }
}
