//! STATE: held until every record before it is stored, then released, newest first.
//!
//! Owns: the queue of received STATE values and the rule for releasing them. A state
//! received at input line `p` covers every record on lines before `p`; it is released
//! once the oldest record not yet stored (the watermark) lies after `p`. Of several
//! covered states only the newest is written, and never the same value twice.
//! Must not touch: stdout or uploads; `target` tells it the watermark and writes lines.

use std::collections::VecDeque;

#[derive(Debug, Default)]
pub struct StateTracker {
    /// (input line, compact JSON value), oldest first.
    pending: VecDeque<(u64, String)>,
    last_released: Option<String>,
}

impl StateTracker {
    pub fn receive(&mut self, line: u64, value: String) {
        self.pending.push_back((line, value));
    }

    /// The newest state that would be covered at `watermark`, without releasing it
    /// (what an Iceberg commit records as the state it makes safe).
    pub fn covered(&self, watermark: u64) -> Option<&str> {
        self.pending
            .iter()
            .take_while(|(line, _)| *line < watermark)
            .last()
            .map(|(_, value)| value.as_str())
    }

    /// The newest state covered when no record from line `watermark` on is stored yet
    /// (`u64::MAX` when everything is stored), unless it was already released.
    pub fn release(&mut self, watermark: u64) -> Option<String> {
        let mut newest = None;
        while let Some((line, _)) = self.pending.front() {
            if *line >= watermark {
                break;
            }
            newest = self.pending.pop_front().map(|(_, value)| value);
        }
        let value = newest?;
        if self.last_released.as_ref() == Some(&value) {
            return None;
        }
        self.last_released = Some(value.clone());
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_only_covered_states_newest_first_never_twice() {
        let mut t = StateTracker::default();
        t.receive(5, "a".into());
        t.receive(9, "b".into());
        t.receive(12, "c".into());
        assert_eq!(t.release(5), None, "a record on line 5 is not stored yet");
        assert_eq!(t.release(10), Some("b".into()));
        assert_eq!(t.pending.len(), 1);
        t.receive(15, "c".into());
        assert_eq!(t.release(u64::MAX), Some("c".into()));
        assert_eq!(t.release(u64::MAX), None);
        t.receive(20, "c".into());
        assert_eq!(t.release(u64::MAX), None, "same value is not repeated");
    }
}
