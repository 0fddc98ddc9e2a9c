//! MQTT 5 packets written and read by hand, for the harness's side of the connection.
//!
//! Owns encoding the broker's packets (valid ones to mutate, and the acknowledgements a fake
//! broker sends) and reading the few packets the session sends (SUBSCRIBE, PUBLISH). By hand
//! rather than with the codec under test, so that a bug in the codec cannot hide itself.

/// Appends an MQTT variable byte integer.
pub fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return;
        }
    }
}

/// Appends a two-byte-length string (or binary data).
pub fn string(s: &[u8], out: &mut Vec<u8>) {
    let n = s.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&s[..n]);
}

/// A fixed header and its body.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    varint(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// A property block: its length, then the properties.
pub fn props(props: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(props.len(), &mut out);
    out.extend_from_slice(props);
    out
}

/// One user property (0x26).
pub fn user_prop(key: &[u8], val: &[u8]) -> Vec<u8> {
    let mut out = vec![0x26];
    string(key, &mut out);
    string(val, &mut out);
    out
}

/// CONNACK: no session present, `reason`, properties.
pub fn connack(reason: u8, properties: &[u8]) -> Vec<u8> {
    let mut body = vec![0, reason];
    body.extend(props(properties));
    packet(0x20, &body)
}

/// PUBLISH (QoS 0 or 1).
pub fn publish(
    topic: &[u8],
    qos: u8,
    retain: bool,
    pid: u16,
    properties: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    string(topic, &mut body);
    if qos > 0 {
        body.extend_from_slice(&pid.to_be_bytes());
    }
    body.extend(props(properties));
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1) | u8::from(retain), &body)
}

/// A packet id, a reason code and properties: PUBACK (0x40), PUBREC (0x50), PUBCOMP (0x70).
pub fn ack(first: u8, pid: u16, reason: u8, properties: &[u8]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.push(reason);
    body.extend(props(properties));
    packet(first, &body)
}

/// SUBACK (0x90) or UNSUBACK (0xB0): a packet id, properties, one reason code per filter.
pub fn suback(first: u8, pid: u16, properties: &[u8], codes: &[u8]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend(props(properties));
    body.extend_from_slice(codes);
    packet(first, &body)
}

/// DISCONNECT with a reason code and properties.
pub fn disconnect(reason: u8, properties: &[u8]) -> Vec<u8> {
    let mut body = vec![reason];
    body.extend(props(properties));
    packet(0xE0, &body)
}

/// What the session sent, as far as the fake broker cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// CONNECT.
    Connect,
    /// SUBSCRIBE with its packet id and filters.
    Subscribe {
        /// Packet id.
        pid: u16,
        /// Topic filters.
        filters: Vec<String>,
    },
    /// PUBLISH.
    Publish {
        /// Topic name.
        topic: String,
        /// Packet id (QoS 1).
        pid: Option<u16>,
        /// Payload.
        payload: Vec<u8>,
    },
    /// Anything else, by packet type.
    Other(u8),
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn varint(&mut self) -> Option<usize> {
        let mut n = 0usize;
        for shift in 0..4 {
            let b = self.u8()?;
            n |= usize::from(b & 0x7F) << (7 * shift);
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::from(self.u16()?);
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// Reads one packet the session wrote (the session writes whole packets, one per buffer).
pub fn read_sent(bytes: &[u8]) -> Option<Sent> {
    let mut r = Reader { b: bytes, at: 0 };
    let first = r.u8()?;
    let len = r.varint()?;
    let end = r.at + len;
    Some(match first >> 4 {
        1 => Sent::Connect,
        8 => {
            let pid = r.u16()?;
            let plen = r.varint()?;
            r.take(plen)?;
            let mut filters = Vec::new();
            while r.at < end {
                filters.push(r.string()?);
                r.u8()?; // options
            }
            Sent::Subscribe { pid, filters }
        }
        3 => {
            let qos = (first >> 1) & 3;
            let topic = r.string()?;
            let pid = if qos > 0 { Some(r.u16()?) } else { None };
            let plen = r.varint()?;
            r.take(plen)?;
            let payload = bytes.get(r.at..end)?.to_vec();
            Sent::Publish {
                topic,
                pid,
                payload,
            }
        }
        t => Sent::Other(t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_reads_back() {
        let p = publish(b"a/b", 1, false, 7, &user_prop(b"k", b"v"), b"{}");
        assert_eq!(
            read_sent(&p),
            Some(Sent::Publish {
                topic: "a/b".into(),
                pid: Some(7),
                payload: b"{}".to_vec()
            })
        );
        let mut long = Vec::new();
        varint(300, &mut long);
        assert_eq!(long, [0xAC, 0x02]);
    }
}
