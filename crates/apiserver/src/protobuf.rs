//! Decoding `application/vnd.kubernetes.protobuf` request bodies into JSON objects.
//!
//! kubectl's generator commands (`kubectl create namespace|configmap|secret|
//! deployment|service ...`, `kubectl run`) send built-in kinds as protobuf, and
//! client-go does not retry as JSON on a 415. Instead of a generated binding
//! crate (all of Kubernetes' types, heavy to compile, and no JSON conversion),
//! this decodes by hand the few message types those commands send, driven by
//! the field tables in [`schema`], straight into the JSON the create path takes.
//! Anything outside those tables is refused, never dropped.

mod schema;

use base64::Engine as _;
use serde_json::{Map, Value};

use schema::{Field, Msg, Ty};

/// The media type of Kubernetes' protobuf encoding.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes before every protobuf-encoded object (`k8s\0`).
const MAGIC: &[u8] = b"k8s\0";

/// `time.Time{}.Unix()` in Go: the zero `metav1.Time` goes on the wire as this.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ProtoError {
    #[error("the protobuf body does not start with the k8s magic prefix")]
    Magic,
    #[error("truncated or malformed protobuf data")]
    Malformed,
    #[error("protobuf field {tag} of {message} has wire type {wire}, expected {expected}")]
    WireType {
        message: &'static str,
        tag: u32,
        wire: u8,
        expected: u8,
    },
    #[error("invalid UTF-8 in a protobuf string")]
    Utf8,
    #[error("protobuf timestamp out of range")]
    Time,
    #[error("content encoding {0:?} is not supported")]
    Encoding(String),
    #[error("protobuf is not supported for {kind} ({api_version}); send JSON")]
    UnsupportedKind { api_version: String, kind: String },
    #[error("protobuf field {tag} of {message} is not supported; send JSON")]
    UnsupportedField { message: &'static str, tag: u32 },
}

impl ProtoError {
    /// Whether the body was valid protobuf we chose not to understand (415)
    /// rather than a broken body (400).
    pub(crate) fn is_unsupported(&self) -> bool {
        matches!(
            self,
            Self::UnsupportedKind { .. } | Self::UnsupportedField { .. } | Self::Encoding(_)
        )
    }
}

/// Decodes a `k8s\0`-prefixed `runtime.Unknown` envelope into a JSON object with
/// `apiVersion` and `kind` first, as a JSON client would have sent it.
pub(crate) fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtoError::Magic)?;
    let env = envelope(rest)?;
    if !env.content_encoding.is_empty() {
        return Err(ProtoError::Encoding(env.content_encoding));
    }
    let msg = schema::top_level(&env.api_version, &env.kind).ok_or_else(|| {
        ProtoError::UnsupportedKind {
            api_version: env.api_version.clone(),
            kind: env.kind.clone(),
        }
    })?;
    let fields = message(env.raw, msg)?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(env.api_version));
    obj.insert("kind".into(), Value::String(env.kind));
    obj.extend(fields);
    Ok(Value::Object(obj))
}

struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

/// `runtime.Unknown`: typeMeta = 1 (apiVersion = 1, kind = 2), raw = 2,
/// contentEncoding = 3, contentType = 4.
fn envelope(buf: &[u8]) -> Result<Envelope<'_>, ProtoError> {
    let mut env = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
    };
    let mut rd = Reader(buf);
    while let Some((tag, wire)) = rd.key()? {
        match (tag, wire) {
            (1, 2) => {
                let mut tm = Reader(rd.bytes()?);
                while let Some((t, w)) = tm.key()? {
                    match (t, w) {
                        (1, 2) => env.api_version = utf8(tm.bytes()?)?,
                        (2, 2) => env.kind = utf8(tm.bytes()?)?,
                        _ => tm.skip(w)?,
                    }
                }
            }
            (2, 2) => env.raw = rd.bytes()?,
            (3, 2) => env.content_encoding = utf8(rd.bytes()?)?,
            _ => rd.skip(wire)?,
        }
    }
    Ok(env)
}

/// A cursor over protobuf wire data.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first().ok_or(ProtoError::Malformed)?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ProtoError::Malformed)
    }

    /// The next field's (number, wire type), or None at the end.
    fn key(&mut self) -> Result<Option<(u32, u8)>, ProtoError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        let tag = u32::try_from(k >> 3).map_err(|_| ProtoError::Malformed)?;
        // The mask keeps three bits, so the cast cannot truncate.
        let wire = (k & 7) as u8;
        Ok(Some((tag, wire)))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if n > self.0.len() {
            return Err(ProtoError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8], ProtoError> {
        let n = usize::try_from(self.varint()?).map_err(|_| ProtoError::Malformed)?;
        self.take(n)
    }

    fn skip(&mut self, wire: u8) -> Result<(), ProtoError> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.bytes().map(drop),
            5 => self.take(4).map(drop),
            _ => Err(ProtoError::Malformed),
        }
    }
}

fn utf8(b: &[u8]) -> Result<String, ProtoError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Utf8)
}

fn b64(b: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

/// The wire type a field of this shape is encoded with.
fn wire_of(ty: Ty) -> u8 {
    match ty {
        Ty::I32 | Ty::I64 | Ty::Bool => 0,
        _ => 2,
    }
}

/// Decodes one message into JSON members, dropping the zero values Go's JSON
/// encoder would have omitted (`omitempty`), except on pointer fields.
fn message(buf: &[u8], msg: &'static Msg) -> Result<Map<String, Value>, ProtoError> {
    let mut out = Map::new();
    let mut rd = Reader(buf);
    while let Some((tag, wire)) = rd.key()? {
        let field =
            msg.fields
                .iter()
                .find(|f| f.tag == tag)
                .ok_or(ProtoError::UnsupportedField {
                    message: msg.name,
                    tag,
                })?;
        let expected = wire_of(field.ty);
        if wire != expected {
            return Err(ProtoError::WireType {
                message: msg.name,
                tag,
                wire,
                expected,
            });
        }
        value_into(&mut rd, field, &mut out)?;
    }
    for field in msg.fields {
        if !field.keep_zero && out.get(field.json).is_some_and(is_zero) {
            out.remove(field.json);
        }
    }
    // Members in schema order, like Go's JSON encoder writes struct fields.
    let mut ordered = Map::new();
    for field in msg.fields {
        match field.ty {
            Ty::Msg(inner) if field.json == schema::INLINE => {
                for f in inner.fields {
                    if let Some(v) = out.remove(f.json) {
                        ordered.insert(f.json.into(), v);
                    }
                }
            }
            _ => {
                if let Some(v) = out.remove(field.json) {
                    ordered.insert(field.json.into(), v);
                }
            }
        }
    }
    Ok(ordered)
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Reads one occurrence of `field` and stores it in `out`.
fn value_into(
    rd: &mut Reader<'_>,
    field: &Field,
    out: &mut Map<String, Value>,
) -> Result<(), ProtoError> {
    let v = match field.ty {
        Ty::MapStr | Ty::MapBytes | Ty::MapQty => {
            let (k, v) = map_entry(rd.bytes()?, field.ty)?;
            let slot = out
                .entry(field.json)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = slot {
                m.insert(k, v);
            }
            return Ok(());
        }
        // A negative int32 is sign-extended to 64 bits on the wire; truncation restores it.
        Ty::I32 => Value::from(rd.varint()? as i32),
        Ty::I64 => Value::from(rd.varint()? as i64),
        Ty::Bool => Value::Bool(rd.varint()? != 0),
        Ty::Str => Value::String(utf8(rd.bytes()?)?),
        Ty::Msg(m) if field.json == schema::INLINE => {
            out.extend(message(rd.bytes()?, m)?);
            return Ok(());
        }
        Ty::Msg(m) => Value::Object(message(rd.bytes()?, m)?),
        Ty::Time => time(rd.bytes()?)?,
        Ty::IntOrStr => int_or_string(rd.bytes()?)?,
    };
    if field.repeated {
        let slot = out
            .entry(field.json)
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = slot {
            a.push(v);
        }
    } else {
        out.insert(field.json.into(), v);
    }
    Ok(())
}

/// A map entry message: key = 1 (string), value = 2.
fn map_entry(buf: &[u8], ty: Ty) -> Result<(String, Value), ProtoError> {
    let mut rd = Reader(buf);
    let mut key = String::new();
    let mut val = match ty {
        Ty::MapBytes => b64(&[]),
        _ => Value::String(String::new()),
    };
    while let Some((tag, wire)) = rd.key()? {
        match (tag, wire) {
            (1, 2) => key = utf8(rd.bytes()?)?,
            (2, 2) => {
                let b = rd.bytes()?;
                val = match ty {
                    Ty::MapBytes => b64(b),
                    Ty::MapQty => quantity(b)?,
                    _ => Value::String(utf8(b)?),
                };
            }
            _ => rd.skip(wire)?,
        }
    }
    Ok((key, val))
}

/// `meta.v1.Time`: seconds = 1, nanos = 2; JSON has second precision, and the
/// zero time is `null`.
fn time(buf: &[u8]) -> Result<Value, ProtoError> {
    let mut rd = Reader(buf);
    let (mut secs, mut nanos) = (0i64, 0i32);
    while let Some((tag, wire)) = rd.key()? {
        match (tag, wire) {
            (1, 0) => secs = rd.varint()? as i64,
            (2, 0) => nanos = rd.varint()? as i32,
            _ => rd.skip(wire)?,
        }
    }
    if secs == GO_ZERO_TIME_SECONDS && nanos == 0 {
        return Ok(Value::Null);
    }
    let ts = jiff::Timestamp::from_second(secs).map_err(|_| ProtoError::Time)?;
    Ok(Value::String(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

/// `intstr.IntOrString`: type = 1 (0 int, 1 string), intVal = 2, strVal = 3.
fn int_or_string(buf: &[u8]) -> Result<Value, ProtoError> {
    let mut rd = Reader(buf);
    let (mut is_str, mut int_val, mut str_val) = (false, 0i32, String::new());
    while let Some((tag, wire)) = rd.key()? {
        match (tag, wire) {
            (1, 0) => is_str = rd.varint()? == 1,
            (2, 0) => int_val = rd.varint()? as i32,
            (3, 2) => str_val = utf8(rd.bytes()?)?,
            _ => rd.skip(wire)?,
        }
    }
    Ok(if is_str {
        Value::String(str_val)
    } else {
        Value::from(int_val)
    })
}

/// `resource.Quantity`: string = 1.
fn quantity(buf: &[u8]) -> Result<Value, ProtoError> {
    let mut rd = Reader(buf);
    let mut s = String::new();
    while let Some((tag, wire)) = rd.key()? {
        match (tag, wire) {
            (1, 2) => s = utf8(rd.bytes()?)?,
            _ => rd.skip(wire)?,
        }
    }
    Ok(Value::String(s))
}

#[cfg(test)]
mod tests;
