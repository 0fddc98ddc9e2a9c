//! Answer text to spoken sentences, and what a transcript means: [`SentenceSplitter`] cuts
//! streamed text where speech can start, [`transcript_text`] drops Whisper's noise marks,
//! [`yes_or_no`] reads a spoken answer to a confirmation.
//!
//! Pure text functions: no session state, no wire format.

/// The first piece of an answer may end at a comma once it is this long: the first audio waits
/// for the first piece's whole synthesis, and a long first sentence ("It's 21.3 °C in the hall,
/// 45% humidity, set to 21 °C.") was the voice loop's p90 (bench-voice).
pub const FIRST_CLAUSE_MIN_CHARS: usize = 20;

/// Splits streamed answer text into sentences to speak, one as soon as it is whole. The first
/// piece may be a clause (see [`FIRST_CLAUSE_MIN_CHARS`]), so that speech starts sooner.
#[derive(Debug, Default, Clone)]
pub struct SentenceSplitter {
    buf: String,
    emitted: usize,
}

impl SentenceSplitter {
    /// A splitter with nothing in it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds text; returns the sentences it completed. A sentence ends at `.`, `!`, `?`, `;`
    /// or `:` followed by white space, at a new line, or at a CJK full stop; "21.5" and
    /// "e.g." inside a word do not end one. Before anything was returned, a `,` or `，`
    /// followed by white space also ends a piece of [`FIRST_CLAUSE_MIN_CHARS`] or more.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.buf.push_str(text);
        let mut out = Vec::new();
        loop {
            let mut cut = None;
            let mut chars = self.buf.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                let next = chars.peek().map(|&(_, n)| n);
                let first = self.emitted == 0;
                let end = match c {
                    '。' | '！' | '？' | '\n' => Some(i + c.len_utf8()),
                    '.' | '!' | '?' | ';' | ':' if next.is_some_and(char::is_whitespace) => {
                        Some(i + 1)
                    }
                    ',' | '，'
                        if first
                            && next.is_some_and(char::is_whitespace)
                            && self.buf[..i].trim().chars().count() >= FIRST_CLAUSE_MIN_CHARS =>
                    {
                        Some(i + c.len_utf8())
                    }
                    _ => None,
                };
                if end.is_some() {
                    cut = end;
                    break;
                }
            }
            let Some(cut) = cut else { break };
            let sentence: String = self.buf.drain(..cut).collect();
            if let Some(s) = clean(&sentence) {
                self.emitted += 1;
                out.push(s);
            }
        }
        out
    }

    /// What is left when the text is complete.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        clean(&rest)
    }
}

/// Markdown and list marks are not read aloud.
fn clean(s: &str) -> Option<String> {
    let t: String = s
        .chars()
        .filter(|c| !matches!(c, '*' | '`' | '#' | '_'))
        .collect();
    let t = t.trim().trim_start_matches("- ").trim();
    t.chars().any(char::is_alphanumeric).then(|| t.to_string())
}

/// What an ASR said, minus the non-speech marks Whisper writes for silence and noise.
pub fn transcript_text(raw: &str) -> String {
    let mut out = String::new();
    let mut depth = 0u32;
    for c in raw.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let t = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.chars().any(char::is_alphanumeric) {
        t
    } else {
        String::new()
    }
}

/// A spoken answer to a confirmation: `Some(true)` for yes, `Some(false)` for no.
pub fn yes_or_no(text: &str) -> Option<bool> {
    let words: Vec<String> = text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let has = |set: &[&str]| words.iter().any(|w| set.contains(&w.as_str()));
    let no = has(&["no", "nope", "don't", "dont", "cancel", "stop", "not"]);
    let yes = has(&[
        "yes", "yeah", "yep", "sure", "ok", "okay", "confirm", "go", "do",
    ]);
    match (yes, no) {
        (_, true) if words.len() <= 6 => Some(false),
        (true, false) if words.len() <= 6 => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_emits_whole_sentences_as_they_complete() {
        let mut sp = SentenceSplitter::new();
        assert!(sp.push("The kitchen lamp").is_empty());
        assert_eq!(
            sp.push(" is on. It is 21.5 "),
            vec!["The kitchen lamp is on."]
        );
        assert_eq!(
            sp.push("degrees! Anything else"),
            vec!["It is 21.5 degrees!"]
        );
        assert_eq!(sp.finish().as_deref(), Some("Anything else"));
        assert_eq!(sp.finish(), None);
        assert_eq!(
            SentenceSplitter::new().push("**Done**.\n- next: item\n"),
            vec!["Done.", "next:", "item"]
        );
        assert_eq!(
            SentenceSplitter::new().push("好的。灯开了。"),
            vec!["好的。", "灯开了。"]
        );
    }

    /// A long first sentence is spoken in two pieces, from its first comma, so the first audio
    /// needs only the first clause's synthesis; later sentences and short clauses stay whole.
    #[test]
    fn a_long_first_sentence_starts_with_its_first_clause() {
        let mut sp = SentenceSplitter::new();
        assert_eq!(
            sp.push(
                "It's 21.3 °C in the hall, 45% humidity, set to 21 °C. Anything else, or done? "
            ),
            vec![
                "It's 21.3 °C in the hall,",
                "45% humidity, set to 21 °C.",
                "Anything else, or done?"
            ]
        );
        // Under the length, or without a space after it (a decimal comma): no cut.
        assert_eq!(
            SentenceSplitter::new().push("Yes, it is on. "),
            vec!["Yes, it is on."]
        );
        assert_eq!(
            SentenceSplitter::new().push("Es sind genau 21,5 Grad im Flur, sagt der Sensor. "),
            vec!["Es sind genau 21,5 Grad im Flur,", "sagt der Sensor."]
        );
        // Streamed: the comma is seen when the space after it arrives.
        let mut sp = SentenceSplitter::new();
        assert!(sp
            .push("The bedroom thermostat is set to 21 °C,")
            .is_empty());
        assert_eq!(
            sp.push(" and the heating is on."),
            vec!["The bedroom thermostat is set to 21 °C,"]
        );
        assert_eq!(sp.finish().as_deref(), Some("and the heating is on."));
    }

    #[test]
    fn whisper_noise_marks_are_not_words() {
        assert_eq!(transcript_text(" [BLANK_AUDIO] "), "");
        assert_eq!(transcript_text("(wind blowing)  ..."), "");
        assert_eq!(
            transcript_text(" Turn on the kitchen lamp. "),
            "Turn on the kitchen lamp."
        );
    }

    #[test]
    fn yes_and_no_are_recognised_only_in_short_answers() {
        assert_eq!(yes_or_no("Yes, please."), Some(true));
        assert_eq!(yes_or_no("OK do it"), Some(true));
        assert_eq!(yes_or_no("No."), Some(false));
        assert_eq!(yes_or_no("don't"), Some(false));
        assert_eq!(yes_or_no("turn on the lamp"), None);
        assert_eq!(
            yes_or_no("yes and also turn on every light in the whole house"),
            None
        );
    }
}
