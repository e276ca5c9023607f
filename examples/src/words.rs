//! What the example programs print about what came from the network: escaped, so it cannot drive the terminal
//! ([`escape`]), and in words rather than codes ([`ended`], [`connect_failure`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::SocketAddr;

use voice_proto::control::ErrorCode;

/// `text` with every control character (C0, DEL, C1: escape sequences, new lines, carriage returns, bells) and
/// every bidirectional-text control written as an escape (`\n`, `\r`, `\t`, else `\u{1b}`), so that a name, a
/// room, a chat line or a reason from the network prints as one line of plain text and never reaches the
/// terminal as a command. Text without them is returned as it is.
#[must_use]
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Control characters, and the invisible marks that reorder how a line is shown (a name could make a chat line
/// look like someone else's).
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Why the server ended the session (its Goodbye, or its answer to the login), in words, with the server's own
/// text (escaped) after them.
#[must_use]
pub fn ended(code: ErrorCode, message: &str) -> String {
    let words = match code {
        ErrorCode::AUTH_FAILED => "the server refused the login: wrong user name, password or token".to_string(),
        ErrorCode::RATE_LIMITED => "the server is busy: try again in a moment".to_string(),
        ErrorCode::SHUTTING_DOWN => "the server shut down".to_string(),
        ErrorCode::KICKED => "an operator removed this session from the server".to_string(),
        ErrorCode::REPLACED => "the session was taken over by another connection".to_string(),
        ErrorCode::UNSUPPORTED_VERSION => "the server speaks another protocol version: update the client".to_string(),
        code => match meaning(code) {
            Some(m) => format!("the server ended the session: {m}"),
            None => "the server ended the session".to_string(),
        },
    };
    with_message(words, message)
}

/// Why the server refused a request (an Error that leaves the session open), in words, with the server's own
/// text (escaped) after them.
#[must_use]
pub fn refused(code: ErrorCode, message: &str) -> String {
    with_message(meaning(code).unwrap_or("the server refused the request").to_string(), message)
}

/// `words`, then the server's own text (escaped) if it has one.
fn with_message(words: String, message: &str) -> String {
    let message = message.trim();
    if message.is_empty() { words } else { format!("{words} (the server said: {})", escape(message)) }
}

/// What an error code means (`PROTOCOL.md` §5.5); `None` for a code this client does not know.
fn meaning(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::BAD_REQUEST => "a request this server does not accept",
        ErrorCode::UNSUPPORTED_VERSION => "another protocol version",
        ErrorCode::AUTH_FAILED => "wrong user name, password or token",
        ErrorCode::NOT_LOGGED_IN => "not logged in",
        ErrorCode::ALREADY_LOGGED_IN => "already logged in",
        ErrorCode::ROOM_NOT_FOUND => "no such room",
        ErrorCode::ROOM_FULL => "the room is full",
        ErrorCode::WRONG_ROOM_PASSWORD => "wrong room password",
        ErrorCode::VOICE_NOT_ALLOWED => "voice is not allowed in this room",
        ErrorCode::NOT_IN_ROOM => "not in a room",
        ErrorCode::RESUME_FAILED => "the session could not be resumed",
        ErrorCode::RATE_LIMITED => "too many requests: the server is busy",
        ErrorCode::TOO_LARGE => "a name, password, token or message longer than the server accepts",
        ErrorCode::SHUTTING_DOWN => "the server is shutting down",
        ErrorCode::KICKED => "removed by an operator",
        ErrorCode::INTERNAL => "the server failed",
        ErrorCode::INVALID_WHISPER => "an invalid whisper list",
        ErrorCode::REPLACED => "the session was taken over by another connection",
        ErrorCode::INVALID_NAME => "a name or message holding control characters",
        _ => return None,
    })
}

/// Why the control connection to `server` could not be opened, in words where the reason is a known one, with
/// the reason itself (escaped) after them. `tls`: whether the client was asked to use TLS.
#[must_use]
pub fn connect_failure(reason: &str, server: SocketAddr, tls: bool) -> String {
    let r = reason.to_ascii_lowercase();
    let words = if reason.contains("CaUsedAsEndEntity") {
        Some(
            "the server's TLS certificate is a CA certificate (what a plain `openssl req -x509` makes), and clients \
             refuse a CA certificate as a server's own: make a server certificate with `voice-server gen-cert \
             HOSTNAME` (or openssl with `-addext basicConstraints=critical,CA:FALSE`)"
                .to_string(),
        )
    } else if reason.contains("UnknownIssuer") {
        Some(
            "the server's TLS certificate is not signed by a certificate this client trusts: for a self-signed \
             certificate, give it with --ca-cert FILE"
                .to_string(),
        )
    } else if reason.contains("NotValidForName") {
        Some(
            "the server's TLS certificate is for another name: give the name it carries with --tls-name NAME"
                .to_string(),
        )
    } else if reason.contains("Expired") || reason.contains("NotValidYet") {
        Some("the server's TLS certificate is expired or not valid yet (check both clocks)".to_string())
    } else if r.contains("connection refused") {
        Some(format!("nothing listens at {server} (is the server running, and is this its control port?)"))
    } else if r.contains("timed out") {
        Some(format!("no answer from {server} (a wrong address, or a firewall in the way)"))
    } else if tls && (r.contains("eof") || r.contains("corrupt message") || r.contains("invalidcontenttype")) {
        Some(format!(
            "the server at {server} does not answer TLS on this port (if it serves plain TCP, leave out --tls and \
             --ca-cert)"
        ))
    } else {
        None
    };
    match words {
        Some(w) => format!("{w} ({})", escape(reason)),
        None => escape(reason).into_owned(),
    }
}

/// What to do when a server takes TLS on the port a plain connection was made to.
pub const USE_TLS: &str = "add --tls (a certificate from a public CA) or --ca-cert FILE (a self-signed certificate, \
     e.g. one made with `voice-server gen-cert`)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("evil\n\x1b[31mroom"), "evil\\n\\u{1b}[31mroom");
        assert_eq!(escape("tab\there\r\u{7}\u{7f}\u{9b}2J"), "tab\\there\\r\\u{7}\\u{7f}\\u{9b}2J");
        assert_eq!(escape("\u{202e}txt.exe"), "\\u{202e}txt.exe", "bidi overrides too");
        assert!(matches!(escape("plain · ünïcode ✓"), Cow::Borrowed(_)), "nothing to do: no copy");
    }

    #[test]
    fn endings_are_words_not_codes() {
        let auth = ended(ErrorCode::AUTH_FAILED, "authentication failed");
        assert_eq!(
            auth,
            "the server refused the login: wrong user name, password or token (the server said: authentication failed)"
        );
        assert_eq!(ended(ErrorCode::SHUTTING_DOWN, ""), "the server shut down");
        assert_eq!(refused(ErrorCode::ROOM_FULL, "full"), "the room is full (the server said: full)");
        assert_eq!(refused(ErrorCode(77), ""), "the server refused the request");
        let unknown = ended(ErrorCode(999), "bye\x1b[2J");
        assert!(unknown.starts_with("the server ended the session") && unknown.ends_with("bye\\u{1b}[2J)"));
        assert!(!unknown.contains("999") && !unknown.contains("ErrorCode"), "{unknown}");
    }

    #[test]
    fn connect_failures_are_explained() {
        let addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let ca = connect_failure("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))", addr, true);
        assert!(ca.contains("is a CA certificate") && ca.contains("voice-server gen-cert"), "{ca}");
        let refused = connect_failure("Connection refused (os error 111)", addr, false);
        assert!(refused.starts_with("nothing listens at 127.0.0.1:7000"), "{refused}");
        let issuer = connect_failure("invalid peer certificate: UnknownIssuer", addr, true);
        assert!(issuer.contains("--ca-cert"), "{issuer}");
        let plain = connect_failure("tls handshake eof", addr, true);
        assert!(plain.contains("does not answer TLS"), "{plain}");
        assert_eq!(connect_failure("odd\nthing", addr, false), "odd\\nthing");
    }
}
