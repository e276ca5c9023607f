//! The control plane: sessions, rooms, connections, chat, logins, and the authoritative view of bindings. It owns
//! everything but forwarding; what forwarding needs goes to the shards as [`ShardCmd`]s (queued in `cmds`, in
//! order), and what the shards see comes back as [`ShardEvent`]s (`events.rs`).

mod events;
mod login;
mod reload;
mod requests;
mod timers;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use voice_proto::control::ServerMessage;
use voice_proto::{KEY_LEN, PublicId, SessionToken};

use super::msg::ShardCmd;
use super::shard::ShardSettings;
use super::{ConnId, Event, RelayConfig};
use crate::auth::AuthId;
use crate::counters::Counters;
use crate::error::{Error, RngError};
use crate::ids::{RoomIdx, SessionIdx, SessionRef};
use crate::ratelimit::{BucketParams, TokenBucket};
use crate::rng::RandomSource;
use crate::room::Room;
use crate::session::Session;
use crate::slab::Slab;
use crate::timers::{Deadlines, round_up};

/// A control connection's state.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) session: Option<SessionIdx>,
    /// A Login waiting for its credential check ([`Event::Authenticate`]): its id and user name.
    pub(crate) pending: Option<(AuthId, Box<str>)>,
    /// When the last whole frame arrived.
    pub(crate) last_rx: Instant,
    /// When the connection opened: it must have a session by `opened + login_timeout`.
    pub(crate) opened: Instant,
    /// Control message rate limit.
    pub(crate) bucket: TokenBucket,
    /// The idle deadline armed in the timers.
    pub(crate) idle_timer: Option<Instant>,
}

/// Settings derived once from [`RelayConfig`].
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) cfg: RelayConfig,
    pub(crate) packets: BucketParams,
    pub(crate) bytes: BucketParams,
    pub(crate) control: BucketParams,
    pub(crate) resume_grace_s: u16,
}

/// The control plane's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ControlTimer {
    /// A detached session's resume grace.
    Grace(SessionIdx),
    /// A control connection's idle timeout.
    ConnIdle(ConnId),
    /// An empty ad-hoc room's linger time.
    Linger(RoomIdx),
}

/// The control plane (see the module docs).
pub(crate) struct Control {
    pub(crate) s: Settings,
    pub(crate) rng: Box<dyn RandomSource + Send>,
    pub(crate) sessions: Slab<SessionIdx, Session>,
    pub(crate) by_token: HashMap<SessionToken, SessionIdx>,
    pub(crate) by_public: HashMap<PublicId, SessionIdx>,
    pub(crate) by_addr: HashMap<SocketAddr, SessionIdx>,
    pub(crate) rooms: Slab<RoomIdx, Room>,
    pub(crate) room_by_name: HashMap<String, RoomIdx>,
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    pub(crate) events: VecDeque<Event>,
    /// Commands for every shard, oldest first.
    pub(crate) cmds: VecDeque<ShardCmd>,
    pub(crate) counters: Counters,
    pub(crate) timers: Deadlines<ControlTimer>,
    /// Sessions with receiver reports to decide on at the next hint tick.
    pub(crate) hint_dirty: Vec<SessionIdx>,
    pub(crate) next_hints: Instant,
    pub(crate) next_public_id: u32,
    pub(crate) next_generation: u32,
    /// Id of the next [`AuthRequest`](crate::AuthRequest).
    pub(crate) next_auth: u64,
    /// `now` at construction and the Unix time in ms it corresponds to (for chat timestamps); `now` is also the
    /// origin of the housekeeping grid.
    pub(crate) epoch: (Instant, u64),
    pub(crate) shutting_down: bool,
    /// Limits the log lines of refused logins (a flood writes a few per 10 s).
    pub(crate) refusal_log: crate::loglimit::LogLimiter,
    /// Timer entries looked at by `handle_timeout` (due ones, live or stale), for tests and benches.
    pub(crate) timer_visits: u64,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("sessions", &self.sessions.len())
            .field("rooms", &self.rooms.len())
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl Control {
    /// A control plane with the configured rooms (already checked by `Relay::new`) and no sessions.
    pub(crate) fn new(
        s: Settings,
        mut rng: Box<dyn RandomSource + Send>,
        now: Instant,
        unix_time_ms: u64,
    ) -> Result<Self, Error> {
        // Room keys first, then the start of the public ids (the order a seeded relay has always drawn them in).
        let mut keys = Vec::with_capacity(s.cfg.rooms.len());
        for _ in &s.cfg.rooms {
            let mut key = [0u8; KEY_LEN];
            rng.fill(&mut key)?;
            keys.push(key);
        }
        let mut start = [0u8; 4];
        rng.fill(&mut start)?;
        let mut c = Self {
            next_hints: now + s.cfg.hint_interval,
            s,
            rng,
            sessions: Slab::new(),
            by_token: HashMap::new(),
            by_public: HashMap::new(),
            by_addr: HashMap::new(),
            rooms: Slab::new(),
            room_by_name: HashMap::new(),
            conns: BTreeMap::new(),
            events: VecDeque::with_capacity(64),
            cmds: VecDeque::with_capacity(64),
            counters: Counters::default(),
            timers: Deadlines::new(),
            hint_dirty: Vec::new(),
            // Public ids start at a random point below 2^31 so they do not reveal how many sessions came before.
            next_public_id: (u32::from_be_bytes(start) >> 1).max(1),
            next_generation: 0,
            next_auth: 1,
            epoch: (now, unix_time_ms),
            shutting_down: false,
            refusal_log: crate::loglimit::LogLimiter::default(),
            timer_visits: 0,
        };
        for (rc, key) in c.s.cfg.rooms.clone().into_iter().zip(keys) {
            let room = Room::new(rc.clone(), false, key, now);
            let idx = c.rooms.insert(room).ok_or(Error::InvalidSetting { setting: "rooms" })?;
            c.room_by_name.insert(rc.name, idx);
            c.cmds.push_back(ShardCmd::AddRoom { room: idx, allow_voice: rc.config.allow_voice });
        }
        c.counters.rooms = c.rooms.len() as u64;
        Ok(c)
    }

    /// What a shard needs of the settings.
    pub(crate) fn shard_settings(&self) -> ShardSettings {
        ShardSettings {
            packets: self.s.packets,
            bytes: self.s.bytes,
            speaking_timeout: self.s.cfg.speaking_timeout,
            binding_idle_timeout: self.s.cfg.binding_idle_timeout,
            housekeeping_interval: self.s.cfg.housekeeping_interval,
            origin: self.epoch.0,
            loss_flush: None,
        }
    }

    /// The commands that bring a new, empty shard to the current state: every room, every session with its room,
    /// state, whisper lists and binding. (The driver starts its extra UDP threads' shards with them.)
    pub(crate) fn sync_commands(&self, now: Instant) -> Vec<ShardCmd> {
        let mut cmds = Vec::new();
        for (room, r) in self.rooms.iter() {
            cmds.push(ShardCmd::AddRoom { room, allow_voice: r.config.allow_voice });
        }
        for (idx, s) in self.sessions.iter() {
            let session = SessionRef { idx, generation: s.generation };
            let (token, public_id, secret) = (s.token, s.public_id, s.secret);
            cmds.push(ShardCmd::AddSession { session, token, public_id, secret, at: now });
            cmds.push(ShardCmd::SetState { idx, muted: s.muted, deafened: s.deafened });
            for w in &s.whispers {
                let members = Some(std::sync::Arc::clone(&w.members));
                cmds.push(ShardCmd::SetWhisper { idx, target: w.target, members });
            }
            if let (Some(addr), Some(counter)) = (s.bound, s.hello_counter) {
                cmds.push(ShardCmd::Bind { idx, addr, counter });
            }
        }
        for (room, r) in self.rooms.iter() {
            cmds.extend(r.members.iter().map(|&idx| ShardCmd::Join { idx, room }));
        }
        cmds
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run next (`None`: nothing to expire, no hint pending).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let hints = (!self.hint_dirty.is_empty()).then_some(self.next_hints);
        match (self.timers.next(), hints) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- helpers shared by the submodules ----

    pub(crate) fn send(&mut self, conn: ConnId, msg: ServerMessage) {
        self.events.push_back(Event::Send { conn, msg });
    }

    /// Sends `msg` to the control connection of session `idx`, if it has one.
    pub(crate) fn send_session(&mut self, idx: SessionIdx, msg: ServerMessage) {
        if let Some(conn) = self.sessions.get(idx).and_then(|s| s.conn) {
            self.send(conn, msg);
        }
    }

    /// Sends `msg` to every member of `room` with a control connection, except `except`.
    pub(crate) fn send_room(&mut self, room: RoomIdx, msg: &ServerMessage, except: Option<SessionIdx>) {
        let Some(r) = self.rooms.get(room) else { return };
        for &m in &r.members {
            if Some(m) == except {
                continue;
            }
            if let Some(conn) = self.sessions.get(m).and_then(|s| s.conn) {
                self.events.push_back(Event::Send { conn, msg: msg.clone() });
            }
        }
    }

    /// Unix milliseconds at `now`.
    pub(crate) fn unix_ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch.0).as_millis();
        self.epoch.1.saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }

    /// `at` on the housekeeping grid (rounded up).
    pub(crate) fn on_grid(&self, at: Instant) -> Instant {
        round_up(at, self.epoch.0, self.s.cfg.housekeeping_interval)
    }

    /// The state of connection `conn`, created (and its idle deadline armed) if the driver did not announce it.
    pub(crate) fn conn_entry(&mut self, conn: ConnId, now: Instant) -> &mut Conn {
        let control = self.s.control;
        let at = self.on_grid(now + self.s.cfg.control_idle_timeout.min(self.s.cfg.login_timeout));
        let timers = &mut self.timers;
        self.conns.entry(conn).or_insert_with(|| {
            timers.arm(at, ControlTimer::ConnIdle(conn));
            Conn {
                session: None,
                pending: None,
                last_rx: now,
                opened: now,
                bucket: TokenBucket::full(control, now),
                idle_timer: Some(at),
            }
        })
    }

    /// Whether `text` holds a control character (C0, DEL, C1) other than those in `allowed`: such text is refused
    /// in names and chat, so that it never reaches another client's terminal.
    pub(crate) fn has_control_chars(text: &str, allowed: &[char]) -> bool {
        text.chars().any(|c| c.is_control() && !allowed.contains(&c))
    }

    pub(crate) fn random_key(&mut self) -> Result<[u8; KEY_LEN], RngError> {
        let mut k = [0u8; KEY_LEN];
        self.rng.fill(&mut k)?;
        Ok(k)
    }

    /// The live session an event names (`None` if it ended, even if its slot was reused since).
    pub(crate) fn live(&mut self, r: SessionRef) -> Option<&mut Session> {
        self.sessions.get_mut(r.idx).filter(|s| s.generation == r.generation)
    }
}
