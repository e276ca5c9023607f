//! Range checks of a parsed [`Config`], and locating an error's key and line in the source text.

use std::collections::HashSet;
use std::fmt::Write as _;

use toml::de::{DeTable, DeValue};

use super::{Config, RoomSection};
use crate::error::ConfigError;

/// Longest duration setting, in seconds (the relay's own cap: 7 days).
const MAX_DURATION_S: u64 = 7 * 24 * 3600;

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Seg {
    Key(&'static str),
    Index(usize),
}

/// A semantic error: where (key path) and why.
#[derive(Debug)]
pub(super) struct Violation {
    path: Vec<Seg>,
    reason: String,
}

fn violation(path: &[Seg], reason: impl Into<String>) -> Violation {
    Violation { path: path.to_vec(), reason: reason.into() }
}

fn key_name(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    s
}

/// Checks every value's range; the first violation found is returned.
pub(super) fn check(c: &Config) -> Result<(), Violation> {
    use Seg::Key;
    use voice_proto::control::{MAX_NAME_LEN, MAX_PASSWORD_LEN};
    if c.server.name.len() > MAX_NAME_LEN {
        return Err(violation(&[Key("server"), Key("name")], "must be at most 64 bytes"));
    }
    if c.listen.udp_threads == 0 || c.listen.udp_threads > 64 {
        return Err(violation(&[Key("listen"), Key("udp_threads")], "must be between 1 and 64"));
    }
    if c.listen.idle_poll_ms > 1000 {
        return Err(violation(&[Key("listen"), Key("idle_poll_ms")], "must be at most 1000"));
    }
    match (&c.tls.cert, &c.tls.key) {
        (Some(_), None) => return Err(violation(&[Key("tls"), Key("cert")], "needs `tls.key` too")),
        (None, Some(_)) => return Err(violation(&[Key("tls"), Key("key")], "needs `tls.cert` too")),
        _ => {}
    }
    let l = &c.limits;
    let at_least = |key, v: u64, min: u64| {
        if v < min { Err(violation(&[Key("limits"), Key(key)], format!("must be at least {min}"))) } else { Ok(()) }
    };
    at_least("max_sessions", l.max_sessions as u64, 1)?;
    at_least("max_rooms", l.max_rooms as u64, 1)?;
    at_least("packets_per_s", l.packets_per_s.into(), 1)?;
    at_least("packet_burst", l.packet_burst.into(), 1)?;
    at_least("bytes_per_s", l.bytes_per_s.into(), 1)?;
    at_least("byte_burst", l.byte_burst.into(), voice_proto::MAX_DATAGRAM_LEN as u64)?;
    at_least("control_per_s", l.control_per_s.into(), 1)?;
    at_least("control_burst", l.control_burst.into(), 1)?;
    at_least("hint_interval_ms", l.hint_interval_ms, 1)?;
    at_least("housekeeping_interval_ms", l.housekeeping_interval_ms, 1)?;
    at_least("login_timeout_s", l.login_timeout_s, 1)?;
    at_least("prelogin_connections", l.prelogin_connections as u64, 1)?;
    at_least("prelogin_per_ip", l.prelogin_per_ip as u64, 1)?;
    at_least("auth_per_ip", l.auth_per_ip as u64, 1)?;
    at_least("accepts_per_s_per_ip", l.accepts_per_s_per_ip.into(), 1)?;
    at_least("accept_burst_per_ip", l.accept_burst_per_ip.into(), 1)?;
    at_least("login_backoff_max_s", l.login_backoff_max_s, 1)?;
    let at_most = |path: &[Seg], v: u64, max: u64| {
        if v > max { Err(violation(path, format!("must be at most {max}"))) } else { Ok(()) }
    };
    at_most(&[Key("limits"), Key("resume_grace_s")], l.resume_grace_s, u64::from(u16::MAX))?;
    at_most(&[Key("limits"), Key("auth_workers")], l.auth_workers as u64, 64)?;
    at_most(&[Key("limits"), Key("auth_queue_per_worker")], l.auth_queue_per_worker as u64, 1024)?;
    for (key, secs) in [
        ("binding_idle_timeout_s", l.binding_idle_timeout_s),
        ("control_idle_timeout_s", l.control_idle_timeout_s),
        ("login_timeout_s", l.login_timeout_s),
        ("login_backoff_max_s", l.login_backoff_max_s),
        ("speaking_timeout_ms", l.speaking_timeout_ms / 1000),
        ("hint_interval_ms", l.hint_interval_ms / 1000),
        ("housekeeping_interval_ms", l.housekeeping_interval_ms / 1000),
    ] {
        if secs > MAX_DURATION_S {
            return Err(violation(&[Key("limits"), Key(key)], "must be at most 7 days"));
        }
    }
    at_most(&[Key("adhoc"), Key("linger_s")], c.adhoc.linger_s, MAX_DURATION_S)?;
    if c.rooms.len() > l.max_rooms {
        return Err(violation(&[Key("limits"), Key("max_rooms")], "is less than the number of [[rooms]]"));
    }
    let mut names = HashSet::new();
    for (i, r) in c.rooms.iter().enumerate() {
        let at = |key| [Key("rooms"), Seg::Index(i), Key(key)];
        check_room(r, i)?;
        if r.name.is_empty() || r.name.len() > MAX_NAME_LEN {
            return Err(violation(&at("name"), "must be 1 to 64 bytes"));
        }
        if !names.insert(r.name.as_str()) {
            return Err(violation(&at("name"), format!("room {:?} is configured twice", r.name)));
        }
        if r.password.as_ref().is_some_and(|p| p.len() > MAX_PASSWORD_LEN) {
            return Err(violation(&at("password"), "must be at most 128 bytes"));
        }
    }
    let a = &c.adhoc;
    check_voice(&[Key("adhoc")], a.max_users, a.bitrate_bps, a.frame_ms, a.channels)?;
    let mut users = HashSet::new();
    for (i, u) in c.users.iter().enumerate() {
        let at = |key| [Key("users"), Seg::Index(i), Key(key)];
        if u.name.is_empty() || u.name.len() > MAX_NAME_LEN {
            return Err(violation(&at("name"), "must be 1 to 64 bytes"));
        }
        if !users.insert(u.name.as_str()) {
            return Err(violation(&at("name"), format!("user {:?} is configured twice", u.name)));
        }
        if u.display_name.as_ref().is_some_and(|d| d.is_empty() || d.len() > MAX_NAME_LEN) {
            return Err(violation(&at("display_name"), "must be 1 to 64 bytes"));
        }
        crate::auth::check_phc(&u.password_hash).map_err(|e| violation(&at("password_hash"), e))?;
    }
    if let Some(j) = &c.auth.jwt {
        let at = |key| [Key("auth"), Key("jwt"), Key(key)];
        if j.secret.len() < 32 {
            return Err(violation(&at("secret"), "must be at least 32 bytes (HS256 needs a 256-bit secret)"));
        }
        at_most(&at("leeway_s"), j.leeway_s, 3600)?;
    }
    Ok(())
}

fn check_room(r: &RoomSection, i: usize) -> Result<(), Violation> {
    check_voice(&[Seg::Key("rooms"), Seg::Index(i)], r.max_users, r.bitrate_bps, r.frame_ms, r.channels)
}

fn check_voice(table: &[Seg], max_users: u16, bitrate_bps: u32, frame_ms: u8, channels: u8) -> Result<(), Violation> {
    let at = |key| {
        let mut p = table.to_vec();
        p.push(Seg::Key(key));
        p
    };
    if usize::from(max_users) > voice_proto::control::MAX_MEMBERS {
        return Err(violation(&at("max_users"), format!("must be at most {}", voice_proto::control::MAX_MEMBERS)));
    }
    if !(6_000..=510_000).contains(&bitrate_bps) {
        return Err(violation(&at("bitrate_bps"), "must be between 6000 and 510000"));
    }
    if ![10, 20, 40, 60].contains(&frame_ms) {
        return Err(violation(&at("frame_ms"), "must be 10, 20, 40 or 60"));
    }
    if ![1, 2].contains(&channels) {
        return Err(violation(&at("channels"), "must be 1 or 2"));
    }
    Ok(())
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Turns a violation into an error naming its key, at the line of the key's value (or of the nearest enclosing
/// table written in the file, when the key itself was left to its default).
pub(super) fn locate(text: &str, v: Violation) -> ConfigError {
    let offset = DeTable::parse(text).ok().map_or(0, |doc| {
        let mut offset = doc.span().start;
        let mut value: Option<&DeValue<'_>> = None;
        let mut table = Some(doc.get_ref());
        for seg in &v.path {
            let next = match (seg, table, value) {
                (Seg::Key(k), Some(t), _) => t.iter().find(|(key, _)| key.get_ref() == k).map(|(_, v)| v),
                (Seg::Index(i), _, Some(DeValue::Array(a))) => a.get(*i),
                _ => None,
            };
            let Some(next) = next else { break };
            offset = next.span().start;
            value = Some(next.get_ref());
            table = match next.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        offset
    });
    let (line, column) = line_col(text, offset);
    ConfigError::Invalid { key: key_name(&v.path), line, column, reason: v.reason }
}

/// Turns toml's error into one naming the key (found from the error's byte span) and its line.
pub(super) fn parse_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let span = e.span().unwrap_or(0..0);
    let (line, column) = line_col(text, span.start);
    let key = DeTable::parse(text).ok().and_then(|doc| key_at(doc.get_ref(), span.start, ""));
    ConfigError::Parse { key, line, column, message: e.message().trim().to_owned() }
}

/// The dotted name of the innermost key whose key or value contains byte `offset`. Tables are searched whatever
/// their span (a `[table]`'s span covers only its header).
fn key_at(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
    table.iter().find_map(|(k, v)| {
        let name = if prefix.is_empty() { k.get_ref().to_string() } else { format!("{prefix}.{}", k.get_ref()) };
        if k.span().contains(&offset) {
            return Some(name);
        }
        value_key_at(v, offset, name)
    })
}

fn value_key_at(v: &toml::Spanned<DeValue<'_>>, offset: usize, name: String) -> Option<String> {
    let inside = v.span().contains(&offset) || v.span().start == offset;
    match v.get_ref() {
        DeValue::Table(t) => key_at(t, offset, &name).or_else(|| inside.then_some(name)),
        DeValue::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, item)| value_key_at(item, offset, format!("{name}[{i}]")))
            .or_else(|| inside.then_some(name)),
        _ => inside.then_some(name),
    }
}
