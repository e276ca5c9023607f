//! Drawing the terminal client's screens with ratatui. Every string drawn is escaped first
//! ([`crate::words::escape`]): names, rooms, chat and reasons come from the network, and a control character must
//! never reach the terminal.

use std::borrow::Cow;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Row, Table, Wrap};

use super::login::Field;
use super::{App, Screen, Slider, TalkMode};
use crate::words::escape;

/// `text` as it may be drawn: control characters escaped ([`crate::words::escape`]).
fn t(text: &str) -> String {
    match escape(text) {
        Cow::Borrowed(s) => s.to_string(),
        Cow::Owned(s) => s,
    }
}

/// Draws the whole screen.
pub fn draw(f: &mut Frame<'_>, app: &App) {
    let bottom_lines = help_lines(app, f.area().width);
    let bottom_height = u16::try_from(bottom_lines.len()).unwrap_or(u16::MAX);
    let [top, body, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3), Constraint::Length(bottom_height)])
            .areas(f.area());
    f.render_widget(Paragraph::new(title_line(app)), top);
    match app.screen {
        Screen::Login => draw_login(f, app, body),
        Screen::Connecting => {
            let text = Paragraph::new(t(&app.status)).wrap(Wrap { trim: false });
            f.render_widget(text.block(Block::bordered().title("voice")), body);
        }
        Screen::Rooms => draw_rooms(f, app, body),
        Screen::Room => draw_room(f, app, body),
    }
    f.render_widget(Paragraph::new(bottom_lines), bottom);
    if app.show_debug {
        draw_debug(f, app, popup(f.area(), 70, 14));
    }
    if app.show_net {
        draw_net(f, app, popup(f.area(), 44, 7));
    }
}

fn title_line(app: &App) -> Line<'_> {
    let mut spans = vec![Span::styled(t(&app.title), Style::new().add_modifier(Modifier::BOLD))];
    if let Some(room) = &app.room {
        spans.push(Span::raw(format!("  #{}", t(room))));
    }
    let mode = match (app.mode, app.key_release) {
        (TalkMode::PushToTalk, true) => "PTT",
        (TalkMode::PushToTalk, false) => "PTT: Space toggles",
        (TalkMode::VoiceActivation, _) => "VOX",
    };
    spans.push(Span::raw(format!("  [{mode}]")));
    if app.talking {
        let label = if app.key_release { " ● TALKING " } else { " ● TALKING (Space stops) " };
        spans.push(Span::styled(label, Style::new().fg(Color::Black).bg(Color::Green)));
    }
    if app.whisper.is_some() {
        spans.push(Span::styled(" WHISPER ", Style::new().fg(Color::Black).bg(Color::Magenta)));
    }
    if app.muted {
        spans.push(Span::styled(" MUTED ", Style::new().fg(Color::Black).bg(Color::Yellow)));
    }
    if app.deafened {
        spans.push(Span::styled(" DEAF ", Style::new().fg(Color::Black).bg(Color::Red)));
    }
    if app.dumping {
        spans.push(Span::raw(" [dumping audio]"));
    }
    Line::from(spans)
}

/// The keys of the screen shown, one hint each.
fn key_hints(app: &App) -> Vec<&'static str> {
    let space = match (app.mode, app.key_release) {
        (TalkMode::PushToTalk, true) => "Space (hold) talk",
        (TalkMode::PushToTalk, false) => "Space talk on/off",
        (TalkMode::VoiceActivation, _) => "Space –",
    };
    match (app.screen, app.input.is_some()) {
        (_, true) => vec!["Enter send", "Esc cancel"],
        (Screen::Room, false) => vec![
            space,
            "v PTT/VOX",
            "m mute",
            "d deafen",
            "↑↓ member",
            "+/- volume",
            "w whisper",
            "Enter chat",
            "l leave",
            "F3 debug",
            "F4 network",
            "F5 dump",
            "q quit",
        ],
        (Screen::Rooms, false) => vec!["↑↓ choose", "Enter join", "F3 debug", "F4 network", "q quit"],
        (Screen::Connecting, false) => vec!["q quit"],
        (Screen::Login, false) => {
            vec!["↑↓ saved servers", "Tab next field", "Enter connect", "F2 save as bookmark", "Esc quit"]
        }
    }
}

/// The bottom lines: the status, the standing notice if any, and the key hints, wrapped to `width` columns
/// (never cut: a word or a hint goes whole to the next line).
fn help_lines(app: &App, width: u16) -> Vec<Line<'static>> {
    let width = usize::from(width.max(1));
    let mut lines: Vec<Line<'static>> = Vec::new();
    let status = Style::new().fg(Color::Cyan);
    lines.extend(wrap(t(&app.status).split(' '), " ", width).into_iter().map(|l| Line::from(l).style(status)));
    if let Some(notice) = &app.notice {
        let style = Style::new().fg(Color::Black).bg(Color::Yellow);
        lines.extend(wrap(t(notice).split(' '), " ", width).into_iter().map(|l| Line::from(l).style(style)));
    }
    lines.extend(wrap(key_hints(app).into_iter(), " · ", width).into_iter().map(Line::from));
    lines
}

/// `pieces` joined with `sep` into lines of at most `width` characters where the pieces allow (a piece longer
/// than a line gets a line of its own); always at least one line.
fn wrap<'a>(pieces: impl Iterator<Item = &'a str>, sep: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for piece in pieces {
        let len = current.chars().count();
        if len > 0 && len + sep.chars().count() + piece.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push_str(sep);
        }
        current.push_str(piece);
    }
    lines.push(current);
    lines
}

fn draw_login(f: &mut Frame<'_>, app: &App, area: Rect) {
    let form = &app.login;
    let [left, right] = Layout::horizontal([Constraint::Length(34), Constraint::Min(30)]).areas(area);
    let items: Vec<ListItem<'_>> = form
        .bookmarks
        .iter()
        .map(|b| ListItem::new(format!("{}  {}@{}", t(&b.name), t(&b.user), t(&b.server))))
        .collect();
    let list = List::new(items)
        .block(Block::bordered().title("saved servers"))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default().with_selected((!form.bookmarks.is_empty()).then_some(form.cursor));
    f.render_stateful_widget(list, left, &mut state);
    let masked = "•".repeat(form.password.chars().count());
    let line = |label: &'static str, value: &str, here: bool| {
        let style = if here { Style::new().add_modifier(Modifier::REVERSED) } else { Style::new() };
        Line::from(vec![Span::raw(label), Span::styled(format!("{}{}", t(value), if here { "▏" } else { "" }), style)])
    };
    let lines = vec![
        line("server    ", &form.server, form.field == Field::Server),
        line("user      ", &form.user, form.field == Field::User),
        line("password  ", &masked, form.field == Field::Password),
    ];
    f.render_widget(Paragraph::new(lines).block(Block::bordered().title("log in")), right);
}

fn draw_rooms(f: &mut Frame<'_>, app: &App, area: Rect) {
    let items: Vec<ListItem<'_>> = app
        .rooms
        .iter()
        .map(|r| {
            let lock = if r.password { " 🔒" } else { "" };
            ListItem::new(format!("{}  ({} in room){lock}", t(&r.name), r.members))
        })
        .collect();
    let list = List::new(items)
        .block(Block::bordered().title("rooms"))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default().with_selected(Some(app.room_cursor));
    f.render_stateful_widget(list, area, &mut state);
}

fn draw_room(f: &mut Frame<'_>, app: &App, area: Rect) {
    let [left, right] = Layout::horizontal([Constraint::Length(34), Constraint::Min(20)]).areas(area);
    let items: Vec<ListItem<'_>> = app
        .members
        .iter()
        .map(|m| {
            let dot = if m.speaking { Span::styled("● ", Style::new().fg(Color::Green)) } else { Span::raw("○ ") };
            let mut spans = vec![dot, Span::raw(t(&m.name))];
            if m.me {
                spans.push(Span::raw(" (you)"));
            }
            if m.muted {
                spans.push(Span::styled(" M", Style::new().fg(Color::Yellow)));
            }
            if m.deafened {
                spans.push(Span::styled(" D", Style::new().fg(Color::Red)));
            }
            if !m.me && (m.volume - 1.0).abs() > f32::EPSILON {
                spans.push(Span::raw(format!(" {:.0}%", m.volume * 100.0)));
            }
            if app.whisper == Some(m.id) {
                spans.push(Span::styled(" ⇢", Style::new().fg(Color::Magenta)));
            }
            if m.whispering_to_me {
                spans.push(Span::styled(" whispering to you", Style::new().fg(Color::Magenta)));
            }
            ListItem::new(Line::from(spans))
        })
        .collect();
    let list = List::new(items)
        .block(Block::bordered().title("members"))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default().with_selected(Some(app.member_cursor));
    f.render_stateful_widget(list, left, &mut state);

    let [chat, input] = Layout::vertical([Constraint::Min(3), Constraint::Length(3)]).areas(right);
    let height = usize::from(chat.height.saturating_sub(2));
    let lines: Vec<Line<'_>> =
        app.chat.iter().skip(app.chat.len().saturating_sub(height)).map(|l| Line::from(t(l))).collect();
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(Block::bordered().title("chat")), chat);
    let typed = app.input.as_deref().map_or_else(|| "(Enter to type)".to_string(), |typed| format!("{}▏", t(typed)));
    f.render_widget(Paragraph::new(typed).block(Block::default().borders(Borders::ALL).title("say")), input);
}

fn draw_debug(f: &mut Frame<'_>, app: &App, area: Rect) {
    let d = &app.debug;
    let ms = |v: Option<f32>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.1} ms"));
    let head = format!(
        "UDP RTT {}   TCP RTT {}   bitrate {:.1} kb/s   sent {}",
        ms(d.udp_rtt_ms),
        ms(d.tcp_rtt_ms),
        f64::from(d.bitrate) / 1000.0,
        d.sent
    );
    let rows = d.speakers.iter().map(|s| {
        Row::new(vec![
            t(&s.name),
            format!("{:.0}/{:.0}", s.depth_ms, s.target_ms),
            format!("{:.1}", s.loss_pct),
            s.plc.to_string(),
            s.fec.to_string(),
        ])
    });
    let widths = [
        Constraint::Min(12),
        Constraint::Length(12),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(8),
    ];
    let table = Table::new(rows, widths).header(
        Row::new(vec!["speaker", "jb ms/target", "loss %", "PLC", "FEC"])
            .style(Style::new().add_modifier(Modifier::BOLD)),
    );
    f.render_widget(Clear, area);
    let block = Block::bordered().title("debug (F3)");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let [h, t] = Layout::vertical([Constraint::Length(2), Constraint::Min(1)]).areas(inner);
    f.render_widget(Paragraph::new(head), h);
    f.render_widget(table, t);
}

fn draw_net(f: &mut Frame<'_>, app: &App, area: Rect) {
    let n = app.net;
    let mark = |s: Slider| if app.slider == s { "▶" } else { " " };
    let lines = vec![
        Line::from(format!("{} loss     {:>4} %", mark(Slider::Loss), n.loss_pct)),
        Line::from(format!("{} latency  {:>4} ms", mark(Slider::Latency), n.latency_ms)),
        Line::from(format!("{} jitter   {:>4} ms", mark(Slider::Jitter), n.jitter_ms)),
        Line::from("←→ choose · [ ] change"),
    ];
    f.render_widget(Clear, area);
    f.render_widget(Paragraph::new(lines).block(Block::bordered().title("network conditioner (F4)")), area);
}

/// A centred rectangle of at most `w` × `h` cells.
fn popup(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

/// The screen `app` draws on a `width` × `height` terminal, as text (one line per row).
#[cfg(test)]
pub(crate) fn screen_text_at(app: &App, width: u16, height: u16) -> String {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    let mut term = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    term.draw(|f| draw(f, app)).expect("draws");
    let buf = term.backend().buffer().clone();
    (0..buf.area.height)
        .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>() + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{MemberRow, SpeakerDebug};
    use super::*;

    fn screen_text(app: &App) -> String {
        screen_text_at(app, 120, 30)
    }

    fn bob() -> MemberRow {
        App::test_member(2, "bob", false)
    }

    fn in_room(key_release: bool) -> App {
        let mut app = App::new("alice@127.0.0.1:7000", key_release);
        app.screen = Screen::Room;
        app.room = Some("lobby".into());
        app
    }

    /// The room screen's hints were one line cut at 120 columns: they wrap, whole, at any width.
    #[test]
    fn every_key_hint_is_shown_whole_at_120_and_80_columns() {
        for key_release in [true, false] {
            let app = in_room(key_release);
            for (w, h) in [(120, 30), (80, 24)] {
                let text = screen_text_at(&app, w, h);
                for hint in key_hints(&app) {
                    assert!(text.contains(hint), "{hint:?} missing at {w} columns:\n{text}");
                }
            }
        }
    }

    /// Without key-release events Space toggles, and the screen says so (hint, mode, talking marker).
    #[test]
    fn toggling_space_is_shown_as_such() {
        let mut app = in_room(false);
        app.talking = true;
        let text = screen_text(&app);
        for want in ["Space talk on/off", "[PTT: Space toggles]", "TALKING (Space stops)"] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
        let mut held = in_room(true);
        held.talking = true;
        let text = screen_text(&held);
        assert!(text.contains("Space (hold) talk") && !text.contains("toggles"), "{text}");
    }

    #[test]
    fn the_notice_is_on_every_screen() {
        for screen in [Screen::Login, Screen::Connecting, Screen::Rooms, Screen::Room] {
            let mut app = in_room(true);
            app.screen = screen;
            app.notice = Some(crate::client::NO_SOUND.into());
            let text = screen_text_at(&app, 80, 30);
            assert!(text.contains("no sound") && text.contains("--features cpal"), "{screen:?}:\n{text}");
            assert!(text.contains("libasound2-dev"), "wrapped, not cut: {screen:?}:\n{text}");
        }
    }

    /// Only the recipient of a whisper is shown "whispering to you".
    #[test]
    fn a_whisper_is_shown_to_its_recipient() {
        let mut app = in_room(true);
        let mut carol = bob();
        carol.id = 3;
        carol.name = "carol".into();
        app.members = vec![bob(), carol];
        app.set_whispering_to_me(&[2]);
        let text = screen_text(&app);
        assert!(text.contains("bob whispering to you"), "{text}");
        assert!(!text.contains("carol whispering"), "{text}");
        app.set_whispering_to_me(&[]);
        assert!(!screen_text(&app).contains("whispering"));
    }

    #[test]
    fn room_screen_shows_members_chat_and_the_debug_overlay() {
        let mut app = in_room(true);
        app.members.push(MemberRow { muted: true, volume: 1.5, ..bob() });
        app.push_line("bob: hello");
        app.talking = true;
        let text = screen_text(&app);
        for want in ["#lobby", "TALKING", "● bob M 150%", "bob: hello"] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
        app.show_debug = true;
        app.debug.udp_rtt_ms = Some(1.25);
        app.debug.speakers.push(SpeakerDebug { name: "bob".into(), plc: 3, fec: 7, ..SpeakerDebug::default() });
        let text = screen_text(&app);
        assert!(text.contains("UDP RTT 1.2 ms") || text.contains("UDP RTT 1.3 ms"), "{text}");
        assert!(text.contains("speaker") && text.contains("PLC"), "{text}");
    }
}
