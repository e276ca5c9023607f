//! Bookmarks: saved servers (address, port, nickname, TLS settings; a password only if the user asks) in a TOML
//! file in the user's configuration directory.
//!
//! ```toml
//! [[bookmark]]
//! name = "home"
//! host = "voice.example.org"
//! port = 7000
//! nickname = "alice"
//!
//! [bookmark.tls]          # the control connection over TLS (absent: plain TCP)
//! ca_cert = "/home/alice/voice-ca.pem"   # optional: trust only this CA (default: the public roots)
//! name = "voice.example.org"             # optional: the name the certificate carries (default: host)
//! ```

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

/// One saved server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bookmark {
    /// Display name (unique within the file).
    pub name: String,
    /// Host name or IP address of the server's control port.
    pub host: String,
    /// Control (TCP) port.
    pub port: u16,
    /// User name to log in with.
    pub nickname: String,
    /// Saved only when the user asked for it ([`Bookmark::with_password`]); stored in clear text in a file only
    /// the user can read (mode 0600 on Unix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Connect over TLS with these settings (`None`: plain TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BookmarkTls>,
}

/// A bookmark's TLS settings (see [`voice_client::ControlTls`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookmarkTls {
    /// Trust only the CA certificate(s) in this PEM file (e.g. the server's self-signed one); `None`: the public
    /// (Mozilla) roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// The name the server's certificate must carry; `None`: the bookmark's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Bookmark {
    /// A bookmark without a password.
    #[must_use]
    pub fn new(name: impl Into<String>, host: impl Into<String>, port: u16, nickname: impl Into<String>) -> Self {
        Self { name: name.into(), host: host.into(), port, nickname: nickname.into(), password: None, tls: None }
    }

    /// The same bookmark connecting over TLS with `tls`.
    #[must_use]
    pub fn with_tls(mut self, tls: BookmarkTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The same bookmark with its password saved (only when the user asked).
    #[must_use]
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }
}

/// The bookmarks file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bookmarks {
    /// Saved servers, in the order the user made them.
    #[serde(default, rename = "bookmark")]
    pub entries: Vec<Bookmark>,
}

impl Bookmarks {
    /// `<config dir>/voice-client/bookmarks.toml` (e.g. `~/.config/voice-client/bookmarks.toml` on Linux);
    /// `None` when the platform has no configuration directory.
    #[must_use]
    pub fn default_path() -> Option<PathBuf> {
        dirs::config_dir().map(|d| d.join("voice-client").join("bookmarks.toml"))
    }

    /// Parses a bookmarks file's text.
    pub fn parse(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("bookmarks file: {e}"))
    }

    /// The file's text.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| anyhow::anyhow!("bookmarks file: {e}"))
    }

    /// Loads `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(anyhow::anyhow!("bookmarks file {}: {e}", path.display())),
        }
    }

    /// Saves to `path` (creating its directory), through a temporary file renamed into place so a crash never
    /// leaves half a file. The file is readable by the user only on Unix.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = self.to_toml()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("toml.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        // Created readable by the user only (it may hold a password): never readable by others, not even briefly.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        std::io::Write::write_all(&mut options.open(&tmp)?, text.as_bytes())?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// The bookmark named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Bookmark> {
        self.entries.iter().find(|b| b.name == name)
    }

    /// Adds `bookmark`, replacing one with the same name.
    pub fn upsert(&mut self, bookmark: Bookmark) {
        match self.entries.iter_mut().find(|b| b.name == bookmark.name) {
            Some(b) => *b = bookmark,
            None => self.entries.push(bookmark),
        }
    }

    /// Removes the bookmark named `name`; returns it.
    pub fn remove(&mut self, name: &str) -> Option<Bookmark> {
        let i = self.entries.iter().position(|b| b.name == name)?;
        Some(self.entries.remove(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_password_only_when_asked() {
        let dir = std::env::temp_dir().join(format!("voice-client-bookmarks-{}", std::process::id()));
        let path = dir.join("sub").join("bookmarks.toml");
        let mut b = Bookmarks::load(&path).unwrap();
        assert!(b.entries.is_empty(), "missing file = no bookmarks");
        b.upsert(Bookmark::new("home", "voice.example.org", 7000, "alice"));
        b.upsert(Bookmark::new("work", "10.0.0.5", 7100, "alice.w").with_password("s3cret"));
        let tls = BookmarkTls { ca_cert: Some("/tmp/ca.pem".into()), name: Some("voice.work".into()) };
        b.upsert(Bookmark::new("secure", "10.0.0.6", 7000, "alice").with_tls(tls.clone()));
        b.upsert(Bookmark::new("public", "voice.example.com", 7000, "alice").with_tls(BookmarkTls::default()));
        b.upsert(Bookmark::new("home", "voice.example.org", 7001, "alice"));
        b.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("password").count(), 1, "{text}");
        let loaded = Bookmarks::load(&path).unwrap();
        assert_eq!(loaded, b);
        assert_eq!(loaded.get("home").map(|b| b.port), Some(7001));
        assert_eq!(loaded.get("secure").and_then(|b| b.tls.clone()), Some(tls));
        assert_eq!(loaded.get("public").and_then(|b| b.tls.clone()), Some(BookmarkTls::default()));
        assert_eq!(loaded.get("home").and_then(|b| b.tls.clone()), None, "plain TCP unless saved with TLS");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_broken_file_is_an_error_not_a_panic() {
        assert!(Bookmarks::parse("[[bookmark]]\nname = 3").is_err());
        assert!(Bookmarks::parse("\u{0}\u{1}garbage").is_err());
        assert_eq!(Bookmarks::parse("").unwrap(), Bookmarks::default());
    }
}
