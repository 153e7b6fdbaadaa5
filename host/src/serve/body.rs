//! What a batch looks like on the wire: how its events are framed, how
//! the body is compressed, and where each event is in it.
//!
//! The shapes are those that Vector's `http` sink and Fluent Bit's `http`
//! output send: newline-delimited JSON (`ndjson` framing, `json_lines`
//! format) and JSON (`json` framing or format: an array of events, or one
//! event), either one gzip-compressed or not. Output keeps the shape of the
//! input: the same framing, the same bytes between events, and gzip again
//! if the input was gzipped.

use std::io::{Read, Write};
use std::ops::Range;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use hyper::header::{HeaderMap, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::StatusCode;

use super::metrics::Reason;
use super::Rejection;

/// How the events of a body are separated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// One event per line.
    Lines,
    /// JSON: an array of events, or events one after another.
    Json,
}

/// The framing and compression of a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub framing: Framing,
    pub gzip: bool,
}

/// Media types sent for newline-delimited JSON. `text/plain` is what a
/// shipper sends when told to frame lines without naming them JSON.
const LINE_TYPES: [&str; 7] = [
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonlines",
    "application/x-jsonlines",
    "application/json-lines",
    "application/jsonl",
    "text/plain",
];

const ACCEPTED: &str = "send application/x-ndjson (one event per line) or application/json \
                        (an array of events, or one event)";

/// Reads the framing and compression of a request from its headers.
pub fn format(headers: &HeaderMap) -> Result<Format, Rejection> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(Rejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reason::ContentType,
            format!("The request has no Content-Type; {ACCEPTED}."),
        ));
    };
    let text = value.to_str().unwrap_or("");
    let media = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let framing = if media == "application/json" {
        Framing::Json
    } else if LINE_TYPES.contains(&media.as_str()) {
        Framing::Lines
    } else {
        return Err(Rejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reason::ContentType,
            format!("Content-Type `{}` is not supported; {ACCEPTED}.", text.trim()),
        ));
    };
    let gzip = match headers.get(CONTENT_ENCODING) {
        None => false,
        Some(value) => {
            let text = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
            match text.as_str() {
                "" | "identity" => false,
                "gzip" | "x-gzip" => true,
                _ => {
                    return Err(Rejection::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        Reason::ContentEncoding,
                        format!(
                            "Content-Encoding `{text}` is not supported; send the body \
                             uncompressed or gzip-compressed."
                        ),
                    ))
                }
            }
        }
    };
    Ok(Format { framing, gzip })
}

/// Whether the client takes a gzip-compressed answer.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>() == Ok(0.0))
            });
            coding.eq_ignore_ascii_case("gzip") && !refused
        })
    })
}

/// Decompresses a gzip body of one or more members, refusing output over
/// `limit` bytes: a small body can inflate a thousandfold.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, Rejection> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let mut decoder = MultiGzDecoder::new(body).take(limit as u64 + 1);
    if let Err(e) = decoder.read_to_end(&mut out) {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            Reason::BadBody,
            format!("The body is not valid gzip: {e}."),
        ));
    }
    if out.len() > limit {
        return Err(Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Reason::TooLarge,
            format!(
                "The body decompresses to more than {limit} bytes, the limit set by \
                 --max-body-bytes; send smaller batches."
            ),
        ));
    }
    Ok(out)
}

/// Compresses an outgoing body. The fastest level: the hop sits in the
/// path of every batch, and level 1 keeps most of the size gain of the
/// default level at a fraction of its time.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(body).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// The byte range of each line of an NDJSON body, without its `\n`. A
/// final `\n` does not start another line; an empty body has none.
pub fn lines(body: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' {
            out.push(start..i);
            start = i + 1;
        }
    }
    if start < body.len() {
        out.push(start..body.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(hyper::header::HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn content_types_choose_the_framing() {
        let framing = |ct| format(&headers(&[(CONTENT_TYPE, ct)])).map(|f| f.framing);
        assert_eq!(framing("application/json").unwrap(), Framing::Json);
        assert_eq!(framing("Application/JSON; charset=utf-8").unwrap(), Framing::Json);
        assert_eq!(framing("application/x-ndjson").unwrap(), Framing::Lines);
        assert_eq!(framing("text/plain").unwrap(), Framing::Lines);
        let err = framing("application/xml").unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(err.message.contains("`application/xml` is not supported"), "{}", err.message);
        assert!(format(&HeaderMap::new()).unwrap_err().message.contains("no Content-Type"));
    }

    #[test]
    fn content_encodings() {
        let gzip = |ce| {
            format(&headers(&[(CONTENT_TYPE, "text/plain"), (CONTENT_ENCODING, ce)]))
                .map(|f| f.gzip)
        };
        assert!(gzip("gzip").unwrap());
        assert!(!gzip("identity").unwrap());
        assert!(gzip("br").unwrap_err().message.contains("`br` is not supported"));
        let accepts = |ae| accepts_gzip(&headers(&[(ACCEPT_ENCODING, ae)]));
        assert!(accepts("gzip, deflate"));
        assert!(accepts("br;q=1.0, GZIP;q=0.5"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("deflate"));
    }

    #[test]
    fn gzip_round_trips_and_bombs_are_refused() {
        let body = b"{\"a\":1}\n".repeat(1000);
        let packed = gzip(&body);
        assert_eq!(gunzip(&packed, body.len()).unwrap(), body);
        let err = gunzip(&packed, body.len() - 1).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        let err = gunzip(b"not gzip", 100).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        // Two members, as some clients write them, read as one body.
        let mut two = gzip(b"a\n");
        two.extend(gzip(b"b\n"));
        assert_eq!(gunzip(&two, 100).unwrap(), b"a\nb\n");
    }

    #[test]
    fn lines_follow_ndjson_framing() {
        assert_eq!(lines(b""), Vec::<Range<usize>>::new());
        assert_eq!(lines(b"\n"), [0..0]);
        assert_eq!(lines(b"a"), [0..1]);
        assert_eq!(lines(b"a\n\nbc\n"), [0..1, 2..2, 3..5]);
        assert_eq!(lines(b"a\r\nb"), [0..2, 3..4]);
    }
}
