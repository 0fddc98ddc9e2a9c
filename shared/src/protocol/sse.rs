//! Server-Sent Events framing (`text/event-stream`), as the worker writes it and the browser,
//! the widget and the tests read it.
//!
//! Owns the frame format only: `event:` and `data:` lines ended by a blank line. It never
//! opens a stream; callers feed it text as it arrives.

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` name (`message` when the frame names none).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// One frame for `event` with `data` (which must not contain a blank line; JSON never does).
pub fn frame(event: &str, data: &str) -> String {
    let mut out = format!("event: {event}\n");
    for line in data.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Takes every complete event out of `buf`, leaving a partial one for the next call.
/// Comment-only frames (keep-alives) are dropped.
pub fn drain_events(buf: &mut String) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let normalized = buf.contains('\r');
        if normalized {
            *buf = buf.replace("\r\n", "\n");
        }
        let Some(end) = buf.find("\n\n") else {
            return out;
        };
        let block: String = buf.drain(..end + 2).collect();
        let mut event = None;
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event:") {
                event = Some(e.trim().to_string());
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        if event.is_none() && data.is_empty() {
            continue;
        }
        out.push(Event {
            event: event.unwrap_or_else(|| "message".into()),
            data: data.join("\n"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_whatever_the_chunking() {
        let text = format!(
            "{}: keep-alive\n\n{}",
            frame("tool_started", r#"{"id":"t1"}"#),
            frame("answer", r#"{"text":"ok"}"#)
        );
        for cut in 0..text.len() {
            let mut buf = String::new();
            let mut got = Vec::new();
            buf.push_str(&text[..cut]);
            got.extend(drain_events(&mut buf));
            buf.push_str(&text[cut..]);
            got.extend(drain_events(&mut buf));
            assert_eq!(
                got,
                vec![
                    Event {
                        event: "tool_started".into(),
                        data: r#"{"id":"t1"}"#.into()
                    },
                    Event {
                        event: "answer".into(),
                        data: r#"{"text":"ok"}"#.into()
                    },
                ],
                "cut at {cut}"
            );
            assert!(buf.is_empty());
        }
        let mut crlf = "data: x\r\n\r\n".to_string();
        assert_eq!(drain_events(&mut crlf)[0].event, "message");
    }
}
