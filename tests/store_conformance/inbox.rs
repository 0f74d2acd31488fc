//! The inbox's rules, written against the [`Inbox`] port: each test is generic over the backend, which
//! `open` opens in a temp dir (and opens again, for what must survive a restart).

use foreman::ids::{DeliveryId, InstallationId};
use foreman::store::inbox::compress_body;
use foreman::store::{DeliveryMeta, DeliveryState, Inbox, NewDelivery, PutOutcome};
use time::OffsetDateTime;

use super::Open;

fn new_delivery(id: &str, received_at: OffsetDateTime) -> NewDelivery {
    let body = format!(r#"{{"action":"labeled","id":"{id}"}}"#);
    NewDelivery {
        meta: DeliveryMeta {
            id: DeliveryId(id.into()),
            event: "issues".into(),
            action: Some("labeled".into()),
            installation: Some(InstallationId(1)),
            repository: Some("o/r".into()),
            received_at,
            body_len: body.len() as u32,
        },
        compressed_body: compress_body(body.as_bytes()),
    }
}

fn processed() -> DeliveryState {
    DeliveryState::Processed { at: OffsetDateTime::now_utc(), decisions: vec![], summary: "ok".into() }
}

pub async fn concurrent_puts_share_flushes_and_each_id_is_stored_once<S: Inbox>(open: Open<S>) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let now = OffsetDateTime::now_utc();
    // 200 puts of 50 distinct ids, all at once: the writer batches them; duplicates inside one batch
    // and across batches are both caught.
    let puts = (0..200).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.put_delivery(new_delivery(&format!("id-{}", i % 50), now)).await.unwrap() })
    });
    let outcomes: Vec<PutOutcome> =
        futures_util::future::join_all(puts).await.into_iter().map(Result::unwrap).collect();
    let stored = outcomes.iter().filter(|o| matches!(o, PutOutcome::Stored(_))).count();
    assert_eq!(stored, 50);
    assert_eq!(store.inbox_depth(), 50);
    let (meta, body) = store.delivery_body(1).unwrap().unwrap();
    assert_eq!(body.len(), meta.body_len as usize);
    assert!(std::str::from_utf8(&body).unwrap().contains(meta.id.as_str()));
}

pub async fn inbox_survives_reopening_and_pruning_keeps_pending_and_recent<S: Inbox>(open: Open<S>) {
    let dir = tempfile::tempdir().unwrap();
    let old = OffsetDateTime::now_utc() - time::Duration::days(10);
    let recent = OffsetDateTime::now_utc();
    {
        let store = open(dir.path());
        for (id, at) in [("old-done", old), ("old-pending", old), ("new-done", recent)] {
            store.put_delivery(new_delivery(id, at)).await.unwrap();
        }
        for seq in [1, 3] {
            store
                .finish_delivery(seq, &DeliveryState::Processed { at: recent, decisions: vec![], summary: "ok".into() })
                .unwrap();
        }
        store.sync().await.unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.pending_deliveries(None, 10).unwrap(), vec![2]);
    let cutoff = OffsetDateTime::now_utc() - time::Duration::days(7);
    assert_eq!(store.prune_deliveries(cutoff).unwrap(), 1);
    assert!(store.delivery(&DeliveryId("old-done".into())).unwrap().is_none());
    assert!(store.delivery(&DeliveryId("old-pending".into())).unwrap().is_some());
    let kept = store.delivery(&DeliveryId("new-done".into())).unwrap().unwrap();
    assert!(matches!(kept.processing, DeliveryState::Processed { .. }));
    // The deduplication filter is rebuilt from the ids on disk: a redelivery after a restart is a duplicate.
    assert_eq!(store.put_delivery(new_delivery("new-done", recent)).await.unwrap(), PutOutcome::Duplicate(3));
    // Sequence numbers keep growing after a restart.
    assert_eq!(store.put_delivery(new_delivery("later", recent)).await.unwrap(), PutOutcome::Stored(4));
    // A pruned id can no longer be found, so a very late redelivery of it would be stored anew.
    assert_eq!(store.put_delivery(new_delivery("old-done", recent)).await.unwrap(), PutOutcome::Stored(5));
}

pub async fn the_inbox_floor_stops_below_a_delivery_left_pending_and_survives_a_restart<S: Inbox>(open: Open<S>) {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    {
        let store = open(dir.path());
        for i in 1..=5 {
            store.put_delivery(new_delivery(&format!("d{i}"), now)).await.unwrap();
        }
        // 1, 2 and 4 processed; 3 failed transiently and stays; 5 not reached yet.
        for seq in [1, 2, 4] {
            store.finish_delivery(seq, &processed()).unwrap();
        }
        assert_eq!(store.pending_deliveries(None, 10).unwrap(), vec![3, 5]);
        assert_eq!(store.inbox_depth(), 2);
        // A page from the middle of a pass.
        assert_eq!(store.pending_deliveries(Some(3), 10).unwrap(), vec![5]);
        assert_eq!(store.pending_deliveries(None, 1).unwrap(), vec![3]);
        store.sync().await.unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.pending_deliveries(None, 10).unwrap(), vec![3, 5]);
    assert_eq!(store.inbox_depth(), 2);
    store.finish_delivery(3, &processed()).unwrap();
    store.finish_delivery(5, &processed()).unwrap();
    assert_eq!(store.pending_deliveries(None, 10).unwrap(), Vec::<u64>::new());
    assert_eq!(store.inbox_depth(), 0);
    store.put_delivery(new_delivery("d6", now)).await.unwrap();
    assert_eq!(store.pending_deliveries(None, 10).unwrap(), vec![6]);
    // Processed deliveries stay readable below the floor.
    let d1 = store.delivery(&DeliveryId("d1".into())).unwrap().unwrap();
    assert!(matches!(d1.processing, DeliveryState::Processed { .. }));
}

/// Poll delivery mode's position in GitHub's delivery log: none at first, then the last one recorded, which a
/// reopened store still has (it is durable when the call returns).
pub async fn the_delivery_log_position_is_durable_and_survives_a_reopen<S: Inbox>(open: Open<S>) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        assert_eq!(store.delivery_log_position().unwrap(), None);
        store.set_delivery_log_position(41_000_007).await.unwrap();
        assert_eq!(store.delivery_log_position().unwrap(), Some(41_000_007));
        store.set_delivery_log_position(41_000_012).await.unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.delivery_log_position().unwrap(), Some(41_000_012));
}
