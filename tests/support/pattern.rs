//! Deterministic byte streams and digests, so that a transfer can be checked byte for
//! byte without keeping a copy of it.
//!
//! The pattern is a pseudo-random table whose length is a prime (just under 1 MiB),
//! repeated. Filling and checking are `memcpy`/`memcmp` of table slices, fast even in a
//! debug build, and a chunk lost, repeated or reordered at any power-of-two size (SSH
//! packets, windows, socket buffers) cannot line up with the pattern again. Streams of
//! arbitrary bytes are compared with a [`Digest`] (length and FNV-1a-64).

use std::io;
use std::sync::OnceLock;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Period of the pattern in bytes: a prime.
pub const PERIOD: usize = 1_048_573;

/// Size of the chunks that the helpers below read and write.
const CHUNK: usize = 64 * 1024;

fn table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut state: u64 = 0x6a75_6d70_6761_7465; // "jumpgate"
        let mut t = Vec::with_capacity(PERIOD + 8);
        while t.len() < PERIOD {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            t.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        t.truncate(PERIOD);
        t
    })
}

/// Fills `buf` with the pattern bytes at stream offsets `offset..offset + buf.len()`.
pub fn fill(offset: u64, buf: &mut [u8]) {
    let t = table();
    let mut pos = (offset % PERIOD as u64) as usize;
    let mut done = 0;
    while done < buf.len() {
        let n = (PERIOD - pos).min(buf.len() - done);
        buf[done..done + n].copy_from_slice(&t[pos..pos + n]);
        done += n;
        pos = 0;
    }
}

/// Checks a received stream against the pattern, chunk by chunk.
#[derive(Debug, Default)]
pub struct Checker {
    received: u64,
    first_mismatch: Option<u64>,
}

impl Checker {
    pub fn feed(&mut self, data: &[u8]) {
        let t = table();
        let mut pos = (self.received % PERIOD as u64) as usize;
        let mut done = 0;
        while done < data.len() {
            let n = (PERIOD - pos).min(data.len() - done);
            let got = &data[done..done + n];
            let want = &t[pos..pos + n];
            if self.first_mismatch.is_none() && got != want {
                let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                self.first_mismatch = Some(self.received + (done + i) as u64);
            }
            done += n;
            pos = 0;
        }
        self.received += data.len() as u64;
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// Stream offset of the first byte that differs from the pattern, if any.
    pub fn first_mismatch(&self) -> Option<u64> {
        self.first_mismatch
    }

    /// Panics unless exactly `len` pattern bytes were received.
    pub fn assert_exact(&self, len: u64, what: &str) {
        assert_eq!(
            self.first_mismatch, None,
            "{what}: stream differs from the pattern"
        );
        assert_eq!(self.received, len, "{what}: wrong number of bytes");
    }
}

/// Length and FNV-1a-64 hash of a byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    pub len: u64,
    pub hash: u64,
}

impl Digest {
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0; 16];
        b[..8].copy_from_slice(&self.len.to_be_bytes());
        b[8..].copy_from_slice(&self.hash.to_be_bytes());
        b
    }

    pub fn from_bytes(b: [u8; 16]) -> Digest {
        let (len, hash) = b.split_at(8);
        Digest {
            len: u64::from_be_bytes(len.try_into().expect("8 bytes")),
            hash: u64::from_be_bytes(hash.try_into().expect("8 bytes")),
        }
    }

    pub fn of(data: &[u8]) -> Digest {
        let mut h = Hasher::new();
        h.update(data);
        h.digest()
    }
}

/// Incremental [`Digest`].
pub struct Hasher {
    len: u64,
    hash: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new()
    }
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher {
            len: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        let mut h = self.hash;
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.hash = h;
        self.len += data.len() as u64;
    }

    pub fn digest(&self) -> Digest {
        Digest {
            len: self.len,
            hash: self.hash,
        }
    }
}

/// Writes `len` pattern bytes to `w` and returns their digest (not flushed or shut
/// down: the caller decides how the stream ends).
pub async fn write_pattern<W: AsyncWrite + Unpin>(w: &mut W, len: u64) -> io::Result<Digest> {
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = Hasher::new();
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        fill(off, &mut buf[..n]);
        hasher.update(&buf[..n]);
        w.write_all(&buf[..n]).await?;
        off += n as u64;
    }
    w.flush().await?;
    Ok(hasher.digest())
}

/// Writes `len` pattern bytes to `w` without hashing them (for large streams whose
/// receiver checks them with a [`Checker`]).
pub async fn write_pattern_unhashed<W: AsyncWrite + Unpin>(w: &mut W, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        fill(off, &mut buf[..n]);
        w.write_all(&buf[..n]).await?;
        off += n as u64;
    }
    w.flush().await
}

/// Reads `r` to EOF and checks it against the pattern.
pub async fn read_check<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Checker> {
    let mut buf = vec![0u8; CHUNK];
    let mut checker = Checker::default();
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(checker);
        }
        checker.feed(&buf[..n]);
    }
}

/// Reads `r` to EOF and returns the digest of what it read.
pub async fn read_digest<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Digest> {
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = Hasher::new();
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(hasher.digest());
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn checker_accepts_the_pattern_across_the_period_boundary() {
        let len = PERIOD + 12_345;
        let mut data = vec![0u8; len];
        fill(0, &mut data);
        let mut c = Checker::default();
        for chunk in data.chunks(32_768) {
            c.feed(chunk);
        }
        c.assert_exact(len as u64, "pattern");
        let mut tail = vec![0u8; 100];
        fill(PERIOD as u64 - 50, &mut tail);
        assert_eq!(&tail[50..], &data[..50]);
    }

    #[test]
    fn checker_finds_a_lost_chunk() {
        let mut data = vec![0u8; 3 * 32_768];
        fill(0, &mut data);
        let mut c = Checker::default();
        c.feed(&data[..32_768]);
        c.feed(&data[2 * 32_768..]);
        assert_eq!(c.first_mismatch(), Some(32_768));
    }

    #[test]
    fn digest_round_trips_and_differs() {
        let a = Digest::of(b"hello");
        assert_eq!(Digest::from_bytes(a.to_bytes()), a);
        assert_ne!(Digest::of(b"hellp"), a);
        let mut h = Hasher::new();
        h.update(b"hel");
        h.update(b"lo");
        assert_eq!(h.digest(), a);
    }
}
