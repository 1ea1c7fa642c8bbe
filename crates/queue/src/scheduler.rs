//! Which recipients are due when: the retry schedule, expiry, and the
//! bookkeeping of attempts in flight. Time comes in as a value, so every
//! schedule can be tested without waiting.

use crate::message::{Interner, Millis, QueuedMessage, RcptStatus};
use carteiro_mail::{MessageId, Reply, domain_of};
use hashbrown::HashTable;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// How long to wait between attempts, and for how long to keep trying.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt; it doubles with each attempt.
    pub initial: Duration,
    /// The longest delay between two attempts.
    pub max: Duration,
    /// After this age a message that still cannot be delivered expires.
    pub max_age: Duration,
}

impl RetryPolicy {
    /// The delay after `attempts` attempts (1 after the first).
    pub fn delay(&self, attempts: u32) -> Millis {
        let initial = self.initial.as_millis() as u64;
        let max = self.max.as_millis() as u64;
        let factor = 1u64 << attempts.saturating_sub(1).min(32);
        initial.saturating_mul(factor).min(max).max(1)
    }
}

/// What an attempt came to for one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again later (a 4xx or a connection problem).
    Deferred,
    /// Refused permanently (a 5xx).
    Failed,
}

/// The result of one attempt for one recipient.
#[derive(Clone, Debug)]
pub struct AttemptResult {
    /// Index into the message's recipients.
    pub rcpt: usize,
    pub outcome: Outcome,
    pub reply: Reply,
    pub remote: Option<String>,
}

/// Recipients of one message due for one domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dispatch {
    pub id: MessageId,
    /// The recipients' domain, lower-cased.
    pub domain: String,
    pub rcpts: Vec<usize>,
}

/// What recording results did to the message.
#[derive(Debug)]
pub enum Recorded<'a> {
    /// Some recipients are still pending.
    Pending(&'a QueuedMessage),
    /// Every recipient is final; the message left the scheduler.
    Finished(QueuedMessage),
}

/// Holds the queued messages (without bodies) and their timers.
///
/// Memory matters here: a queue that cannot deliver holds every message
/// until it expires (a million is a normal bad day). Messages are boxed in a
/// table of pointers (8 bytes a slot, hashed by id), so the empty half of a
/// hash table costs little; their strings and replies are shared through an
/// [`Interner`].
pub struct Scheduler {
    policy: RetryPolicy,
    messages: HashTable<Box<QueuedMessage>>,
    hasher: RandomState,
    timers: BinaryHeap<Reverse<(Millis, MessageId)>>,
    /// Recipients marked in flight and not reported back yet.
    in_flight: usize,
    interner: Interner,
}

impl Scheduler {
    pub fn new(policy: RetryPolicy) -> Scheduler {
        Scheduler {
            policy,
            messages: HashTable::new(),
            hasher: RandomState::new(),
            timers: BinaryHeap::new(),
            in_flight: 0,
            interner: Interner::default(),
        }
    }

    fn hash(&self, id: MessageId) -> u64 {
        self.hasher.hash_one(id.0)
    }

    fn find(&self, id: MessageId) -> Option<&QueuedMessage> {
        self.messages
            .find(self.hash(id), |m| m.id == id)
            .map(|m| &**m)
    }

    fn find_mut(&mut self, id: MessageId) -> Option<&mut QueuedMessage> {
        let hash = self.hash(id);
        self.messages
            .find_mut(hash, |m| m.id == id)
            .map(|m| &mut **m)
    }

    fn take(&mut self, id: MessageId) -> Option<QueuedMessage> {
        let hash = self.hash(id);
        let entry = self.messages.find_entry(hash, |m| m.id == id).ok()?;
        let (message, _) = entry.remove();
        let in_flight = message.rcpts.iter().filter(|r| r.in_flight).count();
        self.in_flight = self.in_flight.saturating_sub(in_flight);
        Some(*message)
    }

    /// The interner the queue shares names and replies through; decode
    /// recovered messages with it.
    pub fn interner(&mut self) -> &mut Interner {
        &mut self.interner
    }

    /// Recipients handed out by [`take_due`](Scheduler::take_due) whose
    /// results have not come back yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Adds a message; its pending recipients are due at their
    /// `next_attempt`.
    pub fn insert(&mut self, mut message: QueuedMessage) {
        if let Some(due) = message.next_due() {
            self.timers.push(Reverse((due, message.id)));
        }
        // A message taken over from elsewhere (a new one from a session, or
        // a bounce) shares its strings too.
        message.meta.account = self.interner.name(&message.meta.account);
        self.take(message.id);
        self.in_flight += message.rcpts.iter().filter(|r| r.in_flight).count();
        let hash = self.hash(message.id);
        let hasher = &self.hasher;
        self.messages
            .insert_unique(hash, Box::new(message), |m| hasher.hash_one(m.id.0));
    }

    /// When the next recipient may become due (possibly earlier than any
    /// real work: a stale timer only costs an empty wake-up).
    pub fn next_wakeup(&self) -> Option<Millis> {
        self.timers.peek().map(|Reverse((due, _))| *due)
    }

    /// Takes the recipients due at `now`, marks them in flight, and groups
    /// them per message and domain; stops once about `limit` recipients
    /// are in flight in all (the rest stay due, and are taken by a later
    /// call). The limit keeps a wave of due messages (after a restart, or a
    /// long outage) from becoming a million jobs, results and events in
    /// memory at once.
    pub fn take_due(&mut self, now: Millis, limit: usize) -> Vec<Dispatch> {
        let mut out = Vec::new();
        while let Some(Reverse((due, id))) = self.timers.peek().copied() {
            if due > now || self.in_flight >= limit {
                break;
            }
            self.timers.pop();
            let hash = self.hash(id);
            let Some(message) = self.messages.find_mut(hash, |m| m.id == id) else {
                continue;
            };
            let first = out.len();
            for (index, state) in message.rcpts.iter_mut().enumerate() {
                if state.status != RcptStatus::Pending
                    || state.in_flight
                    || state.next_attempt > now
                {
                    continue;
                }
                state.in_flight = true;
                self.in_flight += 1;
                let address = &message.meta.envelope.recipients[index].address;
                let domain = domain_of(address).to_ascii_lowercase();
                match out[first..]
                    .iter_mut()
                    .find(|d: &&mut Dispatch| d.domain == domain)
                {
                    Some(dispatch) => dispatch.rcpts.push(index),
                    None => out.push(Dispatch {
                        id,
                        domain,
                        rcpts: vec![index],
                    }),
                }
            }
        }
        out
    }

    /// Records attempt results for a message. `None` if the message is no
    /// longer queued (deleted meanwhile).
    pub fn record(
        &mut self,
        id: MessageId,
        results: Vec<AttemptResult>,
        now: Millis,
    ) -> Option<Recorded<'_>> {
        let hash = self.hash(id);
        let message = &mut **self.messages.find_mut(hash, |m| m.id == id)?;
        let expires_at = message
            .meta
            .received_at
            .saturating_add(self.policy.max_age.as_millis() as u64);
        let mut reschedule = None;
        for result in results {
            let Some(state) = message.rcpts.get_mut(result.rcpt) else {
                continue;
            };
            if state.in_flight {
                state.in_flight = false;
                self.in_flight = self.in_flight.saturating_sub(1);
            }
            if state.status != RcptStatus::Pending {
                continue;
            }
            state.attempts += 1;
            state.set_last_attempt(now);
            state.last = Some(
                self.interner
                    .last_reply(result.reply, result.remote.as_deref()),
            );
            match result.outcome {
                Outcome::Delivered => state.status = RcptStatus::Delivered,
                Outcome::Failed => state.status = RcptStatus::Failed,
                Outcome::Deferred if now >= expires_at => state.status = RcptStatus::Expired,
                Outcome::Deferred => {
                    let next = now
                        .saturating_add(self.policy.delay(state.attempts))
                        .min(expires_at);
                    state.next_attempt = next;
                    reschedule = Some(reschedule.map_or(next, |r: Millis| r.min(next)));
                }
            }
        }
        if message.is_finished() {
            let message = self.take(id)?;
            return Some(Recorded::Finished(message));
        }
        if let Some(due) = reschedule {
            self.timers.push(Reverse((due, id)));
        }
        self.find(id).map(Recorded::Pending)
    }

    /// Makes a message's pending recipients due now. `false` if unknown.
    pub fn retry_now(&mut self, id: MessageId, now: Millis) -> bool {
        let Some(message) = self.find_mut(id) else {
            return false;
        };
        for state in message.rcpts.iter_mut() {
            if state.status == RcptStatus::Pending {
                state.next_attempt = state.next_attempt.min(now);
            }
        }
        self.timers.push(Reverse((now, id)));
        true
    }

    /// Makes every pending recipient due now; returns how many messages.
    pub fn retry_all(&mut self, now: Millis) -> usize {
        let ids: Vec<MessageId> = self.messages.iter().map(|m| m.id).collect();
        ids.into_iter()
            .filter(|&id| self.retry_now(id, now))
            .count()
    }

    /// Removes a message (its in-flight results will be ignored).
    pub fn remove(&mut self, id: MessageId) -> Option<QueuedMessage> {
        self.take(id)
    }

    pub fn get(&self, id: MessageId) -> Option<&QueuedMessage> {
        self.find(id)
    }

    pub fn messages(&self) -> impl Iterator<Item = &QueuedMessage> {
        self.messages.iter().map(|m| &**m)
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageMeta;
    use carteiro_mail::{Envelope, Recipient};
    use std::sync::Arc;

    const MIN: u64 = 60_000;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(4 * 60),
            max_age: Duration::from_secs(20 * 60),
        }
    }

    fn message(id: u128, rcpts: &[&str], now: Millis) -> QueuedMessage {
        let mut envelope = Envelope::new("sender@origin.test");
        envelope.recipients = rcpts.iter().map(|r| Recipient::new(*r)).collect();
        QueuedMessage::new(
            MessageId(id),
            MessageMeta {
                account_id: 1,
                account: "default".into(),
                envelope: Arc::new(envelope),
                size: 10,
                received_at: now,
                notification: false,
                verp_domain: None,
            },
            now,
        )
    }

    fn result(rcpt: usize, outcome: Outcome, code: u16) -> AttemptResult {
        AttemptResult {
            rcpt,
            outcome,
            reply: Reply::new(code, None, "x"),
            remote: Some("mx.test".into()),
        }
    }

    #[test]
    fn delays_double_up_to_the_maximum() {
        let p = policy();
        assert_eq!(
            (1..=5).map(|n| p.delay(n) / MIN).collect::<Vec<_>>(),
            vec![1, 2, 4, 4, 4]
        );
        assert_eq!(p.delay(200), 4 * MIN);
    }

    #[test]
    fn due_recipients_are_grouped_by_domain_and_not_taken_twice() {
        let mut s = Scheduler::new(policy());
        s.insert(message(1, &["a@x.test", "b@y.test", "c@X.test"], 0));
        let due = s.take_due(0, usize::MAX);
        assert_eq!(
            due,
            vec![
                Dispatch {
                    id: MessageId(1),
                    domain: "x.test".into(),
                    rcpts: vec![0, 2]
                },
                Dispatch {
                    id: MessageId(1),
                    domain: "y.test".into(),
                    rcpts: vec![1]
                },
            ]
        );
        s.retry_now(MessageId(1), 0);
        assert!(
            s.take_due(0, usize::MAX).is_empty(),
            "in-flight recipients are not due again"
        );
    }

    #[test]
    fn a_deferred_recipient_comes_back_after_the_delay_then_finishes() {
        let mut s = Scheduler::new(policy());
        s.insert(message(1, &["a@x.test", "b@x.test"], 0));
        s.take_due(0, usize::MAX);
        let rec = s
            .record(
                MessageId(1),
                vec![
                    result(0, Outcome::Delivered, 250),
                    result(1, Outcome::Deferred, 451),
                ],
                0,
            )
            .unwrap();
        assert!(matches!(rec, Recorded::Pending(_)));
        assert_eq!(s.next_wakeup(), Some(MIN));
        assert!(s.take_due(MIN - 1, usize::MAX).is_empty());
        let due = s.take_due(MIN, usize::MAX);
        assert_eq!(due[0].rcpts, vec![1]);
        match s.record(MessageId(1), vec![result(1, Outcome::Delivered, 250)], MIN) {
            Some(Recorded::Finished(m)) => {
                assert_eq!(m.rcpts[1].attempts, 2);
                assert_eq!(m.rcpts[0].status, RcptStatus::Delivered);
            }
            other => panic!("not finished: {other:?}"),
        }
        assert!(s.is_empty());
    }

    #[test]
    fn deferral_past_max_age_expires_with_a_last_attempt_at_the_deadline() {
        let mut s = Scheduler::new(policy());
        s.insert(message(1, &["a@x.test"], 0));
        let mut now = 0;
        let mut attempts = 0;
        loop {
            let due = s.take_due(now, usize::MAX);
            assert_eq!(due.len(), 1, "at {now}");
            attempts += 1;
            match s.record(MessageId(1), vec![result(0, Outcome::Deferred, 451)], now) {
                Some(Recorded::Pending(_)) => now = s.next_wakeup().unwrap(),
                Some(Recorded::Finished(m)) => {
                    assert_eq!(m.rcpts[0].status, RcptStatus::Expired);
                    break;
                }
                None => panic!("message vanished"),
            }
        }
        // 0, 1, 3, 7, 11, 15, 19 and the deadline 20 (minutes).
        assert_eq!(attempts, 8);
        assert_eq!(now, 20 * MIN);
    }

    #[test]
    fn permanent_failure_is_final_and_deleted_messages_ignore_results() {
        let mut s = Scheduler::new(policy());
        s.insert(message(1, &["a@x.test"], 0));
        s.take_due(0, usize::MAX);
        assert!(matches!(
            s.record(MessageId(1), vec![result(0, Outcome::Failed, 550)], 0),
            Some(Recorded::Finished(_))
        ));
        s.insert(message(2, &["a@x.test"], 0));
        s.take_due(0, usize::MAX);
        assert!(s.remove(MessageId(2)).is_some());
        assert!(
            s.record(MessageId(2), vec![result(0, Outcome::Delivered, 250)], 0)
                .is_none()
        );
    }

    #[test]
    fn retry_now_brings_a_deferred_recipient_forward() {
        let mut s = Scheduler::new(policy());
        s.insert(message(1, &["a@x.test"], 0));
        s.take_due(0, usize::MAX);
        s.record(MessageId(1), vec![result(0, Outcome::Deferred, 451)], 0);
        assert!(s.take_due(10, usize::MAX).is_empty());
        assert_eq!(s.retry_all(10), 1);
        assert_eq!(s.take_due(10, usize::MAX).len(), 1);
    }

    #[test]
    fn a_wave_of_due_messages_is_handed_out_up_to_the_limit() {
        let mut s = Scheduler::new(policy());
        for id in 1..=10 {
            s.insert(message(id, &["a@x.test", "b@x.test"], 0));
        }
        let first = s.take_due(0, 5);
        // Whole messages: the third one crosses the limit and stops it.
        assert_eq!(first.len(), 3);
        assert_eq!(s.in_flight(), 6);
        assert!(s.take_due(0, 5).is_empty(), "at the limit nothing more");
        let id = first[0].id;
        s.record(
            id,
            vec![
                result(0, Outcome::Deferred, 451),
                result(1, Outcome::Deferred, 451),
            ],
            0,
        );
        assert_eq!(s.in_flight(), 4);
        assert_eq!(s.take_due(0, 5).len(), 1, "room for one more message");
        // Removing a message with recipients in flight frees their room.
        s.remove(first[1].id);
        assert_eq!(s.in_flight(), 4);
        let rest: usize = (0..10).map(|_| s.take_due(0, usize::MAX).len()).sum();
        assert_eq!(rest, 6, "every other message is still due");
        assert_eq!(s.in_flight(), 16);
    }

    #[test]
    fn recipients_deferred_by_one_failure_share_one_reply() {
        let mut s = Scheduler::new(policy());
        s.insert(message(1, &["a@x.test"], 0));
        s.insert(message(2, &["b@x.test"], 0));
        s.take_due(0, usize::MAX);
        s.record(MessageId(1), vec![result(0, Outcome::Deferred, 421)], 0);
        s.record(MessageId(2), vec![result(0, Outcome::Deferred, 421)], 0);
        let one = s.get(MessageId(1)).unwrap().rcpts[0].last.clone().unwrap();
        let two = s.get(MessageId(2)).unwrap().rcpts[0].last.clone().unwrap();
        assert!(Arc::ptr_eq(&one, &two));
        assert_eq!(one.remote.as_deref(), Some("mx.test"));
    }
}
