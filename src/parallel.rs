//! Decoding on two threads: input blocks (those waiting together form one job) go in
//! turn to two decoder threads, which decode
//! their plain RECORD lines into twins of their streams' buffers (`Batch::twin`); the
//! run takes each block's account back in input order and takes its rows into the
//! streams' own buffers, so the costly part of decoding uses two cores and the order of
//! records, limits and STATE stays that of one thread.
//!
//! Owns: the decoder threads, the order of their work, and each block's account: runs
//! of rows decoded, lines left to the run, and where a decoder stopped. Must not touch:
//! the streams' own buffers, STATE, or any decision about flushing; the run (`target`)
//! applies every per-record rule to the rows as if it had decoded them itself, and it
//! handles every other line.
//!
//! The lines of a BATCH message's files are bare records of one stream: a job may say
//! so (`Lines::Records`), and its plain records are decoded the same way.
//!
//! A decoder decodes only what cannot depend on the lines before it: plain RECORD lines
//! (see `protocol::plain_record`) of streams whose rows depend on their own text alone
//! (`Batch::splittable`). A line that may be a SCHEMA could change how later lines
//! decode, so a decoder stops there and the run reads the rest of the block itself; if
//! a schema changed after a block was handed out, the run reads that block itself.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::batch::{Batch, BatchOf};
use crate::input::Block;
use crate::protocol;
use crate::scan::same;

/// Decoder threads.
pub const DECODERS: usize = 2;
/// Jobs handed out and not yet taken back, at most: each decoder has one to work on
/// and one waiting.
pub const IN_FLIGHT: usize = 2 * DECODERS;
// The reader keeps buffers for the blocks out here.
const _: () = assert!(IN_FLIGHT <= crate::input::LENT_BLOCKS);

/// A stream's twin buffer with where each of its rows came from.
pub struct Twin {
    pub name: String,
    pub batch: Batch,
    /// Per row: its line (counted from the block's first) and its input size.
    pub rows: Vec<(u32, usize)>,
}

/// What a decoder found, in input order.
pub enum Step {
    /// The next `count` rows of twin `stream`.
    Rows { stream: usize, count: usize },
    /// A line for the run to handle: its number counted from the job's first line,
    /// its block, and where it starts there.
    Line {
        index: u32,
        block: usize,
        start: usize,
    },
}

/// A decoder's account of one job: a few blocks that were waiting together.
pub struct Done {
    pub blocks: Vec<Arc<Block>>,
    pub twins: Vec<Option<Twin>>,
    pub steps: Vec<Step>,
    /// Lines it went through (all of the blocks' unless it stopped).
    pub lines: u32,
    /// Where it stopped, at a line that may be a SCHEMA (block, byte): the run reads
    /// the rest.
    pub stopped_at: Option<(usize, usize)>,
}

/// What a job's lines are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines {
    /// Singer messages.
    Messages,
    /// Bare records of the stream whose twin has this index (a batch file's lines).
    Records { stream: usize },
}

struct Job {
    blocks: Vec<Arc<Block>>,
    twins: Vec<Option<Twin>>,
    lines: Lines,
}

struct Decoder {
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
}

/// The decoder threads, given jobs in turn and read back in the same turn, so accounts
/// come back in input order.
pub struct Decoders {
    decoders: Vec<Decoder>,
    /// Which decoder each job handed out went to, oldest first.
    out: VecDeque<usize>,
    turn: usize,
}

impl Decoders {
    /// The decoders, when the machine has a second core for them.
    pub fn start() -> Option<Decoders> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        if cores < 2 {
            return None;
        }
        let decoders = (1..=DECODERS)
            .map(spawn)
            .collect::<Option<Vec<Decoder>>>()?;
        Some(Decoders {
            decoders,
            out: VecDeque::new(),
            turn: 0,
        })
    }

    /// Jobs handed out and not taken back.
    pub fn in_flight(&self) -> usize {
        self.out.len()
    }

    /// Has the lines of `blocks` decoded into `twins` (indexed as the run's streams;
    /// None for a stream the decoders must leave alone). Gives the blocks back if the
    /// decoder is gone.
    pub fn send(
        &mut self,
        blocks: Vec<Arc<Block>>,
        twins: Vec<Option<Twin>>,
        lines: Lines,
    ) -> Result<(), Vec<Arc<Block>>> {
        let decoder = &self.decoders[self.turn];
        decoder
            .jobs
            .send(Job {
                blocks,
                twins,
                lines,
            })
            .map_err(|unsent| unsent.0.blocks)?;
        self.out.push_back(self.turn);
        self.turn = (self.turn + 1) % self.decoders.len();
        Ok(())
    }

    /// The account of the oldest job handed out; None if none is out or its decoder is
    /// gone.
    pub fn receive(&mut self) -> Option<Done> {
        let decoder = self.out.pop_front()?;
        self.decoders[decoder].done.recv().ok()
    }
}

fn spawn(number: usize) -> Option<Decoder> {
    let (jobs, job_queue) = sync_channel::<Job>(IN_FLIGHT);
    let (done_tx, done) = sync_channel(IN_FLIGHT);
    std::thread::Builder::new()
        .name(format!("decoder-{number}"))
        .spawn(move || {
            for job in job_queue {
                if done_tx.send(decode_job(job)).is_err() {
                    return;
                }
            }
        })
        .ok()?;
    Some(Decoder { jobs, done })
}

fn decode_job(job: Job) -> Done {
    let mut sink = TwinSink {
        twins: job.twins,
        last: 0,
    };
    let mut steps = Vec::new();
    let (mut index, mut stopped_at) = (0u32, None);
    'blocks: for (block, lines) in job.blocks.iter().enumerate() {
        for (start, line) in lines.lines_from(0) {
            let here = index;
            index += 1;
            let left = Step::Line {
                index: here,
                block,
                start,
            };
            let Ok(line) = line.map(str::trim) else {
                steps.push(left);
                continue;
            };
            if line.is_empty() {
                continue;
            }
            if let Lines::Records { stream } = job.lines {
                if sink.bare_record(stream, line, here) {
                    push_row(&mut steps, stream);
                } else {
                    steps.push(left);
                }
                continue;
            }
            if protocol::plain_record(line, &mut sink).is_some() && sink.end_row(here, line.len()) {
                push_row(&mut steps, sink.last);
            } else if memchr::memmem::find(line.as_bytes(), b"SCHEMA").is_some() {
                (index, stopped_at) = (here, Some((block, start)));
                break 'blocks;
            } else {
                steps.push(left);
            }
        }
    }
    Done {
        blocks: job.blocks,
        twins: sink.twins,
        steps,
        lines: index,
        stopped_at,
    }
}

/// Counts one more row of twin `stream`, joining the run of rows before it if any.
fn push_row(steps: &mut Vec<Step>, stream: usize) {
    match steps.last_mut() {
        Some(Step::Rows { stream: s, count }) if *s == stream => *count += 1,
        _ => steps.push(Step::Rows { stream, count: 1 }),
    }
}

/// Lets the plain decoder put records into the twins.
struct TwinSink {
    twins: Vec<Option<Twin>>,
    /// The twin last found: records come in runs of one stream.
    last: usize,
}

impl TwinSink {
    fn find(&mut self, stream: &str) -> Option<&mut Twin> {
        let is = |t: &Option<Twin>| t.as_ref().is_some_and(|t| same(&t.name, stream));
        if !self.twins.get(self.last).is_some_and(is) {
            self.last = self.twins.iter().position(is)?;
        }
        self.twins.get_mut(self.last)?.as_mut()
    }

    /// Keeps the row just decoded into the last twin found, if its keys are there (if
    /// not, the run decodes the line again and says why).
    fn end_row(&mut self, index: u32, bytes: usize) -> bool {
        let Some(Some(twin)) = self.twins.get_mut(self.last) else {
            return false;
        };
        let envelope = crate::metadata::Envelope::default();
        let kept = twin.batch.end_row(true, 0, bytes, &envelope).is_ok();
        if kept {
            twin.rows.push((index, bytes));
        }
        kept
    }
}

impl TwinSink {
    /// Decodes a bare plain record into twin `stream` and keeps it; false leaves no
    /// trace, and the run decodes the line itself.
    fn bare_record(&mut self, stream: usize, line: &str, index: u32) -> bool {
        let Some(Some(twin)) = self.twins.get_mut(stream) else {
            return false;
        };
        if !twin.batch.decode_plain_line(line) {
            return false;
        }
        self.last = stream;
        self.end_row(index, line.len())
    }
}

impl BatchOf for TwinSink {
    fn batch_of(&mut self, stream: &str) -> Option<&mut Batch> {
        self.find(stream).map(|t| &mut t.batch)
    }
}
