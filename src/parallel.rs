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
//! Twins are made on the decoding threads, only for the streams a job's lines name, from
//! the streams' blueprints (`Blueprint`), which the run hands over as they change (with
//! the next job each thread gets); a job's twins are dropped after it, but for a few
//! kept for reuse. So the decoders' memory follows what a job holds, not how many
//! streams there are: a job makes new twins only while their empty buffers take less
//! than `TWIN_ROOM`, and leaves the lines of other streams to the run.
//!
//! A decoder decodes only what cannot depend on the lines before it: plain RECORD lines
//! (see `protocol::plain_record`) of streams whose rows depend on their own text alone
//! (`Batch::splittable`). A line that may be a SCHEMA could change how later lines
//! decode, so a decoder stops there and the run reads the rest of the block itself; if
//! a schema changed after a block was handed out, the run reads that block itself.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::batch::{Batch, BatchOf, Blueprint};
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
/// Bytes the empty buffers of one job's twins may take (`Blueprint::empty_size`): with
/// thousands of streams interleaved, a job decodes the records of the streams it met
/// first, and leaves the others to the run.
const TWIN_ROOM: usize = 2 << 20;

/// A stream's twin buffer with where each of its rows came from.
pub struct Twin {
    /// The stream's place in the run's list.
    pub stream: usize,
    /// What it was made from: a spare is reused only for the same.
    blueprint: Arc<Blueprint>,
    pub batch: Batch,
    /// Per row: its line (counted from the block's first) and its input size.
    pub rows: Vec<(u32, usize)>,
}

/// A job's twins, found by stream.
#[derive(Default)]
pub struct Twins {
    list: Vec<Twin>,
    slots: HashMap<usize, usize>,
}

impl Twins {
    pub fn get(&self, stream: usize) -> Option<&Twin> {
        self.slots.get(&stream).map(|&slot| &self.list[slot])
    }

    fn slot(&self, stream: usize) -> Option<usize> {
        self.slots.get(&stream).copied()
    }

    /// Adds a twin; returns its slot.
    fn push(&mut self, twin: Twin) -> usize {
        self.slots.insert(twin.stream, self.list.len());
        self.list.push(twin);
        self.list.len() - 1
    }

    /// The twins to keep for later jobs: as many as the room one job's new twins may
    /// take (`TWIN_ROOM`), so with a few hundred streams every twin is reused, as
    /// making one costs more than decoding a few records into it.
    pub fn into_spares(mut self) -> Vec<Twin> {
        let mut room = TWIN_ROOM;
        let kept = self.list.iter().take_while(|twin| {
            let size = twin.blueprint.empty_size();
            room = room.saturating_sub(size);
            room > 0
        });
        let kept = kept.count();
        self.list.truncate(kept);
        self.list
    }
}

/// A change to the streams the decoders may decode: stream `stream` (named `name`) is
/// decoded from `blueprint`, or not at all (None).
struct Change {
    stream: usize,
    /// One copy of the name, shared by the decoders' plans and their indexes.
    name: Arc<str>,
    blueprint: Option<Arc<Blueprint>>,
}

/// A decoding thread's view of the run's streams, kept up to date by the changes that
/// come with its jobs.
#[derive(Default)]
struct Plan {
    blueprints: Vec<Option<Arc<Blueprint>>>,
    names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, usize>,
}

impl Plan {
    fn apply(&mut self, changes: Vec<Change>) {
        for change in changes {
            if self.blueprints.len() <= change.stream {
                self.blueprints.resize(change.stream + 1, None);
                self.names.resize(change.stream + 1, Arc::from(""));
            }
            if *self.names[change.stream] != *change.name {
                self.index.insert(change.name.clone(), change.stream);
                self.names[change.stream] = change.name;
            }
            self.blueprints[change.stream] = change.blueprint;
        }
    }
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
    pub twins: Twins,
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
    /// The changes to the streams since this decoder's last job.
    changes: Vec<Change>,
    /// Twins of earlier jobs, to reuse.
    spares: Vec<Twin>,
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
    /// Changes to the streams not yet sent to every decoder, and how many of them each
    /// decoder has been sent.
    changes: Vec<(usize, Arc<str>, Option<Arc<Blueprint>>)>,
    sent: Vec<usize>,
    /// Streams the decoders may decode.
    planned: Vec<bool>,
    decodable: usize,
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
            changes: Vec::new(),
            sent: vec![0; DECODERS],
            planned: Vec::new(),
            decodable: 0,
        })
    }

    /// Records of stream `stream` (named `name`) are decoded from `blueprint` in the
    /// jobs handed out from now on, or by the run alone (None).
    pub fn plan(&mut self, stream: usize, name: &str, blueprint: Option<Blueprint>) {
        if self.planned.len() <= stream {
            self.planned.resize(stream + 1, false);
        }
        let now = blueprint.is_some();
        if self.planned[stream] != now {
            self.planned[stream] = now;
            self.decodable = if now {
                self.decodable + 1
            } else {
                self.decodable - 1
            };
        }
        let change = (stream, Arc::from(name), blueprint.map(Arc::new));
        self.changes.push(change);
    }

    /// Whether any stream's records may be decoded here.
    pub fn decode_any(&self) -> bool {
        self.decodable > 0
    }

    /// The changes decoder `decoder` has not been sent yet; forgets those every
    /// decoder has.
    fn changes_for(&mut self, decoder: usize) -> Vec<Change> {
        let new = self.changes[self.sent[decoder]..]
            .iter()
            .map(|(stream, name, blueprint)| Change {
                stream: *stream,
                name: name.clone(),
                blueprint: blueprint.clone(),
            })
            .collect();
        self.sent[decoder] = self.changes.len();
        if self.sent.iter().all(|&sent| sent == self.changes.len()) {
            self.changes.clear();
            self.sent.iter_mut().for_each(|sent| *sent = 0);
        }
        new
    }

    /// Jobs handed out and not taken back.
    pub fn in_flight(&self) -> usize {
        self.out.len()
    }

    /// Has the lines of `blocks` decoded into twins of the streams planned (see
    /// `plan`), reusing `spares` where they fit. Gives the blocks back if the decoder is
    /// gone (its changes are then lost with it: no later job goes to it).
    pub fn send(
        &mut self,
        blocks: Vec<Arc<Block>>,
        spares: Vec<Twin>,
        lines: Lines,
    ) -> Result<(), Vec<Arc<Block>>> {
        let changes = self.changes_for(self.turn);
        let decoder = &self.decoders[self.turn];
        decoder
            .jobs
            .send(Job {
                blocks,
                changes,
                spares,
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
            let mut plan = Plan::default();
            for mut job in job_queue {
                plan.apply(std::mem::take(&mut job.changes));
                if done_tx.send(decode_job(job, &plan)).is_err() {
                    return;
                }
            }
        })
        .ok()?;
    Some(Decoder { jobs, done })
}

fn decode_job(job: Job, plan: &Plan) -> Done {
    let mut sink = TwinSink {
        plan,
        twins: Twins::default(),
        spares: job.spares,
        room: TWIN_ROOM,
        last: None,
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
            let decoded =
                protocol::plain_record(line, &mut sink).is_some() && sink.end_row(here, line.len());
            if let (true, Some((stream, _))) = (decoded, sink.last) {
                push_row(&mut steps, stream);
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

/// Lets the plain decoder put records into the twins, made as streams are met.
struct TwinSink<'p> {
    plan: &'p Plan,
    twins: Twins,
    spares: Vec<Twin>,
    /// Bytes new twins' empty buffers may still take.
    room: usize,
    /// The stream last found and its twin's slot: records come in runs of one stream.
    last: Option<(usize, usize)>,
}

impl TwinSink<'_> {
    fn find(&mut self, name: &str) -> Option<&mut Twin> {
        let plan = self.plan;
        if let Some((stream, slot)) = self.last
            && same(&plan.names[stream], name)
        {
            return Some(&mut self.twins.list[slot]);
        }
        let stream = *plan.index.get(name)?;
        self.twin(stream)
    }

    /// The twin of stream `stream`, made (or reused from a spare) if there is room;
    /// the stream last found from now on.
    fn twin(&mut self, stream: usize) -> Option<&mut Twin> {
        let slot = match self.twins.slot(stream) {
            Some(slot) => slot,
            None => self.make_twin(stream)?,
        };
        self.last = Some((stream, slot));
        Some(&mut self.twins.list[slot])
    }

    /// Makes a twin of stream `stream`, or reuses a spare; returns its slot.
    fn make_twin(&mut self, stream: usize) -> Option<usize> {
        let blueprint = self.plan.blueprints.get(stream)?.as_ref()?;
        let fits = |t: &Twin| t.stream == stream && Arc::ptr_eq(&t.blueprint, blueprint);
        let twin = match self.spares.iter().position(fits) {
            Some(at) => {
                let mut twin = self.spares.swap_remove(at);
                twin.batch.reset_twin(blueprint);
                twin.rows.clear();
                twin
            }
            None => {
                let size = blueprint.empty_size();
                // The first twin of a job is always made: no stream is left out wholly.
                if size > self.room && !self.twins.list.is_empty() {
                    return None;
                }
                self.room = self.room.saturating_sub(size);
                Twin {
                    stream,
                    blueprint: blueprint.clone(),
                    batch: blueprint.build(),
                    rows: Vec::new(),
                }
            }
        };
        Some(self.twins.push(twin))
    }

    /// Keeps the row just decoded into the last twin found, if its keys are there (if
    /// not, the run decodes the line again and says why).
    fn end_row(&mut self, index: u32, bytes: usize) -> bool {
        let Some((_, slot)) = self.last else {
            return false;
        };
        let twin = &mut self.twins.list[slot];
        let envelope = crate::metadata::Envelope::default();
        let kept = twin.batch.end_row(true, 0, bytes, &envelope).is_ok();
        if kept {
            twin.rows.push((index, bytes));
        }
        kept
    }

    /// Decodes a bare plain record into the twin of `stream` and keeps it; false leaves
    /// no trace, and the run decodes the line itself.
    fn bare_record(&mut self, stream: usize, line: &str, index: u32) -> bool {
        let Some(twin) = self.twin(stream) else {
            return false;
        };
        if !twin.batch.decode_plain_line(line) {
            return false;
        }
        self.end_row(index, line.len())
    }
}

impl BatchOf for TwinSink<'_> {
    fn batch_of(&mut self, stream: &str) -> Option<&mut Batch> {
        self.find(stream).map(|t| &mut t.batch)
    }
}
