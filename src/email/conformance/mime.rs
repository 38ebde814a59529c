//! Just enough MIME reading for the suite to check what arrived (no parser is a normal
//! dependency): headers with folding and RFC 2047 words, address lists, multipart bodies,
//! base64 and quoted-printable.

/// A message or one part of it.
pub(super) struct Entity<'a> {
    /// Names lowercased, values unfolded.
    pub(super) headers: Vec<(String, String)>,
    body: &'a [u8],
}

/// `line` without its `\r\n` or `\n`.
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The lines of `raw` with the offset each starts at.
fn lines(raw: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= raw.len() {
            return None;
        }
        let end = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| pos + i + 1);
        let line = (pos, &raw[pos..end]);
        pos = end;
        Some(line)
    })
}

impl<'a> Entity<'a> {
    pub(super) fn parse(raw: &'a [u8]) -> Self {
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut body = &raw[raw.len()..];
        for (start, line) in lines(raw) {
            let text = trim_eol(line);
            if text.is_empty() {
                body = &raw[start + line.len()..];
                break;
            }
            let text = String::from_utf8_lossy(text);
            if text.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push_str(&text);
                }
            } else if let Some((name, value)) = text.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        Self { headers, body }
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `type/subtype`, lowercased (`text/plain` when absent).
    pub(super) fn media_type(&self) -> String {
        self.header("content-type")
            .and_then(|v| v.split(';').next())
            .map_or("text/plain".to_owned(), |t| t.trim().to_ascii_lowercase())
    }

    /// The parts that are not themselves multipart, depth first.
    pub(super) fn leaves(&self) -> Vec<Entity<'a>> {
        let content_type = self.header("content-type").unwrap_or_default();
        match param(content_type, "boundary") {
            Some(boundary) if self.media_type().starts_with("multipart/") => {
                split(self.body, &boundary)
                    .into_iter()
                    .flat_map(|part| Entity::parse(part).leaves())
                    .collect()
            }
            _ => vec![Entity {
                headers: self.headers.clone(),
                body: self.body,
            }],
        }
    }

    pub(super) fn decoded_body(&self) -> Vec<u8> {
        let encoding = self
            .header("content-transfer-encoding")
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match encoding.as_str() {
            "base64" => base64(self.body),
            "quoted-printable" => quoted_printable(self.body, false),
            _ => self.body.to_vec(),
        }
    }
}

/// The parts of a multipart body, without the line breaks before each delimiter.
fn split<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start = None;
    for (pos, line) in lines(body) {
        let Some(rest) = trim_eol(line).strip_prefix(delimiter.as_bytes()) else {
            continue;
        };
        let closing = rest.starts_with(b"--");
        if !closing && !rest.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Some(s) = start {
            let part: &[u8] = &body[s..pos];
            let part = part.strip_suffix(b"\n").unwrap_or(part);
            parts.push(part.strip_suffix(b"\r").unwrap_or(part));
        }
        if closing {
            break;
        }
        start = Some(pos + line.len());
    }
    parts
}

/// Parameter `name` of a header value (`type/sub; name="value"`), unquoted.
pub(super) fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| decode_words(v.trim().trim_matches('"')))
    })
}

/// `(name, address)` pairs of an address-list header, names unquoted and decoded.
pub(super) fn addresses(value: &str) -> Vec<(Option<String>, String)> {
    let mut items = Vec::new();
    let (mut current, mut quoted, mut angle) = (String::new(), false, false);
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items
        .iter()
        .filter(|i| !i.trim().is_empty())
        .map(|item| match item.split_once('<') {
            Some((name, rest)) => {
                let name = name.trim().trim_matches('"').replace("\\\"", "\"");
                let name = decode_words(&name);
                let address = rest.split('>').next().unwrap_or_default().trim();
                ((!name.is_empty()).then_some(name), address.to_owned())
            }
            None => (None, item.trim().to_owned()),
        })
        .collect()
}

/// A header value with its RFC 2047 encoded words (`=?utf-8?b?...?=`) decoded; whitespace
/// between two encoded words is dropped, and adjacent words are decoded together (a
/// character may be split across them).
pub(super) fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("=?") {
        let word = rest[start + 2..].split_once('?').and_then(|(_, r)| {
            let (encoding, r) = r.split_once('?')?;
            let (text, r) = r.split_once("?=")?;
            let bytes = match encoding {
                "b" | "B" => base64(text.as_bytes()),
                "q" | "Q" => quoted_printable(text.as_bytes(), true),
                _ => return None,
            };
            Some((bytes, r))
        });
        let Some((bytes, r)) = word else { break };
        let between = &rest[..start];
        // Whitespace between two encoded words is not part of the text.
        if pending.is_empty() || !between.trim().is_empty() {
            out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut pending)));
            out.push_str(between);
        }
        pending.extend(bytes);
        rest = r;
    }
    out.push_str(&String::from_utf8_lossy(&pending));
    out.push_str(rest);
    out
}

fn base64(input: &[u8]) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for v in input.iter().filter_map(|&c| value(c)) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Quoted-printable; `in_word` also reads `_` as a space (RFC 2047 "Q").
fn quoted_printable(input: &[u8], in_word: bool) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'=' if input[i + 1..].starts_with(b"\r\n") => i += 3,
            b'=' if input[i + 1..].starts_with(b"\n") => i += 2,
            b'=' if i + 2 < input.len() => match (hex(input[i + 1]), hex(input[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    out.push(b'=');
                    i += 1;
                }
            },
            b'_' if in_word => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}
