//! Unit tests of `tunnel_buffer::inbox`: order across tiers, caps, the budget,
//! unlinked files, wakeups, and a producer on another thread.

use std::path::PathBuf;
use std::time::Duration;

use rand::{rngs::StdRng, Rng, SeedableRng};

use super::*;
use crate::tunnel_buffer::account::Account;
use crate::tunnel_buffer::budget::{Budget, Limits, Usage};

fn budget(memory: usize, spill: u64, total: u64, dir: PathBuf) -> Arc<Budget> {
    Budget::new(Limits {
        memory_per_tunnel: memory,
        spill_dir: dir,
        spill_per_tunnel: spill,
        spill_total: total,
    })
}

/// The bytes 0, 1, 2, ... of a stream, from `from`.
fn pattern(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| (i % 251) as u8).collect()
}

/// Drains the reader up to `want` bytes (or its end), consuming in pieces of
/// random size, and returns what came and the event that ended it.
async fn drain(r: &mut InboxReader, rng: &mut StdRng, want: usize) -> (Vec<u8>, Event) {
    let mut got = Vec::new();
    let mut batch = Vec::new();
    loop {
        if got.len() >= want {
            return (got, Event::Data);
        }
        match tokio::time::timeout(Duration::from_secs(10), r.wait()).await {
            Err(_) => panic!("reader not woken; {} bytes so far", got.len()),
            Ok(Event::Data) => {}
            Ok(other) => return (got, other),
        }
        r.batch(&mut batch, 16);
        let ready: usize = batch.iter().map(|b| b.len()).sum();
        assert!(ready > 0, "Data with an empty batch");
        let n = rng.gen_range(1..=ready);
        let mut left = n;
        for b in &batch {
            let take = left.min(b.len());
            got.extend_from_slice(&b[..take]);
            left -= take;
        }
        r.consume(n);
    }
}

#[tokio::test]
async fn order_is_kept_across_memory_and_disk_with_random_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    for seed in 0..20u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let b = budget(1024, 8 * 1024, 1 << 20, dir.path().into());
        let inbox = Inbox::new(Account::detached(b.clone()));
        let mut reader = inbox.reader();
        let mut sent = 0usize;
        let mut got = Vec::new();
        let total = 200 * 1024;
        while sent < total {
            // Push random packets until a cap refuses one, then drain a bit.
            let n = rng.gen_range(1..=3000).min(total - sent);
            let packet = pattern(sent, n);
            if inbox.push(&packet).is_ok() {
                sent += n;
                continue;
            }
            let want = got.len() + rng.gen_range(1..=4096);
            let (more, ev) = drain(&mut reader, &mut rng, want - got.len()).await;
            assert_eq!(ev, Event::Data);
            got.extend(more);
        }
        inbox.eof();
        inbox.close();
        let (rest, ev) = drain(&mut reader, &mut rng, usize::MAX).await;
        got.extend(rest);
        assert_eq!(ev, Event::Eof, "seed {seed}");
        assert_eq!(reader.wait().await, Event::Closed);
        assert_eq!(got.len(), total, "seed {seed}");
        assert!(got == pattern(0, total), "seed {seed}: bytes differ");
        let u = b.usage();
        assert!(u.spilled > 0, "seed {seed}: the test never spilled");
        assert_eq!((u.memory, u.disk, u.disk_reserved), (0, 0, 0), "{u:?}");
    }
}

#[tokio::test]
async fn each_cap_refuses_and_is_counted_once_per_episode() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Spilling off: memory only.
    let b = budget(100, 0, 0, dir.path().into());
    let inbox = Inbox::new(Account::detached(b.clone()));
    let mut r = inbox.reader();
    assert_eq!(inbox.push(&[1; 100]), Ok(()));
    assert_eq!(inbox.push(&[1; 1]), Err(Cap::MemoryPerTunnel));
    assert_eq!(inbox.push(&[1; 1]), Err(Cap::MemoryPerTunnel));
    assert_eq!(b.usage().caps, [1, 0, 0, 0]);
    assert!(r.capped().is_some());
    assert_eq!(r.wait().await, Event::Data);
    r.consume(1);
    assert_eq!(inbox.push(&[1; 1]), Ok(()));
    assert!(r.capped().is_none());

    // The tunnel's ring is full.
    let b = budget(10, 20, 1000, dir.path().into());
    let inbox = Inbox::new(Account::detached(b.clone()));
    assert_eq!(inbox.push(&[2; 10]), Ok(()));
    assert_eq!(inbox.push(&[2; 20]), Ok(()), "to disk");
    assert_eq!(inbox.push(&[2; 1]), Err(Cap::SpillPerTunnel));
    assert_eq!(
        b.usage(),
        Usage {
            memory: 10,
            disk: 20,
            disk_reserved: 20,
            spilled: 20,
            caps: [0, 1, 0, 0]
        }
    );

    // All files together are full: a second tunnel cannot spill.
    let b = budget(10, 100, 30, dir.path().into());
    let (a, c) = (
        Inbox::new(Account::detached(b.clone())),
        Inbox::new(Account::detached(b.clone())),
    );
    let _readers = (a.reader(), c.reader());
    a.push(&[3; 10]).expect("memory");
    a.push(&[3; 30]).expect("disk");
    c.push(&[3; 10]).expect("memory");
    assert_eq!(c.push(&[3; 1]), Err(Cap::SpillTotal));
    assert_eq!(b.usage().caps, [0, 0, 1, 0]);

    // No spill directory: memory only, and it says why.
    let b = budget(10, 100, 100, dir.path().join("missing"));
    let inbox = Inbox::new(Account::detached(b.clone()));
    inbox.push(&[4; 10]).expect("memory");
    assert_eq!(inbox.push(&[4; 1]), Err(Cap::SpillError));
    assert_eq!(b.usage().caps, [0, 0, 0, 1]);
}

#[tokio::test]
async fn an_empty_memory_tier_takes_a_packet_bigger_than_its_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = budget(100, 0, 0, dir.path().into());
    let inbox = Inbox::new(Account::detached(b.clone()));
    assert_eq!(inbox.push(&[1; 32 * 1024]), Ok(()));
    assert_eq!(inbox.push(&[1; 1]), Err(Cap::MemoryPerTunnel));
}

#[tokio::test]
async fn dropping_reader_and_inbox_gives_the_budget_back_and_the_file_is_unlinked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = budget(1024, 1 << 20, 1 << 20, dir.path().into());
    let inbox = Inbox::new(Account::detached(b.clone()));
    let reader = inbox.reader();
    for i in 0..40 {
        inbox.push(&pattern(i * 1000, 1000)).expect("push");
    }
    let u = b.usage();
    assert_eq!(u.memory, 1000);
    assert_eq!(u.disk, 39_000);
    assert_eq!(u.disk_reserved, 39_000);
    let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
    assert!(names.is_empty(), "the spill file has a name: {names:?}");
    drop(reader);
    // The client is gone: pushes are dropped, nothing is held.
    inbox.push(&[0; 5000]).expect("discarded");
    let u = b.usage();
    assert_eq!((u.memory, u.disk, u.disk_reserved), (0, 0, 0), "{u:?}");
    drop(inbox);

    // Unclaimed inboxes (a session that died before its tunnel started).
    let inbox = Inbox::new(Account::detached(b.clone()));
    for i in 0..10 {
        inbox.push(&pattern(i * 1000, 1000)).expect("push");
    }
    assert!(b.usage().disk > 0);
    drop(inbox);
    let u = b.usage();
    assert_eq!((u.memory, u.disk, u.disk_reserved), (0, 0, 0), "{u:?}");
}

#[tokio::test]
async fn the_file_is_dropped_when_drained_and_memory_takes_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = budget(100, 1000, 1000, dir.path().into());
    let inbox = Inbox::new(Account::detached(b.clone()));
    let mut r = inbox.reader();
    inbox.push(&[1; 100]).expect("memory");
    inbox.push(&[2; 300]).expect("disk");
    let mut rng = StdRng::seed_from_u64(7);
    let (got, _) = drain(&mut r, &mut rng, 400).await;
    assert_eq!(got, [[1u8; 100].as_slice(), &[2; 300]].concat());
    let u = b.usage();
    assert_eq!((u.disk, u.disk_reserved), (0, 0), "file not reset: {u:?}");
    inbox.push(&[3; 50]).expect("memory again");
    assert_eq!(b.usage().memory, 50);
    assert_eq!(r.buffered(), 50);
}

#[tokio::test]
async fn the_reader_is_woken_by_data_eof_close_and_loss_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = budget(1024, 0, 0, dir.path().into());
    let inbox = Inbox::new(Account::detached(b));
    let mut r = inbox.reader();
    let producer = inbox.clone();
    let waiter = tokio::spawn(async move {
        let ev = r.wait().await;
        (ev, r)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    producer.push(b"hello").expect("push");
    let (ev, mut r) = waiter.await.expect("join");
    assert_eq!(ev, Event::Data);
    // EOF and close arrive while data is held: data first.
    producer.eof();
    producer.close();
    assert_eq!(r.wait().await, Event::Data);
    r.consume(5);
    assert_eq!(r.wait().await, Event::Eof);
    assert_eq!(r.wait().await, Event::Closed);
    assert_eq!(r.wait().await, Event::Closed);
    // After the end, pushes are dropped.
    producer.push(b"late").expect("dropped");
    assert_eq!(r.buffered(), 0);

    let inbox = Inbox::new(Account::detached(budget(1024, 0, 0, dir.path().into())));
    let mut r = inbox.reader();
    let waiter = tokio::spawn(async move { r.wait().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    inbox.lose();
    assert_eq!(waiter.await.expect("join"), Event::SessionLost);
}

/// The session task's side on its own thread and runtime: it pushes a
/// stream and awaits room whenever a cap refuses; the reader here is slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_on_another_thread_waits_for_room_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = budget(4096, 64 * 1024, 1 << 20, dir.path().into());
    let inbox = Inbox::new(Account::detached(b.clone()));
    let mut reader = inbox.reader();
    let total = 2 * 1024 * 1024;
    let producer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut rng = StdRng::seed_from_u64(99);
            let (mut sent, mut waits) = (0, 0u32);
            while sent < total {
                let n = rng.gen_range(1..=32 * 1024).min(total - sent);
                let packet = pattern(sent, n);
                while inbox.push(&packet).is_err() {
                    waits += 1;
                    inbox.room().await;
                }
                sent += n;
            }
            inbox.eof();
            inbox.close();
            waits
        })
    });
    let mut rng = StdRng::seed_from_u64(5);
    let (got, ev) = drain(&mut reader, &mut rng, usize::MAX).await;
    let waits = producer.join().expect("producer thread");
    assert_eq!(ev, Event::Eof);
    assert_eq!(got.len(), total);
    assert!(got == pattern(0, total), "bytes differ");
    assert!(waits > 0, "the caps never refused: the test proves nothing");
    let u = b.usage();
    assert!(u.spilled > 0);
    assert_eq!((u.memory, u.disk, u.disk_reserved), (0, 0, 0), "{u:?}");
}

/// A client socket that takes at most `room` bytes per call (0: would block).
struct Socket {
    taken: Mutex<Vec<u8>>,
    room: std::sync::atomic::AtomicUsize,
}

impl Sink for Socket {
    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        let room = self.room.load(std::sync::atomic::Ordering::Relaxed);
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = room.min(data.len());
        self.taken
            .lock()
            .expect("lock")
            .extend_from_slice(&data[..n]);
        Ok(n)
    }
}

#[tokio::test]
async fn a_sink_takes_packets_only_while_nothing_is_held_and_order_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let account = Account::detached(budget(1024, 8 * 1024, 1 << 20, dir.path().into()));
    let inbox = Inbox::new(account.clone());
    let mut r = inbox.reader();
    let socket = Arc::new(Socket {
        taken: Mutex::new(Vec::new()),
        room: 100.into(),
    });
    r.set_sink(socket.clone());
    let stream = pattern(0, 400);
    // Empty inbox: the socket takes 100 at once, 50 are held.
    inbox.push(&stream[..150]).expect("push");
    assert_eq!(r.buffered(), 50);
    // Something is held: the next packet must queue behind it, not jump it.
    inbox.push(&stream[150..250]).expect("push");
    assert_eq!(socket.taken.lock().expect("lock").len(), 100);
    assert_eq!(r.buffered(), 150);
    let mut rng = StdRng::seed_from_u64(1);
    let (held, _) = drain(&mut r, &mut rng, 150).await;
    // Empty again: straight to the socket; and a socket that would block
    // leaves the packet in the inbox.
    inbox.push(&stream[250..300]).expect("push");
    assert_eq!(r.buffered(), 0);
    socket.room.store(0, std::sync::atomic::Ordering::Relaxed);
    inbox.push(&stream[300..400]).expect("push");
    let (last, _) = drain(&mut r, &mut rng, 100).await;
    let taken = socket.taken.lock().expect("lock").clone();
    let mut got = taken[..100].to_vec();
    got.extend_from_slice(&held);
    got.extend_from_slice(&taken[100..]);
    got.extend_from_slice(&last);
    assert_eq!(
        got, stream,
        "socket and inbox together give the stream in order"
    );
    assert_eq!(account.buffered(), (0, 0));
    // The reader leaves: the inbox lets go of the socket.
    drop(r);
    assert_eq!(Arc::strong_count(&socket), 1);
}
