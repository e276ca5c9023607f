//! Where to connect and as whom: the command line and the bookmarks file resolved into a server, a user, a
//! credential and TLS settings ([`resolve`]); bookmarks saved from the command line (`--save-bookmark`, headless
//! and in the terminal UI) and from the login screen (F2) ([`Saver`]).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use voice_client::ControlTls;
use voice_proto::control::Credential;

use super::Args;
use crate::bookmarks::{Bookmark, BookmarkTls, Bookmarks};
use crate::tui::login::LoginForm;

/// What `Args` resolve to, bookmarks applied.
#[derive(Debug)]
pub(super) struct Resolved {
    pub(super) server: SocketAddr,
    /// The host part of the server address as given (the default TLS server name).
    pub(super) host: String,
    /// TLS settings: the command line's, else the bookmark's.
    pub(super) tls: Option<BookmarkTls>,
    pub(super) user: String,
    pub(super) credential: Credential,
}

/// The command line with the bookmarks file at `path` (`--bookmark`; `--save-bookmark` saves there).
pub(super) fn resolve(args: &Args, path: Option<&Path>) -> Result<Resolved> {
    let bookmark = match (&args.bookmark, path) {
        (Some(name), Some(p)) => {
            let marks = Bookmarks::load(p).with_context(|| format!("bookmarks {}", p.display()))?;
            Some(marks.get(name).cloned().with_context(|| format!("no bookmark named {name:?} in {}", p.display()))?)
        }
        (Some(_), None) => bail!("no config directory for bookmarks on this system"),
        (None, _) => None,
    };
    let server_text = match (&args.server, &bookmark) {
        (Some(s), _) => s.clone(),
        (None, Some(b)) => format!("{}:{}", b.host, b.port),
        (None, None) => "127.0.0.1:7000".into(),
    };
    let (server, host) = server_addr(&server_text)?;
    let tls = tls_settings(args, bookmark.as_ref().and_then(|b| b.tls.clone()))?;
    let user = args
        .user
        .clone()
        .or_else(|| bookmark.as_ref().map(|b| b.nickname.clone()))
        .or_else(|| std::env::var("USER").ok())
        .context("no user name: give --user")?;
    let credential = match (&args.token, &args.password, bookmark.as_ref().and_then(|b| b.password.clone())) {
        (Some(t), _, _) => Credential::Token(t.clone()),
        (None, Some(p), _) => Credential::Password(p.clone()),
        (None, None, Some(p)) => Credential::Password(p),
        (None, None, None) => bail!("no credential: give --password (or VOICE_PASSWORD) or --token"),
    };
    if let Some(name) = &args.save_bookmark {
        let password = match (args.save_password, &credential) {
            (true, Credential::Password(pw)) => Some(pw.as_str()),
            _ => None,
        };
        let saved =
            Saver { path: path.map(Path::to_path_buf) }.save(name, &server_text, &user, tls.clone(), password)?;
        eprintln!("{saved}");
    }
    Ok(Resolved { server, host, user, credential, tls })
}

/// Resolves `HOST:PORT` to its first address; also returns the host as given (brackets of an IPv6 literal
/// removed), the default name for TLS.
pub(super) fn server_addr(text: &str) -> Result<(SocketAddr, String)> {
    let server = text
        .to_socket_addrs()
        .with_context(|| format!("server address {text:?}"))?
        .next()
        .with_context(|| format!("{text:?} resolves to no address"))?;
    let host = text.rsplit_once(':').map_or(text, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    Ok((server, host.to_string()))
}

/// The TLS settings to use (`None`: plain TCP): the command line's (`--tls`, `--ca-cert`; the CA path made
/// absolute, so a saved bookmark works from any directory), else `saved` (a bookmark's), with `--tls-name`
/// applied either way. `--tls-name` alone is an error rather than silently ignored.
pub(super) fn tls_settings(args: &Args, saved: Option<BookmarkTls>) -> Result<Option<BookmarkTls>> {
    let tls = if args.tls || args.ca_cert.is_some() {
        let ca_cert = args.ca_cert.as_deref().map(std::path::absolute).transpose().context("--ca-cert")?;
        Some(BookmarkTls { ca_cert, name: None })
    } else {
        saved
    };
    let Some(mut tls) = tls else {
        if args.tls_name.is_some() {
            bail!("--tls-name needs --tls, --ca-cert or a bookmark saved with TLS");
        }
        return Ok(None);
    };
    if args.tls_name.is_some() {
        tls.name.clone_from(&args.tls_name);
    }
    Ok(Some(tls))
}

/// The TLS settings for what the login form shows: [`tls_settings`] with the highlighted bookmark's, if the form
/// still shows its server.
pub(super) fn form_tls(args: &Args, f: &LoginForm) -> Result<Option<BookmarkTls>> {
    let saved = f.bookmarks.get(f.cursor).filter(|b| b.server == f.server).and_then(|b| b.tls.clone());
    tls_settings(args, saved)
}

/// The client side of `tls` (`None`: plain TCP): the certificate must carry `tls.name`, else `host`; it is checked
/// against `tls.ca_cert` if set, else the public roots.
pub(super) fn control_tls(tls: Option<&BookmarkTls>, host: &str) -> Result<Option<ControlTls>> {
    let Some(tls) = tls else { return Ok(None) };
    let name = tls.name.as_deref().unwrap_or(host);
    Ok(Some(match &tls.ca_cert {
        Some(ca) => ControlTls::with_ca_file(name, ca)?,
        None => ControlTls::public_roots(name)?,
    }))
}

/// Saves bookmarks in the file at `path` (`None`: this system has no config directory).
#[derive(Clone, Debug)]
pub(super) struct Saver {
    pub(super) path: Option<PathBuf>,
}

impl Saver {
    /// Adds (or replaces) bookmark `name` for `server` (`HOST:PORT`) and `user`, with `tls` and, if given, the
    /// password; says where it went.
    pub(super) fn save(
        &self,
        name: &str,
        server: &str,
        user: &str,
        tls: Option<BookmarkTls>,
        password: Option<&str>,
    ) -> Result<String> {
        let p = self.path.as_ref().context("no config directory for bookmarks on this system")?;
        let mut marks = if p.exists() { Bookmarks::load(p)? } else { Bookmarks::default() };
        let (host, port) = server.rsplit_once(':').context("server as HOST:PORT")?;
        let port = port.parse().with_context(|| format!("server port {port:?}"))?;
        let mut mark = Bookmark::new(name, host, port, user);
        mark.tls = tls;
        if let Some(pw) = password {
            mark = mark.with_password(pw);
        }
        marks.upsert(mark);
        marks.save(p).with_context(|| format!("saving bookmarks to {}", p.display()))?;
        Ok(format!("bookmark {name:?} saved in {}", p.display()))
    }

    /// The terminal UI's login screen, F2: the form's server and user (not the password) as a bookmark named after
    /// the host.
    pub(super) fn save_form(&self, args: &Args, f: &LoginForm) -> Result<String> {
        let host = f.server.rsplit_once(':').map_or(f.server.as_str(), |(h, _)| h);
        self.save(host, &f.server, &f.user, form_tls(args, f)?, None)
    }

    /// The terminal UI connects with the form `f`: with `--save-bookmark NAME`, the form is saved as NAME (with
    /// the password if `--save-password`), as the headless client saves the command line. Says where, if saved.
    pub(super) fn on_connect(&self, args: &Args, f: &LoginForm) -> Result<Option<String>> {
        let Some(name) = &args.save_bookmark else { return Ok(None) };
        let password = (args.save_password && args.token.is_none()).then_some(f.password.as_str());
        self.save(name, &f.server, &f.user, form_tls(args, f)?, password).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_args as args;
    use super::*;

    #[test]
    fn tls_settings_merge_the_command_line_and_the_bookmark() {
        assert_eq!(tls_settings(&args(&[]), None).unwrap(), None, "plain TCP by default");
        assert!(tls_settings(&args(&["--tls-name", "x"]), None).is_err(), "--tls-name alone is refused");
        let saved = BookmarkTls { ca_cert: Some("/etc/ca.pem".into()), name: Some("old".into()) };
        let renamed = tls_settings(&args(&["--tls-name", "new"]), Some(saved.clone())).unwrap().unwrap();
        assert_eq!((renamed.ca_cert, renamed.name.as_deref()), (saved.ca_cert.clone(), Some("new")));
        assert_eq!(tls_settings(&args(&[]), Some(saved.clone())).unwrap(), Some(saved.clone()), "the bookmark's");
        let public = tls_settings(&args(&["--tls"]), Some(saved)).unwrap().unwrap();
        assert_eq!(public, BookmarkTls::default(), "the command line wins: public roots, the host's name");
        let ca = tls_settings(&args(&["--ca-cert", "rel/ca.pem"]), None).unwrap().unwrap();
        assert!(ca.ca_cert.is_some_and(|p| p.is_absolute() && p.ends_with("rel/ca.pem")), "saved absolute");
    }

    /// `--save-bookmark` in the terminal UI saves what the form connects with (it used to be ignored there, so the
    /// README's next step, `--bookmark home`, failed); `--bookmark` then finds it.
    #[test]
    fn the_terminal_ui_saves_the_bookmark_named_on_the_command_line() {
        let dir = std::env::temp_dir().join(format!("voice-client-bookmark-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let saver = Saver { path: Some(dir.join("bookmarks.toml")) };
        let form = LoginForm {
            server: "127.0.0.1:7000".into(),
            user: "alice".into(),
            password: "pw".into(),
            ..LoginForm::default()
        };
        let plain = args(&["--server", "127.0.0.1:7000"]);
        assert_eq!(saver.on_connect(&plain, &form).unwrap(), None, "nothing asked, nothing saved");
        let asked = args(&["--server", "127.0.0.1:7000", "--user", "alice", "--save-bookmark", "home"]);
        let said = saver.on_connect(&asked, &form).unwrap().expect("saved");
        assert!(said.contains("\"home\""), "{said}");
        let path = saver.path.clone().unwrap();
        let r =
            resolve(&args(&["--bookmark", "home", "--password", "pw"]), Some(&path)).expect("the bookmark is found");
        assert_eq!((r.server.to_string(), r.user.as_str()), ("127.0.0.1:7000".to_string(), "alice"));
        let marks = Bookmarks::load(&path).unwrap();
        assert_eq!(marks.get("home").and_then(|b| b.password.clone()), None, "no password unless asked");
        let with_pw = args(&["--server", "127.0.0.1:7000", "--save-bookmark", "home", "--save-password"]);
        saver.on_connect(&with_pw, &form).unwrap();
        let marks = Bookmarks::load(&path).unwrap();
        assert_eq!(marks.get("home").and_then(|b| b.password.clone()).as_deref(), Some("pw"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
