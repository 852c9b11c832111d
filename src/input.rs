//! Input: a thread that reads stdin (or a file) in large blocks and hands them on cut
//! at line ends, so reading overlaps decoding and lines are never copied one by one.
//!
//! Owns: the byte stream, where lines end, and whether they are UTF-8: a block is
//! checked whole here, on the reader's own thread, and only a block that fails is
//! checked line by line (to name the line). Must not touch: what a line says. The queue
//! holds a few blocks only, so a slow pipeline stops the reading, not the memory.
//! A UTF-8 byte order mark at the very start of the input is skipped (one anywhere
//! else is the line's, and `protocol` names it when it refuses the line).

use std::io::{self, Read};
use std::ops::Range;
use std::str::Utf8Error;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::time::Duration;

/// Bytes of a block at most (unless one line is longer).
const BLOCK: usize = 1 << 20;
/// The first read's size into an empty buffer.
const READ_STEP: usize = 64 << 10;
/// Blocks waiting for the decoder at most.
const QUEUED_BLOCKS: usize = 4;
/// Blocks a consumer may hold at once beyond the queue (the decoding threads' jobs,
/// see `parallel::IN_FLIGHT`): buffers enough for them are kept for reuse.
pub const LENT_BLOCKS: usize = 4;

/// Blocks of whole lines (the last block may end without a newline).
pub struct Blocks {
    queue: Receiver<io::Result<Block>>,
}

pub enum Next {
    Block(Block),
    /// Nothing arrived within the wait; the caller may tend to other work.
    Idle,
    End,
}

/// Whole lines read from the input. Its buffer goes back to the reader when it is
/// dropped, so reads land in memory that was readied once, not in fresh pages each time.
pub struct Block {
    data: Data,
    pool: SyncSender<Vec<u8>>,
}

/// A line, or why it is not UTF-8.
pub type LineText<'a> = Result<&'a str, Utf8Error>;

enum Data {
    /// Every line is UTF-8.
    Text(String),
    /// Some line is not: each is checked as it is taken.
    Bytes(Vec<u8>),
}

impl Block {
    fn new(mut data: Vec<u8>, len: usize, pool: SyncSender<Vec<u8>>) -> Block {
        data.truncate(len);
        let data = match String::from_utf8(data) {
            Ok(text) => Data::Text(text),
            Err(e) => Data::Bytes(e.into_bytes()),
        };
        Block { data, pool }
    }

    /// The block's lines without their line ends, each a `str` or why it is not one.
    #[cfg(test)]
    pub fn lines(&self) -> impl Iterator<Item = LineText<'_>> {
        self.lines_from(0).map(|(_, line)| line)
    }

    /// The lines from byte `from` (where a line starts) on, each with where it starts.
    pub fn lines_from(&self, from: usize) -> impl Iterator<Item = (usize, LineText<'_>)> {
        line_ranges(self.bytes(), from).map(|range| {
            let start = range.start;
            let line = match &self.data {
                Data::Text(text) => Ok(&text[range]),
                Data::Bytes(bytes) => std::str::from_utf8(&bytes[range]),
            };
            (start, line)
        })
    }

    /// Its size in bytes (a block is never empty).
    pub fn size(&self) -> usize {
        self.bytes().len()
    }

    fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Text(text) => text.as_bytes(),
            Data::Bytes(bytes) => bytes,
        }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let data = match &mut self.data {
            Data::Text(text) => std::mem::take(text).into_bytes(),
            Data::Bytes(bytes) => std::mem::take(bytes),
        };
        // Buffers grown for a long line are freed rather than kept.
        if data.capacity() <= 2 * BLOCK {
            let _ = self.pool.try_send(data);
        }
    }
}

impl Blocks {
    /// Starts reading; a line longer than `max_line` ends the input with an error.
    pub fn spawn(input: impl Read + Send + 'static, max_line: usize) -> io::Result<Blocks> {
        let (tx, queue) = sync_channel(QUEUED_BLOCKS);
        std::thread::Builder::new()
            .name("reader".into())
            .spawn(move || read_blocks(input, tx, max_line))?;
        Ok(Blocks { queue })
    }

    /// The next block if one is waiting already.
    pub fn try_next(&self) -> Option<io::Result<Next>> {
        match self.queue.try_recv() {
            Ok(block) => Some(block.map(Next::Block)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Ok(Next::End)),
        }
    }

    /// The next block, waiting at most `wait`.
    pub fn next(&self, wait: Duration) -> io::Result<Next> {
        match self.queue.recv_timeout(wait) {
            Ok(block) => block.map(Next::Block),
            Err(RecvTimeoutError::Timeout) => Ok(Next::Idle),
            Err(RecvTimeoutError::Disconnected) => Ok(Next::End),
        }
    }
}

/// The UTF-8 byte order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The error for a line past `max_line_bytes`.
pub const LINE_TOO_LONG: &str = "the line is longer than max_line_bytes";

fn read_blocks(mut input: impl Read, tx: SyncSender<io::Result<Block>>, max_line: usize) {
    // Buffers come back from dropped blocks: the queue's, those lent out, the one
    // being read, one spare.
    let kept = QUEUED_BLOCKS + LENT_BLOCKS + 2;
    let (pool, returned) = sync_channel::<Vec<u8>>(kept);
    let mut carry = Vec::new();
    // Until the first block goes out: a UTF-8 byte order mark opening the input is
    // dropped there (files saved by Windows tools start with one).
    let mut first = true;
    loop {
        let mut data = returned.try_recv().unwrap_or_default();
        let size = BLOCK.max(carry.len() * 2);
        if data.len() < carry.len() {
            data.resize(carry.len(), 0);
        }
        data[..carry.len()].copy_from_slice(&carry);
        let mut len = carry.len();
        carry.clear();
        let ended = match fill(&mut input, &mut data, &mut len, size) {
            Ok(ended) => ended,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if !ended {
            // Hand on whole lines only; a line longer than a block waits for its end.
            match memchr::memrchr(b'\n', &data[..len]) {
                Some(last) => {
                    carry.extend_from_slice(&data[last + 1..len]);
                    len = last + 1;
                }
                None if len > max_line => {
                    let too_long = io::Error::new(io::ErrorKind::InvalidData, LINE_TOO_LONG);
                    let _ = tx.send(Err(too_long));
                    return;
                }
                None => {
                    carry.extend_from_slice(&data[..len]);
                    continue;
                }
            }
        }
        if first && len > 0 {
            first = false;
            if data[..len].starts_with(BOM) {
                data.drain(..BOM.len());
                len -= BOM.len();
            }
        }
        let pool = pool.clone();
        if len > 0 && tx.send(Ok(Block::new(data, len, pool))).is_err() {
            return;
        }
        if ended {
            return;
        }
    }
}

/// Reads into `data` past `len` until `size` bytes are in or a read brings a line end
/// (so a slow tap's lines go on at once); true at the end of input. The buffer is made
/// ready (zeroed) only as far as reads reach, in steps that double: a pipe gives 64 KiB
/// a read, and a block of one read should not cost the zeroing of a whole `BLOCK`.
fn fill(
    input: &mut impl Read,
    data: &mut Vec<u8>,
    len: &mut usize,
    size: usize,
) -> io::Result<bool> {
    while *len < size {
        let want = (*len + (*len).max(READ_STEP)).min(size);
        if data.len() < want {
            data.resize(want, 0);
        }
        let room = data.len().min(size);
        match input.read(&mut data[*len..room]) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                let got = &data[*len..*len + n];
                *len += n;
                if memchr::memchr(b'\n', got).is_some() {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Where the lines of a block lie from byte `from` on, without their line ends.
fn line_ranges(block: &[u8], from: usize) -> impl Iterator<Item = Range<usize>> {
    let mut start = from;
    std::iter::from_fn(move || {
        let rest = block.get(start..).filter(|rest| !rest.is_empty())?;
        let end = memchr::memchr(b'\n', rest).map_or(block.len(), |i| start + i);
        let line = start..end;
        start = end + 1;
        Some(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &'static [u8]) -> Vec<Vec<u8>> {
        let blocks = Blocks::spawn(input, usize::MAX).unwrap();
        let mut lines_seen = Vec::new();
        loop {
            match blocks.next(Duration::from_secs(5)).unwrap() {
                Next::Block(b) => {
                    lines_seen.extend(b.lines().map(|l| l.unwrap().as_bytes().to_vec()))
                }
                Next::Idle => panic!("stalled"),
                Next::End => return lines_seen,
            }
        }
    }

    #[test]
    fn cuts_at_line_ends_and_keeps_a_last_line_without_one() {
        assert_eq!(
            collect(b"a\nbb\n\nccc"),
            [b"a".to_vec(), b"bb".to_vec(), vec![], b"ccc".to_vec()]
        );
        assert_eq!(collect(b""), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn recycled_buffers_give_every_line_once_and_whole() {
        let expected: Vec<Vec<u8>> = (0..40_000)
            .map(|i| format!("{i}:{}", "x".repeat(i * 7 % 500)).into_bytes())
            .collect();
        let text: &'static [u8] = Box::leak(expected.join(&b'\n').into_boxed_slice());
        assert!(text.len() > BLOCK * (QUEUED_BLOCKS + 4));
        assert_eq!(collect(text), expected);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_the_only_one_refused() {
        let blocks = Blocks::spawn(&b"ok\nbad \xff\n\xc3\xa9t\xc3\xa9"[..], usize::MAX).unwrap();
        let mut seen = Vec::new();
        while let Next::Block(block) = blocks.next(Duration::from_secs(5)).unwrap() {
            seen.extend(
                block
                    .lines()
                    .map(|l| l.map(str::to_owned).map_err(|e| e.valid_up_to())),
            );
        }
        assert_eq!(seen, [Ok("ok".into()), Err(4), Ok("été".into())]);
    }

    #[test]
    fn a_byte_order_mark_opening_the_input_is_skipped() {
        assert_eq!(
            collect(b"\xEF\xBB\xBFa\n\xEF\xBB\xBFb"),
            [b"a".to_vec(), b"\xEF\xBB\xBFb".to_vec()]
        );
        assert_eq!(collect(b"\xEF\xBB\xBF"), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn lines_past_the_limit_are_an_error() {
        let long: &'static [u8] = Box::leak(vec![b'x'; BLOCK * 3].into_boxed_slice());
        let blocks = Blocks::spawn(long, BLOCK).unwrap();
        match blocks.next(Duration::from_secs(5)) {
            Err(e) => assert_eq!(e.to_string(), LINE_TOO_LONG),
            _ => panic!("a line past the limit must fail"),
        }
    }

    #[test]
    fn lines_longer_than_a_block_stay_whole() {
        let long: &'static [u8] = Box::leak(
            [vec![b'x'; BLOCK * 2 + 5], b"\nend\n".to_vec()]
                .concat()
                .into_boxed_slice(),
        );
        let seen = collect(long);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].len(), BLOCK * 2 + 5);
        assert_eq!(seen[1], b"end");
    }
}
