//! Tests of sending domains and their DKIM keys.

use super::*;
use crate::testutil::temp_store;

/// A recognisable fake secret: the tests look for it in outputs.
const SECRET: &[u8] = b"PRIVATE-KEY-BYTES-0123456789";

fn key(selector: &str, algorithm: DkimAlgorithm) -> NewDkimKey {
    NewDkimKey {
        selector: selector.to_owned(),
        algorithm,
        private_key: SECRET.to_vec(),
        public_key: format!("PUBLIC-{selector}"),
    }
}

fn two_keys() -> Vec<NewDkimKey> {
    vec![
        key("Carteiro-RSA", DkimAlgorithm::Rsa),
        key("carteiro-ed", DkimAlgorithm::Ed25519),
    ]
}

#[tokio::test]
async fn adds_finds_and_lists_domains_with_keys() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    store.create_account("beta").await.expect("account");
    let added = store
        .add_domain("ACME", "Mail.Acme.Example", two_keys())
        .await
        .expect("add");
    assert_eq!(added.name, "mail.acme.example");
    assert_eq!(
        (added.account_id, added.account.as_str()),
        (acme.id, "acme")
    );
    let selectors: Vec<_> = added.keys.iter().map(|k| k.selector.as_str()).collect();
    assert_eq!(selectors, ["carteiro-rsa", "carteiro-ed"]);
    assert_eq!(added.keys[0].algorithm, DkimAlgorithm::Rsa);
    assert_eq!(added.keys[1].algorithm, DkimAlgorithm::Ed25519);
    assert_eq!(added.keys[0].private_key, SECRET);

    let found = store
        .domain("MAIL.acme.example")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found, added);
    assert_eq!(store.domain("other.example").await.expect("lookup"), None);
    assert_eq!(store.domain("[127.0.0.1]").await.expect("lookup"), None);

    store
        .add_domain("beta", "beta.example", vec![key("s1", DkimAlgorithm::Rsa)])
        .await
        .expect("add beta");
    store
        .add_domain("acme", "a.acme.example", Vec::new())
        .await
        .expect("add keyless");
    let names = |domains: Vec<Domain>| -> Vec<(String, usize)> {
        domains
            .into_iter()
            .map(|d| (d.name, d.keys.len()))
            .collect()
    };
    assert_eq!(
        names(store.list_domains(Some("acme")).await.expect("list acme")),
        [
            ("a.acme.example".to_owned(), 0),
            ("mail.acme.example".to_owned(), 2)
        ]
    );
    assert_eq!(
        names(store.list_domains(None).await.expect("list all")),
        [
            ("a.acme.example".to_owned(), 0),
            ("beta.example".to_owned(), 1),
            ("mail.acme.example".to_owned(), 2)
        ]
    );
    let missing = store.list_domains(Some("ghost")).await;
    assert!(
        matches!(missing, Err(StoreError::NoSuchAccount(_))),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_domain_belongs_to_one_account_only() {
    let (_dir, store) = temp_store().await;
    store.create_account("acme").await.expect("account");
    store.create_account("beta").await.expect("account");
    store
        .add_domain("acme", "shared.example", two_keys())
        .await
        .expect("add");
    let error = store
        .add_domain("beta", "SHARED.example", two_keys())
        .await
        .expect_err("taken");
    assert!(
        matches!(error, StoreError::DomainExists(ref d) if d == "shared.example"),
        "{error}"
    );
    let again = store.add_domain("acme", "shared.example", Vec::new()).await;
    assert!(
        matches!(again, Err(StoreError::DomainExists(_))),
        "{again:?}"
    );
    let owner = store
        .domain("shared.example")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!((owner.account.as_str(), owner.keys.len()), ("acme", 2));
}

#[tokio::test]
async fn refuses_bad_input_and_stores_nothing() {
    let (_dir, store) = temp_store().await;
    store.create_account("acme").await.expect("account");
    for domain in [
        "",
        "[192.0.2.1]",
        "[IPv6:::1]",
        "a..b",
        "-a.example",
        "sp ace.example",
    ] {
        let result = store.add_domain("acme", domain, Vec::new()).await;
        assert!(
            matches!(result, Err(StoreError::InvalidDomain(_))),
            "{domain:?}: {result:?}"
        );
    }
    let missing = store.add_domain("ghost", "ghost.example", two_keys()).await;
    assert!(
        matches!(missing, Err(StoreError::NoSuchAccount(_))),
        "{missing:?}"
    );
    let bad_selectors = [
        vec![key("", DkimAlgorithm::Rsa)],
        vec![key("sel ector", DkimAlgorithm::Rsa)],
        vec![
            key("s1", DkimAlgorithm::Rsa),
            key("S1", DkimAlgorithm::Ed25519),
        ],
        vec![NewDkimKey {
            private_key: Vec::new(),
            ..key("s1", DkimAlgorithm::Rsa)
        }],
    ];
    for keys in bad_selectors {
        let result = store.add_domain("acme", "acme.example", keys).await;
        assert!(
            matches!(result, Err(StoreError::InvalidDkimKey(_))),
            "{result:?}"
        );
    }
    assert!(store.list_domains(None).await.expect("list").is_empty());
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dkim_keys")
        .fetch_one(&store.pool)
        .await
        .expect("count");
    assert_eq!(keys, 0);
}

#[tokio::test]
async fn removing_a_domain_removes_its_keys() {
    let (_dir, store) = temp_store().await;
    store.create_account("acme").await.expect("account");
    store
        .add_domain("acme", "acme.example", two_keys())
        .await
        .expect("add");
    assert!(store.remove_domain("ACME.example").await.expect("remove"));
    assert!(!store.remove_domain("acme.example").await.expect("again"));
    assert!(!store.remove_domain("[1.2.3.4]").await.expect("invalid"));
    assert_eq!(store.domain("acme.example").await.expect("lookup"), None);
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dkim_keys")
        .fetch_one(&store.pool)
        .await
        .expect("count");
    assert_eq!(keys, 0);
    // The name is free again, for any account.
    store
        .add_domain("acme", "acme.example", Vec::new())
        .await
        .expect("re-add");
}

#[tokio::test]
async fn private_keys_stay_out_of_debug_and_json() {
    let (_dir, store) = temp_store().await;
    store.create_account("acme").await.expect("account");
    let new_keys = two_keys();
    let new_debug = format!("{new_keys:?}");
    let domain = store
        .add_domain("acme", "acme.example", new_keys)
        .await
        .expect("add");
    let secret = std::str::from_utf8(SECRET).expect("ascii");
    // Debug of a Vec<u8> prints numbers: look for those too.
    let secret_numbers = format!("{:?}", SECRET.to_vec());
    let secret_numbers = secret_numbers.trim_matches(|c| c == '[' || c == ']');
    let debug = format!("{domain:?} {domain:#?}");
    let json = serde_json::to_string(&domain).expect("json");
    for text in [&new_debug, &debug, &json] {
        assert!(!text.contains(secret), "{text}");
        assert!(!text.contains(secret_numbers), "{text}");
    }
    assert!(debug.contains("<redacted 28 bytes>"), "{debug}");
    assert!(json.contains("PUBLIC-Carteiro-RSA"), "{json}");
}

#[test]
fn algorithm_names_round_trip() {
    for algorithm in [DkimAlgorithm::Rsa, DkimAlgorithm::Ed25519] {
        assert_eq!(
            algorithm.as_str().parse::<DkimAlgorithm>().expect("parse"),
            algorithm
        );
        assert_eq!(
            serde_json::to_string(&algorithm).expect("json"),
            format!("\"{algorithm}\"")
        );
    }
    assert!("dsa".parse::<DkimAlgorithm>().is_err());
}

#[tokio::test]
async fn a_rotation_waits_pending_then_the_new_keys_sign_and_the_old_retire() {
    let (_dir, store) = temp_store().await;
    store.create_account("acme").await.expect("account");
    store
        .add_domain("acme", "acme.example", two_keys())
        .await
        .expect("add");
    let states = |domain: &Domain| -> Vec<(String, KeyState)> {
        domain
            .keys
            .iter()
            .map(|k| (k.selector.clone(), k.state))
            .collect()
    };
    let rotated = store
        .add_pending_keys(
            "ACME.example",
            vec![
                key("new-rsa", DkimAlgorithm::Rsa),
                key("new-ed", DkimAlgorithm::Ed25519),
            ],
        )
        .await
        .expect("rotate");
    assert_eq!(
        states(&rotated),
        [
            ("carteiro-rsa".to_owned(), KeyState::Active),
            ("carteiro-ed".to_owned(), KeyState::Active),
            ("new-rsa".to_owned(), KeyState::Pending),
            ("new-ed".to_owned(), KeyState::Pending),
        ]
    );
    // One rotation at a time; a taken selector is refused.
    assert!(matches!(
        store
            .add_pending_keys("acme.example", vec![key("third", DkimAlgorithm::Rsa)])
            .await,
        Err(StoreError::InvalidDkimKey(_))
    ));
    assert!(matches!(
        store
            .add_pending_keys("nosuch.example", vec![key("x", DkimAlgorithm::Rsa)])
            .await,
        Err(StoreError::InvalidDomain(_))
    ));

    assert!(
        store
            .activate_pending_keys("acme.example")
            .await
            .expect("activate")
    );
    let after = store
        .domain("acme.example")
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        states(&after),
        [
            ("carteiro-rsa".to_owned(), KeyState::Retired),
            ("carteiro-ed".to_owned(), KeyState::Retired),
            ("new-rsa".to_owned(), KeyState::Active),
            ("new-ed".to_owned(), KeyState::Active),
        ]
    );
    assert!(after.keys[0].retired_at.is_some() && after.keys[2].retired_at.is_none());
    assert!(
        !store
            .activate_pending_keys("acme.example")
            .await
            .expect("again"),
        "nothing waits"
    );

    assert_eq!(
        store
            .remove_retired_keys("acme.example")
            .await
            .expect("forget"),
        2
    );
    let left = store
        .domain("acme.example")
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        states(&left),
        [
            ("new-rsa".to_owned(), KeyState::Active),
            ("new-ed".to_owned(), KeyState::Active),
        ]
    );
}
