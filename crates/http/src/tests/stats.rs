//! `GET /api/v1/stats`: counts from the rollups the event writer keeps,
//! every interval of the range, filters and groups, and refusals that name
//! the parameter.

use axum::http::StatusCode;
use carteiro_store::{
    DeliveryDetails, EngagementDetails, EventDetails, EventKind, MessageSource, NewEvent,
    NewMessage,
};
use serde_json::{Value, json};

use super::{Harness, assert_error};

/// 2026-11-26T00:00:00Z.
const MIDNIGHT: i64 = 1_795_651_200_000;
const HOUR_MS: i64 = 3_600_000;

/// Records a message of `account_id` to `to` at `ms` with its events (kind,
/// offset in ms, details), and flushes.
async fn record(
    h: &Harness,
    account_id: i64,
    n: u128,
    tags: &[&str],
    to: &str,
    ms: i64,
    events: &[(EventKind, i64, EventDetails)],
) {
    let id = carteiro_mail::MessageId((u128::try_from(ms).expect("ms") << 80) | n).to_string();
    h.writer.message(NewMessage {
        id: id.clone(),
        account_id,
        sender: "news@shop.example".to_owned(),
        recipients: vec![to.to_owned()],
        subject: None,
        header_message_id: None,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        sending_domain: Some("shop.example".to_owned()),
        metadata: Value::Null,
        source: MessageSource::Api,
        size: 100,
        received_at_ms: ms,
        headers: None,
    });
    for (kind, offset, details) in events {
        h.writer.event(NewEvent {
            account_id,
            message_id: id.clone(),
            recipient: Some(to.to_owned()),
            kind: *kind,
            timestamp_ms: ms + offset,
            details: details.clone(),
        });
    }
    h.writer.flush().await;
}

/// A delivery's details naming the MX host reached.
fn mx(host: &str) -> EventDetails {
    EventDetails::Delivery(DeliveryDetails {
        mx: Some(host.to_owned()),
        ..DeliveryDetails::default()
    })
}

/// An open's details, by a person.
fn engaged(unique: bool) -> EventDetails {
    EventDetails::Engagement(EngagementDetails {
        unique,
        machine: Some(false),
        ..EngagementDetails::default()
    })
}

/// An open's details, by a prefetcher.
fn machine_open() -> EventDetails {
    EventDetails::Engagement(EngagementDetails {
        user_agent: Some("GoogleImageProxy".to_owned()),
        unique: false,
        machine: Some(true),
        url: None,
    })
}

/// Three messages on 2026-11-26: one delivered (in hour 9), its pixel
/// fetched by a machine on arrival and opened twice by a person an hour
/// later, one bounced (hour 11), both tagged; one delivered, untagged.
async fn three_messages(h: &Harness) {
    let google = mx("aspmx.l.google.com");
    let at = MIDNIGHT + 9 * HOUR_MS;
    record(
        h,
        h.account_id,
        1,
        &["orders"],
        "a@gmail.com",
        at,
        &[
            (EventKind::Received, 0, EventDetails::None),
            (EventKind::Delivered, 10, google.clone()),
            (EventKind::Opened, 20, machine_open()),
            (EventKind::Opened, HOUR_MS, engaged(true)),
            (EventKind::Opened, HOUR_MS + 1, engaged(false)),
        ],
    )
    .await;
    record(
        h,
        h.account_id,
        2,
        &["orders"],
        "b@corp.example",
        at + 2 * HOUR_MS,
        &[
            (EventKind::Received, 0, EventDetails::None),
            (EventKind::Bounced, 10, mx("mx.corp.example")),
        ],
    )
    .await;
    record(
        h,
        h.account_id,
        3,
        &[],
        "c@gmail.com",
        at,
        &[
            (EventKind::Received, 0, EventDetails::None),
            (EventKind::Delivered, 10, google),
        ],
    )
    .await;
}

#[tokio::test]
async fn hourly_counts_cover_every_interval_of_the_range() {
    let h = Harness::new().await;
    three_messages(&h).await;
    let answer = h
        .get("/api/v1/stats?since=2026-11-26T08:00:00Z&until=2026-11-26T12:00:00Z&by=hour")
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let body = &answer.json;
    assert_eq!(body["by"], "hour");
    assert_eq!(body["since"], "2026-11-26T08:00:00.000Z");
    assert_eq!(body["until"], "2026-11-26T12:00:00.000Z");
    let intervals = body["intervals"].as_array().expect("intervals");
    let starts: Vec<&str> = intervals
        .iter()
        .map(|i| i["start"].as_str().expect("start"))
        .collect();
    assert_eq!(
        starts,
        [
            "2026-11-26T08:00:00.000Z",
            "2026-11-26T09:00:00.000Z",
            "2026-11-26T10:00:00.000Z",
            "2026-11-26T11:00:00.000Z"
        ]
    );
    let column = |name: &str| -> Vec<u64> {
        intervals
            .iter()
            .map(|i| i[name].as_u64().expect("count"))
            .collect()
    };
    assert_eq!(column("received"), [0, 2, 0, 1]);
    assert_eq!(column("delivered"), [0, 2, 0, 0]);
    assert_eq!(column("bounced"), [0, 0, 0, 1]);
    assert_eq!(column("opened"), [0, 0, 2, 0]);
    assert_eq!(column("opened_unique"), [0, 0, 1, 0]);
    assert_eq!(column("opened_machine"), [0, 1, 0, 0], "apart from people");
    let totals = &body["totals"];
    assert_eq!(
        *totals,
        json!({"received": 3, "delivered": 2, "deferred": 0, "bounced": 1, "expired": 0,
               "suppressed": 0, "complained": 0, "opened": 2, "opened_unique": 1,
               "opened_machine": 1, "clicked": 0, "clicked_unique": 0, "unsubscribed": 0})
    );
    assert!(body.get("groups").is_none());
}

#[tokio::test]
async fn days_tags_domains_and_groups() {
    let h = Harness::new().await;
    three_messages(&h).await;
    let range = "since=2026-11-25&until=2026-11-27";
    let days = h.get(&format!("/api/v1/stats?{range}")).await;
    assert_eq!(days.status, StatusCode::OK, "{}", days.json);
    assert_eq!(days.json["by"], "day");
    let received: Vec<u64> = days.json["intervals"]
        .as_array()
        .expect("intervals")
        .iter()
        .map(|i| i["received"].as_u64().expect("n"))
        .collect();
    assert_eq!(received, [0, 3]);

    let tagged = h.get(&format!("/api/v1/stats?{range}&tag=orders")).await;
    assert_eq!(tagged.json["totals"]["received"], 2);
    assert_eq!(tagged.json["totals"]["bounced"], 1);
    let other_domain = h
        .get(&format!("/api/v1/stats?{range}&domain=elsewhere.example"))
        .await;
    assert_eq!(other_domain.json["totals"]["received"], 0);
    let domain = h
        .get(&format!("/api/v1/stats?{range}&domain=Shop.Example"))
        .await;
    assert_eq!(domain.json["totals"]["received"], 3);

    let by_provider = h
        .get(&format!("/api/v1/stats?{range}&group=provider"))
        .await;
    assert_eq!(by_provider.status, StatusCode::OK, "{}", by_provider.json);
    assert_eq!(by_provider.json["group"], "provider");
    assert_eq!(by_provider.json["groups_truncated"], false);
    let groups = by_provider.json["groups"].as_array().expect("groups");
    let names: Vec<&str> = groups
        .iter()
        .map(|g| g["name"].as_str().expect("name"))
        .collect();
    // The most active first; gmail.com counts its `received` under
    // gmail.com until the first delivery taught its provider.
    assert!(names.contains(&"google.com"), "{names:?}");
    assert!(names.contains(&"corp.example"), "{names:?}");
    let google = groups
        .iter()
        .find(|g| g["name"] == "google.com")
        .expect("google");
    assert_eq!(google["totals"]["delivered"], 2);
    assert_eq!(google["totals"]["opened"], 2);
    assert_eq!(google["totals"]["opened_machine"], 1);
    assert_eq!(google["intervals"].as_array().expect("days").len(), 2);
    assert_eq!(
        by_provider.json["totals"]["received"], 3,
        "overall totals too"
    );

    let by_tag = h.get(&format!("/api/v1/stats?{range}&group=tag")).await;
    let groups = by_tag.json["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "untagged mail is in no tag's group");
    assert_eq!(groups[0]["name"], "orders");
    assert_eq!(groups[0]["totals"]["received"], 2);

    let provider = h
        .get(&format!("/api/v1/stats?{range}&provider=google.com"))
        .await;
    assert_eq!(provider.json["totals"]["delivered"], 2);
}

#[tokio::test]
async fn another_account_sees_only_its_own_counts() {
    let h = Harness::new().await;
    three_messages(&h).await;
    let (_, key) = h.other_account("beta").await;
    let answer = h
        .get_with("/api/v1/stats?since=2026-11-26&until=2026-11-27", &key)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["totals"]["received"], 0);
    let no_key = h
        .send(
            axum::http::Method::GET,
            "/api/v1/stats",
            None,
            None,
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(no_key.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_parameters_are_refused_by_name() {
    let h = Harness::new().await;
    for (query, parameter) in [
        ("by=week", "by"),
        ("group=recipient", "group"),
        ("since=yesterday", "since"),
        ("since=2026-11-27&until=2026-11-26", "until"),
        ("since=2026-01-01&until=2026-03-01&by=hour", "since"),
        ("colour=red", "colour"),
        ("tag=a&tag=b", "tag"),
    ] {
        let answer = h.get(&format!("/api/v1/stats?{query}")).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid parameter");
        assert_eq!(answer.json["detail"]["parameter"], parameter, "{query}");
    }
    // With nothing given: the last 7 days by day, all zero.
    let answer = h.get("/api/v1/stats").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["intervals"].as_array().expect("days").len(), 7);
}
