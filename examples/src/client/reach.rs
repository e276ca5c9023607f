//! Whether a session reaches its server, from its events: when to look at a login that goes unanswered, when to
//! give up, and why (for the headless client, which gives up, and the terminal UI, which says so and retries).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voice_client::Event;

use crate::words::connect_failure;

/// How long a login may go unanswered, without the connection being refused, before the client looks at why.
pub(crate) const SILENT_LOGIN: Duration = Duration::from_secs(2);

/// Whether the session reaches the server, from its events; says when to give up, and why.
#[derive(Debug)]
pub(crate) struct Reach {
    server: SocketAddr,
    tls: bool,
    give_up_after: Duration,
    /// Since when there has been no working connection (`None`: logged in, or resumed).
    down_since: Option<Instant>,
    ever_up: bool,
    last_failure: Option<String>,
    looked: bool,
}

/// What [`Reach::verdict`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Connected, or still trying.
    Trying,
    /// The login has gone unanswered on a connection that opened: worth a look ([`Reach::looked_at`]).
    Silent,
    /// Unreachable for too long: stop with this sentence.
    GiveUp(String),
}

impl Reach {
    /// A session that starts connecting to `server` at `now`.
    pub(crate) fn new(now: Instant, server: SocketAddr, tls: bool, give_up_after: Duration) -> Self {
        Self { server, tls, give_up_after, down_since: Some(now), ever_up: false, last_failure: None, looked: false }
    }

    /// The server's control address.
    pub(crate) fn server(&self) -> SocketAddr {
        self.server
    }

    /// Whether the session was asked to use TLS.
    pub(crate) fn tls(&self) -> bool {
        self.tls
    }

    /// Takes note of one event of the session.
    pub(crate) fn on_event(&mut self, now: Instant, event: &Event) {
        match event {
            Event::LoggedIn { .. } | Event::Resumed => {
                self.down_since = None;
                self.ever_up = true;
                self.last_failure = None;
            }
            Event::ConnectionLost => {
                self.down_since.get_or_insert(now);
            }
            Event::ConnectFailed(reason) => {
                self.down_since.get_or_insert(now);
                self.last_failure = Some(reason.clone());
            }
            _ => {}
        }
    }

    /// The silent login was looked at: do not ask again.
    pub(crate) fn looked_at(&mut self) {
        self.looked = true;
    }

    /// Whether to go on, look at a silent login, or give up, at `now`.
    pub(crate) fn verdict(&self, now: Instant) -> Verdict {
        let Some(since) = self.down_since else { return Verdict::Trying };
        let down = now.saturating_duration_since(since);
        if down >= self.give_up_after {
            let secs = self.give_up_after.as_secs_f64();
            let why = match (&self.last_failure, self.ever_up) {
                (Some(r), _) => format!("cannot reach the server: {}", connect_failure(r, self.server, self.tls)),
                (None, false) => format!(
                    "the server at {} accepted the connection but never answered the login{}",
                    self.server,
                    if self.tls { "" } else { " (if it serves TLS on this port: add --tls or --ca-cert FILE)" }
                ),
                (None, true) => format!("lost the connection to the server at {}", self.server),
            };
            return Verdict::GiveUp(format!("{why}; gave up after {secs} s (--give-up-after)"));
        }
        let silent = !self.ever_up && self.last_failure.is_none() && !self.tls && !self.looked;
        if silent && down >= SILENT_LOGIN { Verdict::Silent } else { Verdict::Trying }
    }
}

#[cfg(test)]
mod tests {
    use voice_proto::PublicId;

    use super::*;

    fn server() -> SocketAddr {
        "127.0.0.1:7000".parse().unwrap()
    }

    #[test]
    fn an_unreachable_server_is_given_up_after_the_bound() {
        let t0 = Instant::now();
        let mut reach = Reach::new(t0, server(), false, Duration::from_secs(5));
        reach.on_event(t0, &Event::ConnectFailed("Connection refused (os error 111)".into()));
        assert_eq!(reach.verdict(t0 + Duration::from_secs(4)), Verdict::Trying, "a refusal is not silence");
        let Verdict::GiveUp(why) = reach.verdict(t0 + Duration::from_secs(5)) else { panic!("gives up") };
        assert!(why.starts_with("cannot reach the server: nothing listens at 127.0.0.1:7000"), "{why}");
        assert!(why.ends_with("gave up after 5 s (--give-up-after)"), "{why}");

        // Logged in, then the connection drops: the bound counts from the drop, and a resume clears it.
        let mut reach = Reach::new(t0, server(), false, Duration::from_secs(5));
        reach.on_event(t0, &Event::LoggedIn { public_id: PublicId(1), server_name: String::new() });
        assert_eq!(reach.verdict(t0 + Duration::from_secs(60)), Verdict::Trying);
        let lost = t0 + Duration::from_secs(60);
        reach.on_event(lost, &Event::ConnectionLost);
        assert_eq!(reach.verdict(lost + Duration::from_secs(4)), Verdict::Trying);
        reach.on_event(lost + Duration::from_secs(4), &Event::Resumed);
        assert_eq!(reach.verdict(lost + Duration::from_secs(30)), Verdict::Trying);
        reach.on_event(lost + Duration::from_secs(30), &Event::ConnectionLost);
        let Verdict::GiveUp(why) = reach.verdict(lost + Duration::from_secs(35)) else { panic!("gives up") };
        assert!(why.starts_with("lost the connection to the server at 127.0.0.1:7000"), "{why}");
    }

    #[test]
    fn a_silent_login_is_looked_at_once_then_given_up() {
        let t0 = Instant::now();
        let mut reach = Reach::new(t0, server(), false, Duration::from_secs(20));
        assert_eq!(reach.verdict(t0 + Duration::from_secs(1)), Verdict::Trying);
        assert_eq!(reach.verdict(t0 + SILENT_LOGIN), Verdict::Silent);
        reach.looked_at();
        assert_eq!(reach.verdict(t0 + Duration::from_secs(10)), Verdict::Trying);
        let Verdict::GiveUp(why) = reach.verdict(t0 + Duration::from_secs(20)) else { panic!("gives up") };
        assert!(why.contains("never answered the login") && why.contains("--tls"), "{why}");
    }
}
