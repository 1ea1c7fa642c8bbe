//! The in-memory lists against the store they mirror, including changes
//! made beside the server (the CLI writes the store directly).

use super::*;
use crate::testing::{Fixture, eventually};

#[tokio::test]
async fn the_lists_are_loaded_from_the_store_per_account_ignoring_case() {
    let fx = Fixture::new().await;
    fx.store
        .add_suppression(
            fx.shop.id,
            "Alice@Dest.test",
            SuppressionReason::Manual,
            None,
            Some("asked by phone"),
            "cli",
        )
        .await
        .expect("added");
    let loaded = Suppressions::load(fx.store.clone()).await.expect("loaded");
    assert!(loaded.is_suppressed(fx.shop.id, "alice@dest.test"));
    assert!(loaded.is_suppressed(fx.shop.id, "ALICE@DEST.TEST"));
    assert!(
        !loaded.is_suppressed(fx.news.id, "alice@dest.test"),
        "per account"
    );
    assert!(!loaded.is_suppressed(fx.shop.id, "alice@dest.test.example"));
}

#[tokio::test]
async fn an_address_added_here_is_in_memory_and_in_the_store() {
    let fx = Fixture::new().await;
    fx.suppressions
        .add(
            fx.shop.id,
            "Bob@Dest.test",
            SuppressionReason::Complaint,
            None,
            Some("abuse"),
            "complaint",
        )
        .await
        .expect("suppression stored");
    assert!(fx.suppressions.is_suppressed(fx.shop.id, "bob@dest.test"));
    let entry = fx
        .store
        .suppression(fx.shop.id, "bob@dest.test")
        .await
        .expect("lookup")
        .expect("stored");
    assert_eq!(entry.reason, SuppressionReason::Complaint);
    assert_eq!(entry.detail.as_deref(), Some("abuse"));
    // The store refuses what is not an address; memory does not take it
    // either, and the caller hears of it.
    let refused = fx
        .suppressions
        .add(
            fx.shop.id,
            "not an address",
            SuppressionReason::Manual,
            None,
            None,
            "test",
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(!fx.suppressions.is_suppressed(fx.shop.id, "not an address"));
}

#[tokio::test]
async fn catch_up_applies_changes_made_directly_through_the_store() {
    let fx = Fixture::new().await;
    fx.suppressions
        .add(
            fx.shop.id,
            "carol@dest.test",
            SuppressionReason::HardBounce,
            None,
            None,
            "delivery",
        )
        .await
        .expect("suppression stored");
    // As `carteiro suppression add|remove` beside the server would.
    fx.store
        .add_suppression(
            fx.shop.id,
            "dave@dest.test",
            SuppressionReason::Manual,
            None,
            None,
            "cli",
        )
        .await
        .expect("added");
    assert!(
        fx.store
            .remove_suppression(fx.shop.id, "carol@dest.test", "cli")
            .await
            .expect("removed")
    );
    assert!(!fx.suppressions.is_suppressed(fx.shop.id, "dave@dest.test"));
    assert!(fx.suppressions.is_suppressed(fx.shop.id, "carol@dest.test"));

    fx.suppressions.catch_up().await.expect("caught up");
    assert!(fx.suppressions.is_suppressed(fx.shop.id, "dave@dest.test"));
    assert!(!fx.suppressions.is_suppressed(fx.shop.id, "carol@dest.test"));
    // Nothing new: nothing changes.
    fx.suppressions.catch_up().await.expect("caught up");
    assert!(fx.suppressions.is_suppressed(fx.shop.id, "dave@dest.test"));
}

#[tokio::test]
async fn catch_up_reads_more_than_one_page_of_changes() {
    let fx = Fixture::new().await;
    let n = CHANGES_PAGE as usize + 5;
    for i in 0..n {
        fx.store
            .add_suppression(
                fx.shop.id,
                &format!("user{i}@dest.test"),
                SuppressionReason::Manual,
                None,
                None,
                "cli",
            )
            .await
            .expect("added");
    }
    fx.suppressions.catch_up().await.expect("caught up");
    for i in [0, CHANGES_PAGE as usize - 1, n - 1] {
        assert!(
            fx.suppressions
                .is_suppressed(fx.shop.id, &format!("user{i}@dest.test")),
            "user{i}"
        );
    }
}

#[tokio::test]
async fn the_refresh_task_keeps_the_lists_current_until_stopped() {
    let fx = Fixture::new().await;
    let (stop, stopped) = watch::channel(false);
    let task = fx.suppressions.spawn_refresh(stopped);
    fx.store
        .add_suppression(
            fx.shop.id,
            "erin@dest.test",
            SuppressionReason::Manual,
            None,
            None,
            "cli",
        )
        .await
        .expect("added");
    // One poll interval (2 s) at most.
    eventually("the CLI's change reaches memory", || async {
        fx.suppressions
            .is_suppressed(fx.shop.id, "erin@dest.test")
            .then_some(())
    })
    .await;
    stop.send(true).expect("task listening");
    tokio::time::timeout(crate::testing::WAIT, task)
        .await
        .expect("stopped in time")
        .expect("no panic");
}
