//! A CSV history read as it streams from disk, on every core: the file is cut
//! into blocks at line ends, worker threads parse the blocks (only the
//! columns the command needs) into their own accumulator, and the
//! accumulators merge at the end. Memory stays at a few blocks, whatever the
//! file's size. A bad row stops the command with its line number, as reading
//! the whole file would.

use anyhow::{Context, Result, anyhow};
use arbiter_tuning::history::{CsvLayout, HistoryError, Record};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc;

/// Bytes per block handed to a worker.
const BLOCK: usize = 4 << 20;

/// A block of whole lines, numbered in file order.
struct Block {
    seq: usize,
    bytes: Vec<u8>,
}

/// What a worker made of one block.
struct Parsed {
    seq: usize,
    lines: usize,
    /// The first bad row, with its line number within the block (1-based).
    error: Option<HistoryError>,
}

/// Threads to parse with: the machine's cores (at least one, at most eight).
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8)
}

/// Read the CSV history at `path`, handing each data row to an accumulator:
/// `new()` makes one per worker, `add` counts a row into it (rows read
/// `with_time` carry their timestamp), and the accumulators come back in
/// worker order (worker w has blocks w, w + n, w + 2n, ... in file order).
/// `progress` hears the bytes read so far.
pub fn read<A: Send>(
    path: &Path,
    with_time: bool,
    threads: usize,
    new: impl Fn() -> A + Sync,
    add: impl Fn(&mut A, &Record<'_>) + Sync,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<A>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut header = String::new();
    reader.read_line(&mut header).with_context(|| format!("cannot read {}", path.display()))?;
    let layout = CsvLayout::of_header(header.trim_end_matches('\n')).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let threads = threads.max(1);
    // blocks go to the workers in turn (block i to worker i mod n), so each
    // worker sums the same rows in the same order every run: the same file
    // gives the same result to the last bit on the same number of threads
    let (block_txs, block_rxs): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::sync_channel::<Block>(2)).unzip();
    let (done_tx, done_rx) = mpsc::channel::<Parsed>();
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
    let (layout, new, add) = (&layout, &new, &add);
    std::thread::scope(|scope| -> Result<Vec<A>> {
        let handles: Vec<_> = block_rxs
            .into_iter()
            .map(|block_rx| {
                let (done_tx, spare_tx) = (done_tx.clone(), spare_tx.clone());
                scope.spawn(move || {
                    let mut acc = new();
                    for block in block_rx {
                        let (lines, error) = parse_block(layout, &block.bytes, with_time, &mut acc, add);
                        let _ = done_tx.send(Parsed { seq: block.seq, lines, error });
                        let _ = spare_tx.send(block.bytes);
                    }
                    acc
                })
            })
            .collect();
        drop((done_tx, spare_tx));
        let sent = stream_blocks(&mut reader, &block_txs, &spare_rx, progress)
            .with_context(|| format!("cannot read {}", path.display()));
        drop(block_txs);
        let accs: Vec<A> = handles.into_iter().map(|h| h.join().expect("a parsing thread panicked")).collect();
        let blocks = sent?;
        let mut parsed: Vec<Parsed> = done_rx.iter().collect();
        parsed.sort_by_key(|p| p.seq);
        debug_assert_eq!(parsed.len(), blocks);
        // line 1 is the header
        let mut before = 1;
        for p in parsed {
            if let Some(mut e) = p.error {
                e.line += before;
                return Err(anyhow!("{}: {e}", path.display()));
            }
            before += p.lines;
        }
        Ok(accs)
    })
}

/// Cut the rest of `reader` into blocks of whole lines and send them; returns how many.
fn stream_blocks(
    reader: &mut impl Read,
    to: &[mpsc::SyncSender<Block>],
    spare: &mpsc::Receiver<Vec<u8>>,
    progress: &mut dyn FnMut(u64),
) -> std::io::Result<usize> {
    let mut carry: Vec<u8> = Vec::new();
    let (mut seq, mut total) = (0usize, 0u64);
    loop {
        let mut buf = spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(BLOCK + (1 << 16)));
        buf.clear();
        buf.extend_from_slice(&carry);
        carry.clear();
        let start = buf.len();
        buf.resize(BLOCK.max(start + (1 << 16)), 0);
        let mut filled = start;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        total += (filled - start) as u64;
        progress(total);
        buf.truncate(filled);
        let end = filled < BLOCK.max(start + (1 << 16));
        if !end {
            // keep the partial last line for the next block
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(i) => {
                    carry.extend_from_slice(&buf[i + 1..]);
                    buf.truncate(i + 1);
                }
                None => continue_long_line(&mut buf, &mut carry),
            }
        }
        if !buf.is_empty() {
            if to[seq % to.len()].send(Block { seq, bytes: buf }).is_err() {
                return Ok(seq);
            }
            seq += 1;
        }
        if end {
            return Ok(seq);
        }
    }
}

/// A block without a line end: a single line longer than a block. Carry all
/// of it into the next read (the block grows until the line ends).
fn continue_long_line(buf: &mut Vec<u8>, carry: &mut Vec<u8>) {
    carry.append(buf);
}

/// Parse the lines of one block into `acc`: how many lines it had, and its first bad row.
fn parse_block<A>(
    layout: &CsvLayout,
    bytes: &[u8],
    with_time: bool,
    acc: &mut A,
    add: &impl Fn(&mut A, &Record<'_>),
) -> (usize, Option<HistoryError>) {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
            let error = HistoryError { line, field: "(row)".into(), message: "is not valid UTF-8".into() };
            return (0, Some(error));
        }
    };
    // the line count matters only for blocks without errors (it numbers the lines of the blocks after them)
    let mut lines = 0;
    for raw in text.lines() {
        lines += 1;
        if raw.is_empty() || raw == "\r" {
            continue;
        }
        match layout.record(lines, raw, with_time) {
            Ok(r) => add(acc, &r),
            Err(e) => return (lines, Some(e)),
        }
    }
    (lines, None)
}
