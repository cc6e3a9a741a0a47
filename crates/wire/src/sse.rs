//! Server-sent events: an incremental splitter that hands out whole events
//! as slices of the bytes received, so a proxy can forward each event the
//! moment its last byte arrives and look inside it without copying.

use bytes::{Bytes, BytesMut};

/// The most bytes one event may hold before the stream is judged broken.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// One event: its `event:` name (if any) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

impl Event {
    /// Parses the text of one event block (the bytes before its blank line).
    pub fn parse(block: &[u8]) -> Event {
        let text = String::from_utf8_lossy(block);
        let mut name = None;
        let mut data: Option<String> = None;
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let (field, value) = match line.find(':') {
                Some(0) => continue, // a comment
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(' ').unwrap_or(v))
                }
                None => (line, ""),
            };
            match field {
                "event" => name = Some(value.to_owned()),
                "data" => match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
        Event {
            name,
            data: data.unwrap_or_default(),
        }
    }
}

/// Splits a stream of bytes into complete event blocks.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: BytesMut,
    /// How far the buffer was already searched for a boundary.
    scanned: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a server-sent event exceeded {MAX_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

impl Splitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes; returns the bytes of every event now complete,
    /// boundaries included, as one slice (empty when none completed), and
    /// the end offsets of each event inside that slice.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(Bytes, Vec<usize>), EventTooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut ends = Vec::new();
        let mut from = self.scanned.saturating_sub(3);
        let mut last_end = 0;
        while let Some(end) = boundary(&self.buf[from..]).map(|e| e + from) {
            ends.push(end);
            last_end = end;
            from = end;
        }
        if last_end == 0 {
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_EVENT_BYTES {
                return Err(EventTooLarge);
            }
            return Ok((Bytes::new(), ends));
        }
        let complete = self.buf.split_to(last_end).freeze();
        self.scanned = self.buf.len();
        Ok((complete, ends))
    }

    /// What is left once the stream ended: an unterminated last event.
    pub fn finish(&mut self) -> Bytes {
        self.scanned = 0;
        self.buf.split().freeze()
    }

    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// The offset just past the first blank line (`\n\n`, `\r\n\r\n` or `\r\r`).
fn boundary(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = memchr::memchr2(b'\n', b'\r', &buf[i..]) {
        let at = i + p;
        let rest = &buf[at..];
        if rest.starts_with(b"\n\n") || rest.starts_with(b"\r\r") {
            return Some(at + 2);
        }
        if rest.starts_with(b"\r\n\r\n") {
            return Some(at + 4);
        }
        i = at + 1;
    }
    None
}

/// Iterates the event blocks of a slice returned by [`Splitter::push`].
pub fn blocks<'a>(complete: &'a [u8], ends: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut start = 0;
    ends.iter().map(move |&end| {
        let block = &complete[start..end];
        start = end;
        block
    })
}

/// Renders one `data:` event.
pub fn data_event(json: &str) -> Bytes {
    let mut out = String::with_capacity(json.len() + 8);
    out.push_str("data: ");
    out.push_str(json);
    out.push_str("\n\n");
    Bytes::from(out)
}

pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<Event> {
        let mut s = Splitter::new();
        let mut out = Vec::new();
        for c in chunks {
            let (bytes, ends) = s.push(c).expect("fits");
            out.extend(blocks(&bytes, &ends).map(Event::parse));
        }
        out
    }

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let got = events(&[b"data: {\"a\"", b":1}\n", b"\ndata: [DONE]\n\n"]);
        assert_eq!(
            got,
            vec![
                Event {
                    name: None,
                    data: "{\"a\":1}".into()
                },
                Event {
                    name: None,
                    data: "[DONE]".into()
                }
            ]
        );
    }

    #[test]
    fn named_events_and_crlf_and_comments_are_read() {
        let got = events(&[b": ping\r\n\r\nevent: message_start\r\ndata: {}\r\n\r\n"]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].data, "");
        assert_eq!(got[1].name.as_deref(), Some("message_start"));
        assert_eq!(got[1].data, "{}");
    }

    #[test]
    fn a_boundary_split_between_chunks_is_found() {
        let got = events(&[b"data: 1\n", b"\n", b"data: 2\r\n\r", b"\n"]);
        let data: Vec<_> = got.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["1", "2"]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let got = events(&[b"data: a\ndata: b\n\n"]);
        assert_eq!(got[0].data, "a\nb");
    }

    #[test]
    fn forwarded_bytes_equal_the_received_bytes() {
        let input: &[&[u8]] = &[b"data: x\n\nda", b"ta: y\n\n", b"data: z"];
        let mut s = Splitter::new();
        let mut out = Vec::new();
        for c in input {
            out.extend_from_slice(&s.push(c).expect("fits").0);
        }
        out.extend_from_slice(&s.finish());
        assert_eq!(out, input.concat());
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut s = Splitter::new();
        let chunk = vec![b'a'; 1024 * 1024];
        let mut refused = false;
        for _ in 0..5 {
            if s.push(&chunk).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }
}
