//! Input: a thread that reads stdin (or a file) in large blocks and hands them on cut
//! at line ends, so reading overlaps decoding and lines are never copied one by one.
//!
//! Owns: the byte stream and where lines end. Must not touch: what a line says. The
//! queue holds a few blocks only, so a slow pipeline stops the reading, not the memory.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

/// Bytes read at a time.
const BLOCK: usize = 1 << 20;
/// Blocks waiting for the decoder at most.
const QUEUED_BLOCKS: usize = 4;

/// Blocks of whole lines (the last block may end without a newline).
pub struct Blocks {
    queue: Receiver<io::Result<Vec<u8>>>,
}

pub enum Next {
    Block(Vec<u8>),
    /// Nothing arrived within the wait; the caller may tend to other work.
    Idle,
    End,
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

    /// The next block, waiting at most `wait`.
    pub fn next(&self, wait: Duration) -> io::Result<Next> {
        match self.queue.recv_timeout(wait) {
            Ok(block) => block.map(Next::Block),
            Err(RecvTimeoutError::Timeout) => Ok(Next::Idle),
            Err(RecvTimeoutError::Disconnected) => Ok(Next::End),
        }
    }
}

/// The error for a line past `max_line_bytes`.
pub const LINE_TOO_LONG: &str = "the line is longer than max_line_bytes";

fn read_blocks(mut input: impl Read, tx: SyncSender<io::Result<Vec<u8>>>, max_line: usize) {
    let mut carry = Vec::new();
    let mut scratch = vec![0; BLOCK];
    loop {
        let mut block = Vec::with_capacity(BLOCK.max(carry.len() * 2));
        block.append(&mut carry);
        let ended = match fill(&mut input, &mut block, &mut scratch) {
            Ok(ended) => ended,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if !ended {
            // Hand on whole lines only; a line longer than a block waits for its end.
            match memchr::memrchr(b'\n', &block) {
                Some(last) => carry.extend_from_slice(&block[last + 1..]),
                None if block.len() > max_line => {
                    let too_long = io::Error::new(io::ErrorKind::InvalidData, LINE_TOO_LONG);
                    let _ = tx.send(Err(too_long));
                    return;
                }
                None => {
                    carry = block;
                    continue;
                }
            }
            block.truncate(block.len() - carry.len());
        }
        if !block.is_empty() && tx.send(Ok(block)).is_err() {
            return;
        }
        if ended {
            return;
        }
    }
}

/// Reads until the block is full or a read brings a line end (so a slow tap's lines
/// go on at once); true at the end of input. Reads land in `scratch`, zeroed once for
/// the whole run, and are copied on: a pipe gives at most 64 KiB a read, and readying
/// the block's whole free space for each read would cost more than the read.
fn fill(input: &mut impl Read, block: &mut Vec<u8>, scratch: &mut [u8]) -> io::Result<bool> {
    loop {
        let room = block.capacity() - block.len();
        if room == 0 {
            return Ok(false);
        }
        let space = &mut scratch[..room.min(BLOCK)];
        match input.read(space) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                let got = &space[..n];
                block.extend_from_slice(got);
                if memchr::memchr(b'\n', got).is_some() {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The lines of a block, without their line ends.
pub fn lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = block;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
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
                Next::Block(b) => lines_seen.extend(lines(&b).map(<[u8]>::to_vec)),
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
