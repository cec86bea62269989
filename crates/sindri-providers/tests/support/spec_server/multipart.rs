//! A strict `multipart/form-data` reader (RFC 7578) for the fakes.

/// One part.
#[derive(Debug, Clone)]
pub struct Part {
    /// The form field name.
    pub name: String,
    /// The file name, when given.
    pub filename: Option<String>,
    /// The content.
    pub data: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

/// Splits `body` into parts; fails on anything malformed.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut pos =
        find(body, delim.as_bytes(), 0).ok_or("the body does not start with the boundary")?;
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            return Ok(parts);
        }
        if !body[pos..].starts_with(b"\r\n") {
            return Err("a boundary is not followed by CRLF".into());
        }
        pos += 2;
        let head_end = find(body, b"\r\n\r\n", pos).ok_or("a part has no header end")?;
        let head = String::from_utf8_lossy(&body[pos..head_end]).into_owned();
        let data_start = head_end + 4;
        let next = find(body, format!("\r\n{delim}").as_bytes(), data_start)
            .ok_or("a part is not terminated by the boundary")?;
        let mut name = None;
        let mut filename = None;
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                return Err(format!("malformed part header `{line}`"));
            };
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                let mut items = v.split(';').map(str::trim);
                if items.next() != Some("form-data") {
                    return Err(format!("content-disposition `{v}` is not form-data"));
                }
                for item in items {
                    if let Some(n) = item.strip_prefix("name=") {
                        name = Some(n.trim_matches('"').to_string());
                    } else if let Some(f) = item.strip_prefix("filename=") {
                        filename = Some(f.trim_matches('"').to_string());
                    }
                }
            }
        }
        parts.push(Part {
            name: name.ok_or("a part has no name")?,
            filename,
            data: body[data_start..next].to_vec(),
        });
        pos = next + 2;
    }
}
