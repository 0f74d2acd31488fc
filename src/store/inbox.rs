//! The inbox's vocabulary: deliveries as Foreman keeps them ([`DeliveryMeta`], [`NewDelivery`],
//! [`DeliveryRecord`]), where each is in its processing ([`DeliveryState`]), and how a body is compressed.
//! A store keeps them behind [`super::Inbox`].

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{DeliveryId, InstallationId};

/// How a stored body is compressed: the first byte of a `deliveries` record.
///
/// Bodies are compressed because without it ingest throughput halved and memory rose about 4× in the
/// prototype (the webhook ingest bench, `benches/ingest.sh`). New records use LZ4: on the 13.8 KB `issues.labeled` example it compresses
/// about 3× faster than zstd level 1 for a ratio of 4.5 instead of 5.4, and compression sits on every
/// delivery's path to its answer. Records written before LZ4 start with a zero byte (their first byte was the
/// high byte of a 32-bit metadata length) and hold zstd frames; they are still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// A zstd frame (records written by Foreman before LZ4).
    Zstd = 0,
    /// An LZ4 block (lz4_flex); the raw length is the metadata's `body_len`.
    Lz4 = 1,
}

/// Deliveries being stored at once (answers to GitHub still to be sent) at or above which the ingress is in a
/// burst, and [`super::Inbox::ingest_lull`] waits. Sixteen is about the size of one group commit under load, far
/// above GitHub's usual traffic for one installation (deliveries one at a time), and well below a burst of
/// 64 concurrent deliveries.
pub const BURST_PUTS: usize = 16;

/// What Foreman keeps about a delivery besides its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryMeta {
    /// The `X-GitHub-Delivery` id.
    pub id: DeliveryId,
    /// The `X-GitHub-Event` name, e.g. `issues`.
    pub event: String,
    /// The payload's `action`, when it has one.
    pub action: Option<String>,
    /// The payload's `installation.id`, when present.
    pub installation: Option<InstallationId>,
    /// The payload's `repository.full_name`, when present.
    pub repository: Option<String>,
    /// When Foreman received it.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Size of the raw body in bytes, before compression.
    pub body_len: u32,
}

/// A delivery ready to be stored: its metadata and its raw body compressed with [`compress_body`] (LZ4).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Metadata.
    pub meta: DeliveryMeta,
    /// The raw body as an LZ4 block ([`compress_body`]).
    pub compressed_body: Vec<u8>,
}

/// The result of storing a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored durably under this sequence number.
    Stored(u64),
    /// A delivery with the same id was already stored (under this sequence number); nothing was written.
    Duplicate(u64),
}

/// Where a stored delivery is in its processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    /// In the inbox, not yet handed to the decision core (or handed, and not yet finished).
    Pending,
    /// Processed; `decisions` says what was decided and what became of it.
    Processed {
        /// When processing finished.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        /// One object per action, as `foreman replay` prints it (`decision` and its fields), with `result`:
        /// what became of it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        decisions: Vec<serde_json::Value>,
        /// Records written before decisions were kept as objects: the same as JSON lines in one string.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        summary: String,
    },
    /// Could not be processed (for example, a payload that does not decode); kept with its error and not
    /// retried.
    Dead {
        /// When it was dead-lettered.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        /// Why.
        error: String,
    },
}

/// A stored delivery's metadata and processing state, as `GET /api/deliveries/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    /// The sequence number: arrival order.
    pub seq: u64,
    /// Metadata.
    #[serde(flatten)]
    pub meta: DeliveryMeta,
    /// Processing state.
    pub processing: DeliveryState,
}

/// The most bytes of scratch space a thread keeps between deliveries. Webhook bodies are mostly a few to a
/// few tens of KB; a rare big one (GitHub sends up to 25 MiB) uses the scratch once and is then let go.
pub(crate) const SCRATCH_KEPT: usize = 256 * 1024;

thread_local! {
    /// Scratch space for [`compress_body`] and [`encode_record`], kept per thread so that the request path
    /// does not allocate a buffer the size of the body for every delivery.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's empty scratch buffer, then gives back what it grew past [`SCRATCH_KEPT`].
pub(crate) fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        let out = f(scratch);
        scratch.clear();
        scratch.shrink_to(SCRATCH_KEPT);
        out
    })
}

/// The capacity of this thread's scratch buffer, for tests that it is let go.
#[cfg(test)]
pub(crate) fn scratch_capacity() -> usize {
    SCRATCH.with_borrow(|s| s.capacity())
}

/// Compresses a raw body for [`NewDelivery::compressed_body`]: an LZ4 block ([`Codec::Lz4`]), in a vector
/// of exactly its size.
pub fn compress_body(body: &[u8]) -> Vec<u8> {
    with_scratch(|scratch| {
        scratch.resize(lz4_flex::block::get_maximum_output_size(body.len()), 0);
        let n = lz4_flex::block::compress_into(body, scratch).expect("the buffer has the maximum output size");
        scratch[..n].to_vec()
    })
}

#[cfg(test)]
mod tests {
    use super::DeliveryState;

    #[test]
    fn a_processed_state_stored_before_decisions_were_objects_still_reads() {
        let old = r#"{"state":"processed","at":"2026-11-21T01:00:00Z","summary":"{\"decision\":\"ignore\"}"}"#;
        let DeliveryState::Processed { decisions, summary, .. } = serde_json::from_str(old).unwrap() else {
            panic!("processed")
        };
        assert!(decisions.is_empty());
        assert_eq!(summary, r#"{"decision":"ignore"}"#);
        let new = r#"{"state":"processed","at":"2026-11-21T01:00:00Z","decisions":[{"decision":"ignore"}]}"#;
        let state: DeliveryState = serde_json::from_str(new).unwrap();
        assert_eq!(serde_json::to_string(&state).unwrap(), new);
    }
}
