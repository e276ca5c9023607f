//! The login screen: saved servers (bookmarks) on the left, a form (server, user, password) on the right.

use ratatui::crossterm::event::KeyCode;

/// One saved server, as listed on the login screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookmarkRow {
    /// Bookmark name.
    pub name: String,
    /// `host:port` of the control port.
    pub server: String,
    /// Nickname to log in with.
    pub user: String,
    /// The saved password, if the user chose to save it.
    pub password: Option<String>,
    /// Its TLS settings (`None`: plain TCP).
    pub tls: Option<crate::bookmarks::BookmarkTls>,
}

/// Which field of the form is being typed into.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Field {
    /// `host:port`.
    #[default]
    Server,
    /// User name.
    User,
    /// Password (shown masked).
    Password,
}

/// The login form and the bookmark list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginForm {
    /// `host:port` of the server's control port.
    pub server: String,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Field being typed into.
    pub field: Field,
    /// Saved servers.
    pub bookmarks: Vec<BookmarkRow>,
    /// Highlighted bookmark.
    pub cursor: usize,
}

/// What a key on the login screen asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginAction {
    /// Nothing beyond the form's own change.
    None,
    /// Connect with the form's contents.
    Connect,
    /// Save the form (server, user; not the password) as a bookmark.
    Save,
    /// Quit.
    Quit,
}

/// Longest value of a field.
const MAX_FIELD: usize = 256;

impl LoginForm {
    /// Fills the form from the highlighted bookmark.
    pub fn pick(&mut self, i: usize) {
        if let Some(b) = self.bookmarks.get(i) {
            self.cursor = i;
            self.server.clone_from(&b.server);
            self.user.clone_from(&b.user);
            self.password = b.password.clone().unwrap_or_default();
            self.field = if b.password.is_some() { Field::Server } else { Field::Password };
        }
    }

    /// Handles one key press.
    pub fn on_key(&mut self, code: KeyCode) -> LoginAction {
        match code {
            KeyCode::Esc => return LoginAction::Quit,
            KeyCode::Enter => return LoginAction::Connect,
            KeyCode::F(2) => return LoginAction::Save,
            KeyCode::Tab => {
                self.field = match self.field {
                    Field::Server => Field::User,
                    Field::User => Field::Password,
                    Field::Password => Field::Server,
                };
            }
            KeyCode::BackTab => {
                self.field = match self.field {
                    Field::Server => Field::Password,
                    Field::User => Field::Server,
                    Field::Password => Field::User,
                };
            }
            KeyCode::Up => self.pick(self.cursor.saturating_sub(1)),
            KeyCode::Down => self.pick((self.cursor + 1).min(self.bookmarks.len().saturating_sub(1))),
            KeyCode::Backspace => {
                self.current().pop();
            }
            KeyCode::Char(c) => {
                let field = self.current();
                if field.len() < MAX_FIELD {
                    field.push(c);
                }
            }
            _ => {}
        }
        LoginAction::None
    }

    fn current(&mut self) -> &mut String {
        match self.field {
            Field::Server => &mut self.server,
            Field::User => &mut self.user,
            Field::Password => &mut self.password,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookmarks_fill_the_form_and_typing_goes_to_the_current_field() {
        let mut form = LoginForm {
            bookmarks: vec![
                BookmarkRow {
                    name: "home".into(),
                    server: "10.0.0.2:7000".into(),
                    user: "al".into(),
                    password: None,
                    tls: None,
                },
                BookmarkRow {
                    name: "work".into(),
                    server: "voice.example:7000".into(),
                    user: "alice".into(),
                    password: Some("pw".into()),
                    tls: Some(crate::bookmarks::BookmarkTls::default()),
                },
            ],
            ..LoginForm::default()
        };
        assert_eq!(form.on_key(KeyCode::Down), LoginAction::None);
        assert_eq!(
            (form.server.as_str(), form.user.as_str(), form.password.as_str()),
            ("voice.example:7000", "alice", "pw")
        );
        form.on_key(KeyCode::Up);
        assert_eq!(form.field, Field::Password, "a bookmark without a password puts the cursor on the password");
        for c in "secret".chars() {
            form.on_key(KeyCode::Char(c));
        }
        form.on_key(KeyCode::Backspace);
        assert_eq!(form.password, "secre");
        form.on_key(KeyCode::Tab);
        form.on_key(KeyCode::Char('x'));
        assert_eq!(form.server, "10.0.0.2:7000x");
        assert_eq!(form.on_key(KeyCode::Enter), LoginAction::Connect);
        assert_eq!(form.on_key(KeyCode::F(2)), LoginAction::Save);
    }
}
