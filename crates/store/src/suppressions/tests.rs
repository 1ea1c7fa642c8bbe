//! Tests of the suppression lists and their audit log.

use super::*;
use crate::testutil::temp_store;

/// A store with two accounts; returns their ids.
async fn two_accounts() -> (tempfile::TempDir, Store, i64, i64) {
    let (dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("acme").id;
    let beta = store.create_account("beta").await.expect("beta").id;
    (dir, store, acme, beta)
}

/// Adds `address` to `account`'s list manually, by the CLI; returns whether
/// it was new.
async fn add(store: &Store, account: i64, address: &str) -> bool {
    store
        .add_suppression(
            account,
            address,
            SuppressionReason::Manual,
            None,
            None,
            "cli",
        )
        .await
        .expect("add")
}

/// The addresses of a listing.
fn addresses(list: &[Suppression]) -> Vec<&str> {
    list.iter().map(|s| s.address.as_str()).collect()
}

/// The whole change feed.
async fn changes(store: &Store) -> Vec<SuppressionChange> {
    store
        .suppression_changes(0, MAX_SUPPRESSIONS_PAGE)
        .await
        .expect("changes")
}

#[test]
fn reasons_round_trip_through_their_names() {
    for reason in SuppressionReason::ALL {
        assert_eq!(reason.as_str().parse::<SuppressionReason>(), Ok(reason));
        assert_eq!(
            serde_json::to_value(reason).expect("json"),
            serde_json::json!(reason.as_str())
        );
        assert_eq!(reason.to_string(), reason.as_str());
    }
    assert_eq!(SuppressionReason::HardBounce.as_str(), "hard_bounce");
    let error = "bounce".parse::<SuppressionReason>().expect_err("unknown");
    assert_eq!(error.to_string(), "unknown suppression reason \"bounce\"");
}

#[tokio::test]
async fn an_address_is_stored_lowercased_and_found_in_any_case() {
    let (_dir, store, acme, _) = two_accounts().await;
    let before = now_unix_ms();
    let added = store
        .add_suppression(
            acme,
            "Bob.Smith@Example.COM",
            SuppressionReason::HardBounce,
            Some("01JCWQ6ZQ3T4V2X7Y8Z9A0B1C2"),
            Some("550 5.1.1 no such user"),
            "bounce",
        )
        .await
        .expect("add");
    assert!(added);
    for asked in [
        "bob.smith@example.com",
        "BOB.SMITH@EXAMPLE.COM",
        "Bob.Smith@Example.COM",
    ] {
        let found = store
            .suppression(acme, asked)
            .await
            .expect("lookup")
            .unwrap_or_else(|| panic!("{asked} not found"));
        assert_eq!(found.account_id, acme);
        assert_eq!(found.address, "bob.smith@example.com");
        assert_eq!(found.reason, SuppressionReason::HardBounce);
        assert_eq!(
            found.source_message_id.as_deref(),
            Some("01JCWQ6ZQ3T4V2X7Y8Z9A0B1C2")
        );
        assert_eq!(found.detail.as_deref(), Some("550 5.1.1 no such user"));
        assert!(found.created_at_ms >= before && found.created_at_ms <= now_unix_ms());
    }
    assert_eq!(
        store.suppression(acme, "bob@example.com").await.expect("x"),
        None
    );
    // ASCII letters fold; others are kept as given.
    assert!(add(&store, acme, "ÉLODIE@Exemple.FR").await);
    assert!(
        store
            .suppression(acme, "Élodie@exemple.fr")
            .await
            .expect("lookup")
            .is_some()
    );
    assert_eq!(
        suppression_address("ÉLODIE@Exemple.FR"),
        "Élodie@exemple.fr"
    );
}

#[tokio::test]
async fn adding_again_keeps_the_first_entry_and_writes_no_audit_row() {
    let (_dir, store, acme, _) = two_accounts().await;
    assert!(
        store
            .add_suppression(
                acme,
                "bob@example.com",
                SuppressionReason::Complaint,
                Some("first"),
                Some("abuse"),
                "complaint",
            )
            .await
            .expect("first add")
    );
    let first = store
        .suppression(acme, "bob@example.com")
        .await
        .expect("lookup")
        .expect("there");
    for reason in SuppressionReason::ALL {
        let again = store
            .add_suppression(
                acme,
                "BOB@example.com",
                reason,
                Some("second"),
                Some("other"),
                "api",
            )
            .await
            .expect("add again");
        assert!(!again, "{reason}: not new");
    }
    let kept = store
        .suppression(acme, "bob@example.com")
        .await
        .expect("lookup")
        .expect("there");
    assert_eq!(kept, first);
    let log = changes(&store).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].added, log[0].reason, log[0].actor.as_str()),
        (true, Some(SuppressionReason::Complaint), "complaint")
    );
}

#[tokio::test]
async fn removing_is_audited_only_when_something_was_removed() {
    let (_dir, store, acme, _) = two_accounts().await;
    assert!(
        store
            .add_suppression(
                acme,
                "bob@example.com",
                SuppressionReason::Unsubscribe,
                None,
                None,
                "unsubscribe"
            )
            .await
            .expect("add")
    );
    assert!(
        store
            .remove_suppression(acme, "Bob@Example.com", "cli")
            .await
            .expect("remove")
    );
    assert_eq!(
        store.suppression(acme, "bob@example.com").await.expect("x"),
        None
    );
    assert!(
        !store
            .remove_suppression(acme, "bob@example.com", "cli")
            .await
            .expect("remove again")
    );
    assert!(
        !store
            .remove_suppression(acme, "never@example.com", "api")
            .await
            .expect("remove unknown")
    );
    assert!(
        !store
            .remove_suppression(acme, "not an address", "api")
            .await
            .expect("remove garbage")
    );
    let log = changes(&store).await;
    let summary: Vec<_> = log
        .iter()
        .map(|c| (c.added, c.address.as_str(), c.reason, c.actor.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                true,
                "bob@example.com",
                Some(SuppressionReason::Unsubscribe),
                "unsubscribe"
            ),
            (
                false,
                "bob@example.com",
                Some(SuppressionReason::Unsubscribe),
                "cli"
            ),
        ]
    );
    assert!(log[0].at_ms <= log[1].at_ms);
    // Added again after the removal: a new entry, a new audit row.
    assert!(add(&store, acme, "bob@example.com").await);
    assert_eq!(changes(&store).await.len(), 3);
}

#[tokio::test]
async fn invalid_addresses_are_refused_and_nothing_is_written() {
    let (_dir, store, acme, _) = two_accounts().await;
    let long_local = "a".repeat(254 - "@example.com".len() + 1);
    let too_long = format!("{long_local}@example.com");
    for bad in [
        "",
        "bob",
        "@example.com",
        "bob@",
        "bob@exa mple.com",
        "bob@-bad-.com",
        "bob@example..com",
        " bob@example.com",
        "bob@example.com ",
        "bob\r\n@example.com",
        "bob\0@example.com",
        too_long.as_str(),
    ] {
        let error = store
            .add_suppression(acme, bad, SuppressionReason::Manual, None, None, "cli")
            .await
            .expect_err(bad);
        assert!(
            matches!(error, StoreError::InvalidAddress(ref a) if a == bad),
            "{bad:?}: {error}"
        );
    }
    assert!(changes(&store).await.is_empty());
    // At the limits: 254 bytes, an address literal, a quoted-style local part
    // holding `@` (the rightmost `@` splits).
    let longest = format!("{}@example.com", &long_local[1..]);
    assert_eq!(longest.len(), 254);
    for good in [
        longest.as_str(),
        "postmaster@[192.0.2.1]",
        "a@b@example.com",
        "x@example",
    ] {
        assert!(add(&store, acme, good).await, "{good}");
    }
}

#[tokio::test]
async fn an_unknown_account_is_refused() {
    let (_dir, store, acme, beta) = two_accounts().await;
    let ghost = acme.max(beta) + 100;
    let error = store
        .add_suppression(
            ghost,
            "bob@example.com",
            SuppressionReason::Manual,
            None,
            None,
            "cli",
        )
        .await
        .expect_err("ghost account");
    assert!(matches!(error, StoreError::NoSuchAccount(_)), "{error}");
    assert!(changes(&store).await.is_empty());
    assert!(
        !store
            .remove_suppression(ghost, "bob@example.com", "cli")
            .await
            .expect("remove")
    );
}

#[tokio::test]
async fn lists_page_by_address_and_filter_by_reason() {
    let (_dir, store, acme, beta) = two_accounts().await;
    for (address, reason) in [
        ("dave@example.com", SuppressionReason::Manual),
        ("alice@example.com", SuppressionReason::HardBounce),
        ("carol@example.com", SuppressionReason::HardBounce),
        ("bob@example.com", SuppressionReason::Complaint),
        ("erin@example.com", SuppressionReason::HardBounce),
    ] {
        store
            .add_suppression(acme, address, reason, None, None, "bounce")
            .await
            .expect("add");
    }
    add(&store, beta, "aaron@example.com").await;

    let all = store
        .list_suppressions(acme, None, None, 100)
        .await
        .expect("list");
    assert_eq!(
        addresses(&all),
        [
            "alice@example.com",
            "bob@example.com",
            "carol@example.com",
            "dave@example.com",
            "erin@example.com"
        ]
    );

    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_suppressions(acme, None, cursor.as_deref(), 2)
            .await
            .expect("page");
        assert!(page.len() <= 2);
        let done = page.len() < 2;
        cursor = page.last().map(|s| s.address.clone());
        paged.extend(page);
        if done {
            break;
        }
    }
    assert_eq!(paged, all);

    let bounces = store
        .list_suppressions(acme, Some(SuppressionReason::HardBounce), None, 100)
        .await
        .expect("bounces");
    assert_eq!(
        addresses(&bounces),
        ["alice@example.com", "carol@example.com", "erin@example.com"]
    );
    let after = store
        .list_suppressions(
            acme,
            Some(SuppressionReason::HardBounce),
            Some("Alice@example.com"),
            1,
        )
        .await
        .expect("bounces after alice");
    assert_eq!(addresses(&after), ["carol@example.com"]);
    assert!(
        store
            .list_suppressions(acme, Some(SuppressionReason::Unsubscribe), None, 100)
            .await
            .expect("none")
            .is_empty()
    );
    assert!(
        store
            .list_suppressions(acme, None, None, 0)
            .await
            .expect("limit 0")
            .is_empty()
    );
    let other = store
        .list_suppressions(beta, None, None, 100)
        .await
        .expect("beta");
    assert_eq!(addresses(&other), ["aaron@example.com"]);
}

#[tokio::test]
async fn accounts_have_separate_lists() {
    let (_dir, store, acme, beta) = two_accounts().await;
    assert!(add(&store, acme, "bob@example.com").await);
    assert!(
        add(&store, beta, "bob@example.com").await,
        "new for the other account"
    );
    assert_eq!(
        store
            .suppression(beta, "carol@example.com")
            .await
            .expect("x"),
        None
    );
    assert!(add(&store, acme, "carol@example.com").await);
    assert_eq!(
        store
            .suppression(beta, "carol@example.com")
            .await
            .expect("x"),
        None,
        "acme's entry is not beta's"
    );
    assert!(
        store
            .remove_suppression(beta, "bob@example.com", "api")
            .await
            .expect("remove")
    );
    assert!(
        store
            .suppression(acme, "bob@example.com")
            .await
            .expect("lookup")
            .is_some(),
        "still on acme's list"
    );
    assert!(
        !store
            .remove_suppression(beta, "carol@example.com", "api")
            .await
            .expect("remove")
    );
    let history = store
        .suppression_history(beta, None, 0, 100)
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|c| c.account_id == beta));
}

#[tokio::test]
async fn the_change_feed_is_ordered_and_pages_after_an_id() {
    let (dir, store, acme, beta) = two_accounts().await;
    assert_eq!(store.last_suppression_change().await.expect("last"), 0);
    assert!(
        store
            .suppression_changes(0, 10)
            .await
            .expect("empty")
            .is_empty()
    );
    // Another handle on the file (another process, as the CLI is) writes too.
    let cli = crate::testutil::another_handle(&dir).await;
    add(&store, acme, "a@example.com").await;
    add(&cli, beta, "b@example.com").await;
    add(&store, acme, "c@example.com").await;
    cli.remove_suppression(acme, "a@example.com", "cli")
        .await
        .expect("remove");
    add(&store, acme, "a@example.com").await;

    let log = changes(&store).await;
    let summary: Vec<_> = log
        .iter()
        .map(|c| (c.account_id, c.address.as_str(), c.added))
        .collect();
    assert_eq!(
        summary,
        [
            (acme, "a@example.com", true),
            (beta, "b@example.com", true),
            (acme, "c@example.com", true),
            (acme, "a@example.com", false),
            (acme, "a@example.com", true),
        ]
    );
    assert!(log.windows(2).all(|w| w[0].id < w[1].id), "{log:?}");
    let last = store.last_suppression_change().await.expect("last");
    assert_eq!(last, log[4].id);
    assert!(
        store
            .suppression_changes(last, 10)
            .await
            .expect("after last")
            .is_empty()
    );
    let after = store
        .suppression_changes(log[1].id, 2)
        .await
        .expect("after the second");
    assert_eq!(after, log[2..4]);

    let history = store
        .suppression_history(acme, Some("A@Example.com"), 0, 100)
        .await
        .expect("history of a");
    let flags: Vec<bool> = history.iter().map(|c| c.added).collect();
    assert_eq!(flags, [true, false, true]);
    let later = store
        .suppression_history(acme, None, history[0].id, 100)
        .await
        .expect("acme after the first");
    assert_eq!(later.len(), 3, "{later:?}");
}

#[tokio::test]
async fn every_address_loads_with_the_change_it_includes() {
    let (_dir, store, acme, beta) = two_accounts().await;
    assert_eq!(
        store.suppression_snapshot().await.expect("empty"),
        (0, Vec::new())
    );
    add(&store, beta, "z@example.com").await;
    add(&store, acme, "b@example.com").await;
    add(&store, acme, "a@example.com").await;
    store
        .remove_suppression(acme, "b@example.com", "api")
        .await
        .expect("remove");
    let expected = vec![
        (acme, "a@example.com".to_owned()),
        (beta, "z@example.com".to_owned()),
    ];
    assert_eq!(store.all_suppressions().await.expect("all"), expected);
    let (last, all) = store.suppression_snapshot().await.expect("snapshot");
    assert_eq!(all, expected);
    assert_eq!(last, store.last_suppression_change().await.expect("last"));
}

#[tokio::test]
async fn changes_do_not_move_the_generation() {
    let (_dir, store, acme, _) = two_accounts().await;
    let generation = store.generation().await.expect("generation");
    add(&store, acme, "bob@example.com").await;
    add(&store, acme, "bob@example.com").await;
    store
        .remove_suppression(acme, "bob@example.com", "cli")
        .await
        .expect("remove");
    assert_eq!(store.generation().await.expect("generation"), generation);
}

#[tokio::test]
async fn concurrent_adds_of_one_address_make_one_entry_and_one_audit_row() {
    let (_dir, store, acme, _) = two_accounts().await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .add_suppression(
                        acme,
                        "race@example.com",
                        SuppressionReason::HardBounce,
                        None,
                        None,
                        "bounce",
                    )
                    .await
            })
        })
        .collect();
    let mut new = 0;
    for task in tasks {
        if task.await.expect("join").expect("add") {
            new += 1;
        }
    }
    assert_eq!(new, 1);
    assert_eq!(changes(&store).await.len(), 1);
}
