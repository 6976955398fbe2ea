//! A file's state machine, defined once. The `audio_files.status` column holds a
//! [`FileStatus`]; every query that selects rows by state or moves them takes its states from
//! here, never from string literals of its own.
//!
//! ```text
//!            enqueue (new work)             collector: result events and dead letters
//!  pending ───────────────────▶ queued ─────────────────────────────────────────▶ done (final)
//!                               │  ▲ │ retrying                                  ▲
//!                               │  │ ▼                                           │
//!                               │  └─ retrying ──────────────────────────────────┤
//!                               │     (stale: enqueue, reconcile ─▶ queued)      │
//!                               ▼                                                │
//!                             failed ◀──── failed event, or any dead letter ─────┘
//!  failed ── enqueue (new work), dlq replay ──▶ queued
//! ```
//!
//! [`FileStatus::can_move`] lists the edges; the queries below never make another.
//!
//! `done` never changes again: every update of the collector requires `status <> 'done'`. A
//! `retrying` event never overrides its own job's final outcome (events may arrive out of
//! order).

use std::fmt;

/// The state of a file's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileStatus {
    /// Registered; no job published yet.
    Pending,
    /// A job was published and confirmed; no outcome yet.
    Queued,
    /// An attempt failed transiently; the job waits in a retry queue.
    Retrying,
    /// Results are stored. Final.
    Done,
    /// The job was dead-lettered (its reason in `last_reason`). Final until re-enqueued or
    /// replayed.
    Failed,
}

impl FileStatus {
    /// Every state, in the order of the state machine.
    pub const ALL: [FileStatus; 5] = [
        FileStatus::Pending,
        FileStatus::Queued,
        FileStatus::Retrying,
        FileStatus::Done,
        FileStatus::Failed,
    ];
    /// Rows `enqueue` publishes as new work (within its creation-time window).
    pub const NEW_WORK: [FileStatus; 2] = [FileStatus::Pending, FileStatus::Failed];
    /// Rows whose job is in flight: a lost message leaves them stranded until they are stale.
    pub const IN_FLIGHT: [FileStatus; 2] = [FileStatus::Queued, FileStatus::Retrying];
    /// Rows a `dlq replay` of their dead letter moves back to `queued`.
    pub const REPLAYABLE: [FileStatus; 3] = [
        FileStatus::Failed,
        FileStatus::Retrying,
        FileStatus::Pending,
    ];

    /// The state a result event's outcome moves a row to.
    pub fn after(outcome: vadflow_common::wire::Outcome) -> FileStatus {
        match outcome {
            vadflow_common::wire::Outcome::Done => FileStatus::Done,
            vadflow_common::wire::Outcome::Failed => FileStatus::Failed,
            vadflow_common::wire::Outcome::Retrying => FileStatus::Retrying,
        }
    }

    /// The column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Pending => "pending",
            FileStatus::Queued => "queued",
            FileStatus::Retrying => "retrying",
            FileStatus::Done => "done",
            FileStatus::Failed => "failed",
        }
    }

    /// Whether the row has its outcome.
    pub fn is_final(self) -> bool {
        matches!(self, FileStatus::Done | FileStatus::Failed)
    }

    /// The states as an SQL list of literals, for `status IN (…)` (a literal list, so that the
    /// planner can use the partial indexes declared on the same lists).
    pub fn sql(states: &[FileStatus]) -> String {
        states
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether the state machine has an edge `from → to`: exactly the moves the queries of
    /// `enqueue`, `reconcile`, `dlq replay` and the collector make.
    pub fn can_move(from: FileStatus, to: FileStatus) -> bool {
        use FileStatus::*;
        match (from, to) {
            // Final.
            (Done, _) => false,
            // The collector records any event on any row not done (a job published by another
            // producer, per docs/wire-format.md, may even find its row pending).
            (_, Done | Failed | Retrying) => true,
            // enqueue's new work; dlq replay.
            (Pending | Failed, Queued) => true,
            // A stale row published again; a replayed retry.
            (Queued | Retrying, Queued) => true,
            // Nothing unpublishes a row.
            (_, Pending) => false,
        }
    }
}

impl fmt::Display for FileStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::FileStatus::{self, *};

    #[test]
    fn the_schema_allows_exactly_these_states() {
        let migration = include_str!("../migrations/0001_audio_files.sql");
        let check = format!("CHECK (status IN ({}))", FileStatus::sql(&FileStatus::ALL));
        assert!(
            migration.contains(&check),
            "the migration's CHECK is not {check}"
        );
        let index = format!(
            "WHERE status IN ({})",
            FileStatus::sql(&FileStatus::NEW_WORK)
        );
        assert!(
            migration.contains(&index),
            "enqueue's partial index is not {index}"
        );
    }

    #[test]
    fn done_is_final_and_every_state_reaches_an_outcome() {
        for to in FileStatus::ALL {
            assert!(!FileStatus::can_move(Done, to), "done → {to}");
        }
        // From every state but done, a path leads to done and to failed.
        for from in [Pending, Queued, Retrying, Failed] {
            let via_queued = from == Queued || FileStatus::can_move(from, Queued);
            assert!(via_queued, "{from} cannot be (re)queued");
            assert!(FileStatus::can_move(Queued, Done) && FileStatus::can_move(Queued, Failed));
        }
        for s in FileStatus::NEW_WORK {
            assert!(
                FileStatus::can_move(s, Queued),
                "enqueue moves {s} to queued"
            );
        }
        for s in FileStatus::IN_FLIGHT {
            assert!(!s.is_final());
            assert!(
                FileStatus::can_move(s, Queued),
                "a stale {s} row is republished"
            );
        }
        for s in FileStatus::REPLAYABLE {
            assert!(
                s == Retrying || FileStatus::can_move(s, Queued),
                "replay of {s}"
            );
        }
        for s in FileStatus::ALL {
            assert!(!FileStatus::can_move(s, Pending), "{s} → pending");
        }
        assert_eq!(
            FileStatus::sql(&FileStatus::NEW_WORK),
            "'pending', 'failed'"
        );
    }
}
