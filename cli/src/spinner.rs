//! While `run` waits for a lock: on a terminal, a spinner on standard error naming who holds
//! the lock and for how long, redrawn in place; elsewhere, one plain line each time the
//! holder changes. A few lines of our own rather than a crate: it only draws one line.

use std::io::Write;
use std::time::Instant;

use nlock::KeyHolder;

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

pub struct Waiting {
    key: String,
    /// Standard error is a terminal: draw in place. Otherwise print plain lines.
    terminal: bool,
    quiet: bool,
    frame: usize,
    started: Instant,
    /// What the last holder read said (`None` before the first read or when free), to print
    /// a plain line only when it changes.
    shown: Option<Option<(String, u64)>>,
    holder_text: String,
    /// Something is drawn on the current line and must be cleared before other output.
    drawn: bool,
}

/// A holder as a person reads it: an elector's candidate as `leader ID key=value... (pid P
/// on HOST)` (its record is JSON in the lock's description), any other as the library shows
/// it.
pub fn holder_text(holder: &nlock::Holder) -> String {
    match nlock::Leader::candidate_of(holder) {
        Some((id, meta)) => format!(
            "leader {id}{} (pid {} on {})",
            meta_text(&meta),
            holder.pid,
            holder.host
        ),
        None => holder.to_string(),
    }
}

/// A candidate's metadata in a few words: ` key=value` for each field of an object, else the
/// value as JSON; nothing for none.
pub fn meta_text(meta: &serde_json::Value) -> String {
    use serde_json::Value;
    match meta {
        Value::Null => String::new(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!(" {k}={s}"),
                v => format!(" {k}={v}"),
            })
            .collect(),
        other => format!(" {other}"),
    }
}

/// A holder in a few words: its process and description, without the long owner id.
pub fn short(holder: &nlock::Holder) -> String {
    if holder.foreign {
        return holder.to_string();
    }
    if let Some((id, meta)) = nlock::Leader::candidate_of(holder) {
        return format!(
            "leader {id}{} (pid {} on {})",
            meta_text(&meta),
            holder.pid,
            holder.host
        );
    }
    let mut text = format!("pid {} on {}", holder.pid, holder.host);
    if let Some(d) = &holder.description {
        text.push_str(&format!(" {d:?}"));
    }
    text
}

/// The terminal's width for the spinner line: `COLUMNS` when set, else 80.
fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|w: &usize| *w > 10)
        .unwrap_or(80)
}

/// `12s`, `3m05s`, `2h07m`.
pub fn human(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Milliseconds since the Unix epoch on this machine's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How long `held` has been held, by the holder's clock (unknown for a foreign holder).
pub fn held_for_ms(held: &KeyHolder) -> Option<u64> {
    (held.holder.acquired_at_ms > 0).then(|| now_ms().saturating_sub(held.holder.acquired_at_ms))
}

impl Waiting {
    pub fn new(key: &str, terminal: bool, quiet: bool) -> Waiting {
        Waiting {
            key: key.to_owned(),
            terminal,
            quiet,
            frame: 0,
            started: Instant::now(),
            shown: None,
            holder_text: String::new(),
            drawn: false,
        }
    }

    /// A new read of who holds the key (`None`: free right now).
    pub fn holder(&mut self, held: Option<&KeyHolder>) {
        if self.quiet {
            return;
        }
        let id = held.map(|h| (h.holder.owner.clone(), h.token));
        self.holder_text = match held {
            Some(h) => {
                let since = held_for_ms(h)
                    .map(|ms| format!(" for {}", human(ms)))
                    .unwrap_or_default();
                format!("held by {} (token {}){since}", short(&h.holder), h.token)
            }
            None => "free, taking it".to_owned(),
        };
        if !self.terminal && self.shown.as_ref() != Some(&id) {
            eprintln!("nlock: waiting for {}: {}", self.key, self.holder_text);
        }
        self.shown = Some(id);
        self.draw();
    }

    /// The next spinner frame (terminal only).
    pub fn tick(&mut self) {
        self.frame = (self.frame + 1) % FRAMES.len();
        self.draw();
    }

    fn draw(&mut self) {
        if self.quiet || !self.terminal || self.shown.is_none() {
            return;
        }
        let waited = human(self.started.elapsed().as_millis() as u64);
        let line = format!(
            "{} waiting {waited} for {}: {}",
            FRAMES[self.frame], self.key, self.holder_text
        );
        // Cut to the terminal's width: a wrapped line could not be redrawn in place.
        let line: String = line.chars().take(width() - 1).collect();
        let mut err = std::io::stderr().lock();
        // \r and "erase to end of line": redraw in place.
        let _ = write!(err, "\r\x1b[K{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Clears the spinner's line, before anything else is printed.
    pub fn finish(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(999), "0s");
        assert_eq!(human(59_000), "59s");
        assert_eq!(human(185_000), "3m05s");
        assert_eq!(human(7_620_000), "2h07m");
    }
}
