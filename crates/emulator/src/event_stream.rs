//! AWS event-stream framing (`application/vnd.amazon.eventstream`) of
//! `InvokeWithResponseStream` answers: each message is a prelude (total
//! length, headers length, CRC32 of those 8 bytes), string headers, the
//! payload and a CRC32 of everything before it.
//!
//! **Invariant:** pure encoding; knows nothing of invocations or HTTP.

use bytes::{BufMut, Bytes, BytesMut};

/// Header value type 7: a UTF-8 string with a 2-byte length.
const STRING: u8 = 7;

/// One event message with string headers.
pub(crate) fn message(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut head = BytesMut::new();
    for (name, value) in headers {
        head.put_u8(name.len() as u8);
        head.put_slice(name.as_bytes());
        head.put_u8(STRING);
        head.put_u16(value.len() as u16);
        head.put_slice(value.as_bytes());
    }
    let total = 12 + head.len() + payload.len() + 4;
    let mut out = BytesMut::with_capacity(total);
    out.put_u32(total as u32);
    out.put_u32(head.len() as u32);
    let prelude_crc = crc32fast::hash(&out);
    out.put_u32(prelude_crc);
    out.put_slice(&head);
    out.put_slice(payload);
    let crc = crc32fast::hash(&out);
    out.put_u32(crc);
    out.freeze()
}

/// A `PayloadChunk` event carrying `payload`.
pub(crate) fn payload_chunk(payload: &[u8]) -> Bytes {
    message(
        &[
            (":event-type", "PayloadChunk"),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// The closing `InvokeComplete` event (its JSON members are optional).
pub(crate) fn invoke_complete(
    error_code: Option<&str>,
    error_details: Option<&str>,
    log_result: Option<&str>,
) -> Bytes {
    let mut body = serde_json::Map::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            body.insert(k.into(), v.into());
        }
    };
    put("ErrorCode", error_code);
    put("ErrorDetails", error_details);
    put("LogResult", log_result);
    message(
        &[
            (":event-type", "InvokeComplete"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        serde_json::Value::Object(body).to_string().as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_layout_and_checksums() {
        let m = payload_chunk(b"hello");
        let total = u32::from_be_bytes(m[0..4].try_into().unwrap()) as usize;
        let headers = u32::from_be_bytes(m[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, m.len());
        assert_eq!(
            u32::from_be_bytes(m[8..12].try_into().unwrap()),
            crc32fast::hash(&m[..8])
        );
        assert_eq!(&m[12 + headers..total - 4], b"hello");
        assert_eq!(
            u32::from_be_bytes(m[total - 4..].try_into().unwrap()),
            crc32fast::hash(&m[..total - 4])
        );
        // First header: name length, name, type 7, value length, value.
        assert_eq!(m[12] as usize, ":event-type".len());
        assert_eq!(&m[13..24], b":event-type");
        assert_eq!(m[24], STRING);
        assert_eq!(&m[27..39], b"PayloadChunk");
    }
}
